"""`jobs`, `models` and `presets`: what a running playground has, read from its API.

`jobs wait ID` and `jobs download ID` pick up any job, an interrupted `generate`'s too,
with the same ticking clock as `generate`.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from app.cli.credentials import token_for
from app.cli.files import prepare_folder
from app.cli.generate import download_images, follow_job
from app.cli.options import CONTEXT, common, examples, output_for, run_remote, server_options
from app.cli.output import plural
from app.cli.remote import Remote, RemoteError, chosen_server


def connect(server: str | None) -> Remote:
    where = chosen_server(server)
    return Remote(where, token=token_for(where))


def fitted(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as columns, the last one cut to what the terminal has room for."""
    if not rows:
        return []
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    room = shutil.get_terminal_size((80, 24)).columns - sum(widths) - 2 * len(widths)
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + fitted(row[-1], max(20, room))
        for row in rows
    ]


@click.group(context_settings=CONTEXT, short_help="List, show, follow and download jobs.")
def jobs() -> None:
    """List, show, follow and download jobs on a running playground."""


@jobs.command(name="list", epilog=examples("jobs list", "jobs list -l 50 --json"))
@click.option(
    "-l", "--limit", type=click.IntRange(1, 100), default=20, show_default=True, metavar="N"
)
@server_options
@common
def list_jobs(limit: int, server: str | None, as_json: bool) -> int:
    """The newest jobs: id, status, images, model and prompt."""
    output = output_for(as_json)

    async def work() -> int:
        async with connect(server) as remote:
            page = await remote.get_json("/api/jobs", limit=limit)
        items = page.get("items") or []
        rows = [
            (
                str(job["id"]),
                job["status_label"],
                plural(len(job["images"]), "image"),
                job["model"],
                job["parameters"]["prompt"],
            )
            for job in items
        ]
        output.result({"jobs": items, "next_cursor": page.get("next_cursor")}, table(rows))
        return 0

    return run_remote(output, work())


@jobs.command(epilog=examples("jobs show 12", "jobs show 12 --json"))
@click.argument("job_id", type=click.IntRange(min=1), metavar="ID")
@server_options
@common
def show(job_id: int, server: str | None, as_json: bool) -> int:
    """One job: its status, parameters, cost and images."""
    output = output_for(as_json)

    async def work() -> int:
        async with connect(server) as remote:
            job = await remote.job(job_id)
        output.result({"job": job}, describe_job(job, remote.server))
        return 0

    return run_remote(output, work())


def describe_job(job: dict[str, Any], server: str) -> list[str]:
    params = job["parameters"]
    size = params["image_size"]
    if size == "custom":
        size = f"{params.get('customWidth')}x{params.get('customHeight')}"
    lines = [
        f"Job {job['id']}: {job['status_label']} ({job['model']}"
        + (f", preset {job['preset']}" if job.get("preset") else "")
        + ")",
        f"  prompt   {params['prompt']}",
        f"  size     {size}, {plural(params['num_images'], 'image')}, seed {params.get('seed')}",
    ]
    if job.get("credit_cost") is not None:
        lines.append(f"  cost     {job['credit_cost']:g} credits")
    if job.get("error"):
        lines.append(f"  error    {job['error']}")
    lines.extend(f"  image    {server}{image['url']}" for image in job["images"])
    return lines


@jobs.command(epilog=examples("jobs wait 12"))
@click.argument("job_id", type=click.IntRange(min=1), metavar="ID")
@server_options
@common
def wait(job_id: int, server: str | None, as_json: bool) -> int:
    """Follow a job until it ends; exit 0 if it completed."""
    output = output_for(as_json)

    async def work() -> int:
        async with connect(server) as remote:
            job = await follow_job(remote, await remote.job(job_id), output)
        output.result({"job": job}, [f"Job {job['id']}: {job['status_label']}"])
        return 0 if job["status"] == "completed" else 1

    return run_remote(output, work())


@jobs.command(epilog=examples("jobs download 12", "jobs download 12 -O shots/"))
@click.argument("job_id", type=click.IntRange(min=1), metavar="ID")
@click.option(
    "-O",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    metavar="DIR",
    help="The folder the images go to (made if missing).",
)
@server_options
@common
def download(job_id: int, out: Path, server: str | None, as_json: bool) -> int:
    """Write a job's images here (waiting for it first if it still runs)."""
    output = output_for(as_json)

    async def work() -> int:
        folder = prepare_folder(out)
        async with connect(server) as remote:
            job = await follow_job(remote, await remote.job(job_id), output)
            files = await download_images(remote, job, folder)
        if job["status"] != "completed":
            raise RemoteError(f"Job {job['id']} {job['status_label'].lower()}: {job['error']}")
        output.result({"job": job, "files": [str(p) for p in files]}, [str(p) for p in files])
        return 0

    return run_remote(output, work())


@click.command(
    short_help="PixelDojo's image models, with their cost.",
    epilog=examples("models", "models --json"),
)
@server_options
@common
def models(server: str | None, as_json: bool) -> int:
    """PixelDojo's image models the playground offers, with their cost (* the default)."""
    output = output_for(as_json)

    async def work() -> int:
        async with connect(server) as remote:
            found = await remote.get_json("/api/models")
        rows = [
            ("*" if model["default"] else " ", model["api_id"], model["cost"], model["name"])
            for model in found.get("models") or []
        ]
        output.result(found, table(rows))
        return 0

    return run_remote(output, work())


@click.command(
    short_help="The presets, and the size each runs at.",
    epilog=examples("presets", "presets --json"),
)
@server_options
@common
def presets(server: str | None, as_json: bool) -> int:
    """The presets, with the size each runs at under the playground's rules."""
    output = output_for(as_json)

    async def work() -> int:
        async with connect(server) as remote:
            found = await remote.presets()
        rows = [
            (
                slug,
                preset["parameters"]["image_size"],
                preset.get("note") or preset["description"],
            )
            for slug, preset in found.items()
        ]
        output.result({"presets": list(found.values())}, table(rows))
        return 0

    return run_remote(output, work())

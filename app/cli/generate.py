"""`seedream-playground generate`: one job through a running playground, its images written
here exactly as the gallery's Download gives them (the parameters in the PNG).

Paid once, always: the job's Idempotency-Key comes from what it asks (prompt,
parameters, model, references and server), so the same command run again after Ctrl-C,
a crash or a dropped network carries on with the same job; `--new` asks for another.
The folder the images go to is checked before anything is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from app.cli.credentials import token_for
from app.cli.files import prepare_folder
from app.cli.options import common, examples, output_for, run_remote, server_options
from app.cli.output import PROG, Output, plural, waiting_text
from app.cli.remote import Remote, RemoteError, chosen_server
from app.cli.runs import (
    field_names,
    read_prompt,
    reference_ids,
    run_key,
    run_options,
    size_fields,
    typed_options,
    with_preset,
)
from app.web import urls


@click.command(
    epilog=examples(
        'generate "a lighthouse at dawn" -s landscape_16_9 -n 2',
        "generate -p cyberpunk-street --seed 42 -O shots/",
        '$ echo "a red fox in snow" | seedream-playground generate -',
        'generate "the bottle, on a beach" -m seedream-4-edit -r 12',
    )
)
@click.argument("prompt", required=False, metavar="[PROMPT|-]")
@run_options
@click.option(
    "-O",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    metavar="DIR",
    help="The folder the images go to (made if missing).",
)
@click.option("--new", is_flag=True, help="Another job, even if this command made one before.")
@server_options
@common
def generate(
    prompt: str | None,
    preset: str | None,
    size: str | None,
    width: int | None,
    height: int | None,
    num_images: int | None,
    seed: int | None,
    model: str | None,
    options: tuple[str, ...],
    references: tuple[str, ...],
    out: Path,
    new: bool,
    server: str | None,
    as_json: bool,
) -> int:
    """Make images through a running playground and write them here.

    PROMPT is what to draw; `-` (or no PROMPT, with something piped in) reads it from
    standard input. With --preset, the preset's prompt and size are the start, and a
    PROMPT or --size given replaces them. The same command again carries on with the
    job it made (paid once); --new makes another.
    """
    output = output_for(as_json)
    return run_remote(
        output,
        make(
            server=server,
            prompt=prompt,
            preset=preset,
            size=size,
            width=width,
            height=height,
            num_images=num_images,
            seed=seed,
            model=model,
            options=options,
            references=references,
            out=out,
            new=new,
            output=output,
        ),
    )


async def make(
    *,
    server: str | None,
    prompt: str | None,
    preset: str | None,
    size: str | None,
    width: int | None,
    height: int | None,
    num_images: int | None,
    seed: int | None,
    model: str | None,
    options: tuple[str, ...],
    references: tuple[str, ...],
    out: Path,
    new: bool,
    output: Output,
) -> int:
    where = chosen_server(server)
    body: dict[str, Any] = {"prompt": read_prompt(prompt), "preset": preset, "model": model}
    body.update(size_fields(size, width, height))
    body.update(seed=seed, num_images=num_images)
    body = {name: value for name, value in body.items() if value is not None}
    folder = prepare_folder(out)
    names = field_names(size, width)
    async with Remote(where, token=token_for(where), field_names=names) as remote:
        if preset is not None:
            body = with_preset(body, await remote.presets(), output)
        if "prompt" not in body:
            raise RemoteError(
                "give a PROMPT (or `-` to read it from standard input), or a --preset"
            )
        if options or references:
            rules = await remote.post_json("/api/rules", {"model": model or None})
            body.update(typed_options(options, rules))
            ids = await reference_ids(remote, references, rules)
            if ids:
                body["reference_images"] = ids
        job, replayed = await remote.submit_job(body, key=run_key(where, body, new=new))
        output.interrupt_hint = (
            f"Job {job['id']} goes on at the server: run the same command again (or "
            f"`{PROG} jobs download {job['id']}`) to fetch its images; it is paid once."
        )
        if replayed:
            output.say(
                f"Carrying on with job {job['id']}, which this same command made before "
                "(nothing is paid again; --new makes another)"
            )
        else:
            output.say(f"Submitted job {job['id']} to {where}")
        job = await follow_job(remote, job, output)
        files = await download_images(remote, job, folder)
    if job["status"] != "completed":
        # The same command again would show this same job: say how to try once more.
        raise RemoteError(
            f"Job {job['id']} {job['status_label'].lower()}: {job['error']} (--new sends another)"
        )
    output.say(f"Made {plural(len(files), 'image')}")
    output.result(
        {"job": job, "files": [str(path) for path in files], "carried_on": replayed},
        [str(path) for path in files],
    )
    return 0


async def follow_job(remote: Remote, job: dict[str, Any], output: Output) -> dict[str, Any]:
    """Wait for a job, its status word and a ticking clock on a terminal."""
    current = job
    typical = job.get("typical_seconds")

    def describe(seconds: float) -> str:
        images = len(current["images"])
        total = current["parameters"].get("num_images") or 1
        stored = f" · {images} of {plural(total, 'image')} stored" if images else ""
        return waiting_text(current["status_label"], seconds, typical, stored)

    async with output.progress(describe) as progress:

        def changed(now: dict[str, Any]) -> None:
            nonlocal current
            current = now
            progress.draw()
            output.detail(f"job {now['id']}: {now['status_label']}")

        return await remote.wait_for_job(job["id"], on_change=changed)


async def download_images(remote: Remote, job: dict[str, Any], folder: Path) -> list[Path]:
    return [await remote.download(urls.download(image["id"]), folder) for image in job["images"]]

"""`generate`, `batch` and `grid`: the command line working through a running server.

Each talks to the server's JSON API (app/cli/remote.py), as a script would: the same
validation, budgets and at-most-once submission as the browser. Progress goes to
standard error (a bar on a terminal, a line per change elsewhere); what was made
goes to standard output, as paths or, with --json, one JSON document.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from app.cli.remote import Remote, RemoteError, token_from_environment
from app.domain.batch_rows import BatchFileError, BatchRow, Results, keyed_rows, read_rows
from app.domain.grid_axes import AxisSpec

RESULTS_FILE = "results.csv"
CHECK_CHUNK = 1000


@dataclass
class Output:
    """Where a command speaks: JSON for scripts, or words and a progress bar for people."""

    json: bool
    err: TextIO = sys.stderr
    out: TextIO = sys.stdout

    @property
    def live(self) -> bool:
        return self.err.isatty()

    def say(self, message: str) -> None:
        print(message, file=self.err, flush=True)

    def bar(self, *, total: int, initial: int = 0, unit: str, desc: str) -> tqdm[Any]:
        # Off the terminal, a bar would print a line per update; changes are said instead.
        return tqdm(
            total=total,
            initial=initial,
            unit=unit,
            desc=desc,
            file=self.err,
            disable=not self.live,
            dynamic_ncols=True,
            leave=True,
        )

    def result(self, document: dict[str, Any], lines: list[str]) -> None:
        if self.json:
            print(json.dumps(document, indent=2, ensure_ascii=False), file=self.out)
        else:
            for line in lines:
                print(line, file=self.out)


def remote_for(server: str) -> Remote:
    return Remote(server, token=token_from_environment())


def with_preset(
    body: dict[str, Any], presets: dict[str, dict[str, Any]], *, where: str = ""
) -> dict[str, Any]:
    """A request naming a preset starts from its parameters; what it gives itself wins."""
    slug = body.get("preset")
    if slug is None:
        return body
    preset = presets.get(str(slug))
    if preset is None:
        raise RemoteError(f"{where}there is no preset {slug!r}; one of: {', '.join(presets)}")
    start = {
        name: value
        for name, value in preset["parameters"].items()
        if value is not None and name in ("prompt", "image_size", "customWidth", "customHeight")
    }
    if body.get("image_size") not in (None, "custom"):
        start.pop("customWidth", None)
        start.pop("customHeight", None)
    return {**start, **body}


def size_fields(size: str | None, width: int | None, height: int | None) -> dict[str, Any]:
    if (width is None) != (height is None):
        raise RemoteError("--width and --height go together")
    if width is not None:
        return {"image_size": "custom", "customWidth": width, "customHeight": height}
    if size is None:
        return {}
    parts = size.lower().replace("×", "x").split("x")
    if len(parts) == 2 and all(part.isdecimal() for part in parts):
        return {"image_size": "custom", "customWidth": int(parts[0]), "customHeight": int(parts[1])}
    return {"image_size": size}


def status_line(job: dict[str, Any]) -> str:
    return f"job {job['id']}: {job['status_label']}"


# --- generate ------------------------------------------------------------------------


async def generate(
    *,
    server: str,
    prompt: str | None,
    preset: str | None,
    size: str | None,
    width: int | None,
    height: int | None,
    num_images: int | None,
    seed: int | None,
    model: str | None,
    out: Path,
    output: Output,
) -> int:
    body: dict[str, Any] = {"prompt": prompt, "preset": preset, "model": model, "seed": seed}
    body.update(size_fields(size, width, height))
    body["num_images"] = num_images
    body = {name: value for name, value in body.items() if value is not None}
    async with remote_for(server) as remote:
        if preset is not None:
            body = with_preset(body, await remote.presets())
        if "prompt" not in body:
            raise RemoteError("Give a PROMPT, or a --preset to take one from")
        # One key for this run: a submission resent after a lost answer is the same job.
        job = await remote.submit_job(body, key=f"cli-{secrets.token_urlsafe(16)}")
        output.say(f"Submitted job {job['id']} to {server}")
        job = await follow_job(remote, job, output)
        if job["status"] != "completed":
            raise RemoteError(f"Job {job['id']} {job['status_label'].lower()}: {job['error']}")
        files = [
            await remote.download(f"/api/images/{image['id']}/download", out)
            for image in job["images"]
        ]
    output.result({"job": job, "files": [str(path) for path in files]}, [str(p) for p in files])
    return 0


async def follow_job(remote: Remote, job: dict[str, Any], output: Output) -> dict[str, Any]:
    started = time.monotonic()
    with output.bar(total=job["parameters"]["num_images"], unit="image", desc="Submitting") as bar:

        def changed(now: dict[str, Any]) -> None:
            bar.set_description_str(now["status_label"])
            bar.n = len(now["images"])
            bar.refresh()
            if not output.live:
                output.say(f"{status_line(now)} ({time.monotonic() - started:.0f} s)")

        return await remote.wait_for_job(job["id"], on_change=changed)


# --- batch ---------------------------------------------------------------------------


async def batch(
    *,
    server: str,
    file: Path,
    concurrency: int,
    out: Path,
    retry_failed: bool,
    output: Output,
) -> int:
    try:
        bodies = read_rows(file)
    except BatchFileError as exc:
        raise RemoteError(str(exc)) from None
    results = Results.load(out / RESULTS_FILE)
    async with remote_for(server) as remote:
        if any("preset" in body for body in bodies):
            presets = await remote.presets()
            bodies = [
                with_preset(body, presets, where=f"row {number}: ")
                for number, body in enumerate(bodies, start=1)
            ]
        rows = keyed_rows(bodies)
        todo = [row for row in rows if not results.done(row, out)]
        skipped = len(rows) - len(todo)
        if todo:
            await check_rows(remote, todo, output)
        output.say(
            f"{len(rows)} rows: {skipped} done already, {len(todo)} to make, "
            f"{concurrency} at a time"
        )
        counts = {"completed": 0, "failed": 0}
        with output.bar(total=len(rows), initial=skipped, unit="row", desc="Batch") as bar:
            limit = asyncio.Semaphore(concurrency)

            async def run(row: BatchRow) -> None:
                async with limit:
                    status = await make_row(remote, row, results, out, retry_failed=retry_failed)
                counts["completed" if status == "completed" else "failed"] += 1
                bar.update(1)
                if not output.live:
                    output.say(f"row {row.number}: {status}")

            try:
                async with asyncio.TaskGroup() as group:
                    for row in todo:
                        group.create_task(run(row))
            except* RemoteError as errors:
                raise errors.exceptions[0] from None
    document = {
        "rows": len(rows),
        "skipped": skipped,
        "completed": counts["completed"],
        "failed": counts["failed"],
        "results": str(results.path),
        "lines": [results.rows[number] for number in sorted(results.rows)],
    }
    output.result(
        document,
        [
            f"{counts['completed']} made, {skipped} done before, {counts['failed']} failed; "
            f"results in {results.path}"
        ],
    )
    return 0 if counts["failed"] == 0 else 1


async def check_rows(remote: Remote, rows: list[BatchRow], output: Output) -> None:
    """Every row against the server's rules and the budget, before the first is sent."""
    images, credits = 0, 0.0
    for start in range(0, len(rows), CHECK_CHUNK):
        part = rows[start : start + CHECK_CHUNK]
        try:
            checked = await remote.post_json("/api/jobs/check", {"jobs": [r.body for r in part]})
        except RemoteError as refused:
            raise RemoteError(_name_rows(refused.message, part)) from None
        images += checked["images"]
        credits += checked["estimated_credits"]
    output.say(f"To make: {len(rows)} jobs, {images} images, {credits:g} credits")


def _name_rows(message: str, rows: list[BatchRow]) -> str:
    """`jobs.3.seed: ...` as `row 7: seed: ...`, the row as the file counts it."""
    import re

    def row_name(found: re.Match[str]) -> str:
        return f"row {rows[int(found.group(1))].number}: "

    return re.sub(r"jobs\.(\d+)\.", row_name, message)


async def make_row(
    remote: Remote, row: BatchRow, results: Results, out: Path, *, retry_failed: bool
) -> str:
    key = row.key
    failed = results.failed_job(row)
    if retry_failed and failed is not None:
        # A new key, still derived: running with --retry-failed twice retries once.
        key = f"{row.key}:after-{failed}"
    try:
        job = await remote.submit_job(row.body, key=key)
        job = await remote.wait_for_job(job["id"])
    except RemoteError as refused:
        if refused.code in ("unreachable", "connection_lost", "sign_in_required", "invalid_token"):
            raise
        results.record(row, status="refused", error=refused.message, seed=row.body.get("seed"))
        return "refused"
    files: list[Path] = []
    if job["status"] == "completed":
        for image in job["images"]:
            files.append(
                await remote.download(
                    f"/api/images/{image['id']}/download", out, prefix=f"row{row.number:04d}-"
                )
            )
    results.record(
        row,
        job_id=job["id"],
        status=job["status"],
        files=";".join(path.name for path in files),
        seed=job["parameters"]["seed"],
        cost=job["credit_cost"],
        error=job["error"],
    )
    return str(job["status"])


# --- grid ----------------------------------------------------------------------------


async def grid(
    *,
    server: str,
    prompt: str | None,
    axes: list[str],
    base: dict[str, Any],
    model: str | None,
    preset: str | None,
    yes: bool,
    new: bool,
    out: Path,
    output: Output,
    confirm: Callable[[str], bool],
) -> int:
    try:
        specs = [AxisSpec.parse(text).model_dump(exclude_none=True) for text in axes]
    except ValueError as exc:
        raise RemoteError(f"Axis {exc}") from None
    parameters = {name: value for name, value in base.items() if value is not None}
    if prompt is not None:
        parameters["prompt"] = prompt
    async with remote_for(server) as remote:
        if preset is not None:
            parameters = with_preset({**parameters, "preset": preset}, await remote.presets())
            parameters.pop("preset")
        request = {"parameters": parameters, "axes": specs, "model": model, "preset": preset}
        request = {name: value for name, value in request.items() if value is not None}
        content = json.dumps(request, sort_keys=True, ensure_ascii=False)
        # The same command again is the same grid (paid once), unless --new.
        key = (
            f"cli-grid-{secrets.token_urlsafe(16)}"
            if new
            else f"cli-grid-{hashlib.sha256(content.encode()).hexdigest()[:40]}"
        )
        plan = await remote.post_json("/api/grids/plan", request, key=key)
        output.say(describe_plan(plan))
        if not yes and not confirm(f"Make these {plan['jobs']} jobs?"):
            raise RemoteError("Nothing was made.", code="declined")
        made = await remote.post_json("/api/grids", request, key=key)
        output.say(f"Grid {made['id']}: {server.rstrip('/')}{made['url']}")
        finished = await follow_grid(remote, made, output)
        sheet = await remote.download(finished["contact_sheet_url"], out)
    failed = [cell for cell in finished["cells"] if cell["status"] != "completed"]
    document = {"grid": finished, "contact_sheet": str(sheet)}
    output.result(document, [str(sheet)])
    if failed:
        output.say(f"{len(failed)} of {len(finished['cells'])} cells did not complete")
        return 1
    return 0


def describe_plan(plan: dict[str, Any]) -> str:
    lines = [
        f"{plan['jobs']} jobs, {plan['images']} images, {plan['estimated_credits']:g} credits "
        f"(model {plan['model']})"
    ]
    for place, axis in zip(("columns", "rows", "tabs"), plan["axes"], strict=False):
        lines.append(f"  {place:<8}{axis['title']}: {', '.join(axis['labels'])}")
    return "\n".join(lines)


async def follow_grid(remote: Remote, made: dict[str, Any], output: Output) -> dict[str, Any]:
    total = len(made["cells"])
    with output.bar(total=total, initial=made["done"], unit="cell", desc="Grid") as bar:
        done, delay = made["done"], 0.5
        while True:
            current: dict[str, Any] = await remote.get_json(f"/api/grids/{made['id']}")
            if current["done"] != done:
                bar.update(current["done"] - done)
                if not output.live:
                    output.say(f"grid {made['id']}: {current['done']} of {total} cells done")
                done, delay = current["done"], 0.5
            if current["finished"]:
                return current
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 1.5)

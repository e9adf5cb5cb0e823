"""`seedream-playground batch`: one job per row of a CSV, JSONL or text file, through a
running playground.

Every row is checked (and the budget for the new ones) before the first is sent; then
they run N at a time. Running the same file again carries on where it stopped: each
row's Idempotency-Key comes from its content, a row already done is skipped, a row
already sent is followed (never paid for twice), and the counts say which is which.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import click

from app.cli.credentials import token_for
from app.cli.files import prepare_folder
from app.cli.options import common, examples, output_for, run_remote, server_options
from app.cli.output import Output, credits_text, plural, waiting_text
from app.cli.remote import FATAL_CODES, Remote, RemoteError, chosen_server
from app.cli.runs import with_preset
from app.domain.batch_rows import (
    BatchFileError,
    BatchRow,
    Results,
    keyed_rows,
    read_rows,
    results_path,
)
from app.web import urls

CHECK_CHUNK = 1000


@click.command(
    short_help="One job per row of a file; run again to carry on.",
    epilog=examples(
        "batch examples/catalogue.csv -c 4 -O catalogue/",
        "batch examples/prompts.txt -O prompts/",
        "batch examples/catalogue.csv --retry-failed",
    ),
)
@click.argument("file", type=click.Path(path_type=Path), metavar="FILE")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    metavar="N",
    help="Jobs at once.",
)
@click.option(
    "-O",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    metavar="DIR",
    help="The folder the images and FILE's results (<name>.results.csv) go to.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Submit the rows that failed last time again (failed jobs cost nothing).",
)
@server_options
@common
def batch(
    file: Path,
    concurrency: int,
    out: Path,
    retry_failed: bool,
    server: str | None,
    as_json: bool,
) -> int:
    """Make one job per row of FILE; run it again to carry on where it stopped.

    FILE is CSV (a header row names the columns), JSONL (one object a line) or text (one
    prompt a line). Columns are parameters: prompt, preset, size (a named size or
    WIDTHxHEIGHT), width, height, num_images, seed, model. Images go into --out as
    row0007-seedream-<job>-<n>.png; <name>.results.csv there says for each row its
    prompt, job, status, files, seed and cost. A row without a seed gets one drawn from
    its content, the same every run.
    """
    output = output_for(as_json)
    return run_remote(
        output,
        run_batch(
            server=server,
            file=file,
            concurrency=concurrency,
            out=out,
            retry_failed=retry_failed,
            output=output,
        ),
    )


@dataclass
class Plan:
    """The rows of a batch by what running it again does with them."""

    rows: list[BatchRow]
    new: list[BatchRow]
    running: list[BatchRow]
    done: list[BatchRow]
    failed: list[BatchRow]


def plan_rows(rows: list[BatchRow], results: Results, folder: Path, *, retry: bool) -> Plan:
    plan = Plan(rows, [], [], [], [])
    for row in rows:
        if results.done(row, folder):
            plan.done.append(row)
        elif results.running_job(row) is not None:
            plan.running.append(row)
        elif results.failed_job(row) is not None and not retry:
            plan.failed.append(row)
        else:
            plan.new.append(row)
    return plan


async def run_batch(
    *,
    server: str | None,
    file: Path,
    concurrency: int,
    out: Path,
    retry_failed: bool,
    output: Output,
) -> int:
    where = chosen_server(server)
    try:
        bodies = read_rows(file)
        folder = prepare_folder(out)
        results = Results.load(results_path(file, folder), batch_file=file)
    except BatchFileError as exc:
        raise RemoteError(str(exc)) from None
    async with Remote(where, token=token_for(where)) as remote:
        if any("preset" in body for body in bodies):
            presets = await remote.presets()
            bodies = [
                with_preset(body, presets, output, where=f"row {number}: ")
                for number, body in enumerate(bodies, start=1)
            ]
        plan = plan_rows(keyed_rows(bodies), results, folder, retry=retry_failed)
        credits = await check_rows(remote, plan.new) if plan.new else 0.0
        output.say(describe_plan(plan, credits, concurrency))
        made = await run_rows(remote, plan, results, folder, concurrency, output)
    failed = made.failed + len(plan.failed)
    summary = (
        f"{made.new} made ({credits_text(made.spent)}), {made.carried_on} carried on, "
        f"{len(plan.done)} done before, {failed} failed; results in {results.path}"
    )
    output.result(
        {
            "rows": len(plan.rows),
            "made": made.new,
            "carried_on": made.carried_on,
            "done_before": len(plan.done),
            "failed": failed,
            "credits": made.spent,
            "results": str(results.path),
            "lines": results.typed(),
        },
        [summary],
    )
    return 0 if failed == 0 else 1


def describe_plan(plan: Plan, credits: float, concurrency: int) -> str:
    parts = [
        f"{plural(len(plan.rows), 'row')}: {len(plan.new)} new ({credits_text(credits)})",
        f"{len(plan.running)} already running",
        f"{len(plan.done)} done before",
    ]
    if plan.failed:
        parts.append(f"{len(plan.failed)} failed before (--retry-failed tries them again)")
    todo = len(plan.new) + len(plan.running)
    return ", ".join(parts) + (f"; {concurrency} at a time" if todo else "")


async def check_rows(remote: Remote, rows: list[BatchRow]) -> float:
    """Every new row against the server's rules and the budget, before the first is sent;
    what they will cost."""
    credits = 0.0
    for start in range(0, len(rows), CHECK_CHUNK):
        part = rows[start : start + CHECK_CHUNK]
        try:
            checked = await remote.post_json("/api/jobs/check", {"jobs": [r.body for r in part]})
        except RemoteError as refused:
            raise RemoteError(_name_rows(refused.message, part), code=refused.code) from None
        credits += float(checked.get("estimated_credits") or 0)
    return credits


def _name_rows(message: str, rows: list[BatchRow]) -> str:
    """`jobs.3.seed: ...` as `row 7: seed: ...`, the row as the file counts it."""

    def row_name(found: re.Match[str]) -> str:
        return f"row {rows[int(found.group(1))].number}: "

    return re.sub(r"jobs\.(\d+)\.", row_name, message)


@dataclass
class Made:
    new: int = 0
    carried_on: int = 0
    failed: int = 0
    spent: float = 0.0
    finished: int = 0


async def run_rows(
    remote: Remote,
    plan: Plan,
    results: Results,
    folder: Path,
    concurrency: int,
    output: Output,
) -> Made:
    made = Made()
    todo = plan.new + plan.running
    if not todo:
        return made
    limit = asyncio.Semaphore(concurrency)
    new = {row.number for row in plan.new}
    running = 0
    total, before = len(plan.rows), len(plan.done) + len(plan.failed)

    def describe(seconds: float) -> str:
        extra = f" · {running} running" if running else ""
        done = before + made.finished
        return waiting_text("Batch", seconds, None, f" · {done} of {total} rows{extra}")

    async with output.progress(describe) as progress:

        async def run(row: BatchRow) -> None:
            nonlocal running
            async with limit:
                running += 1
                progress.draw()
                try:
                    status = await make_row(
                        remote, row, results, folder, made, retry=row.number in new
                    )
                finally:
                    running -= 1
            made.finished += 1
            progress.draw()
            output.detail(f"row {row.number}: {status}")

        try:
            async with asyncio.TaskGroup() as group:
                for row in todo:
                    group.create_task(run(row))
        except* RemoteError as errors:
            raise errors.exceptions[0] from None
    return made


async def make_row(
    remote: Remote, row: BatchRow, results: Results, folder: Path, made: Made, *, retry: bool
) -> str:
    key = row.key
    failed = results.failed_job(row)
    if retry and failed is not None:
        # A new key, still derived: running with --retry-failed twice retries once.
        key = f"{row.key}:after-{failed}"
    try:
        job, replayed = await remote.submit_job(row.body, key=key)
        results.record(row, job_id=job["id"], status="submitted", seed=job["parameters"]["seed"])
        job = await remote.wait_for_job(job["id"])
    except RemoteError as refused:
        if refused.code in FATAL_CODES:
            raise
        results.record(row, status="refused", error=refused.message, seed=row.body.get("seed"))
        made.failed += 1
        return "refused"
    files: list[Path] = []
    if job["status"] == "completed":
        for image in job["images"]:
            files.append(
                await remote.download(
                    urls.download(image["id"]), folder, prefix=f"row{row.number:04d}-"
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
    if job["status"] != "completed":
        made.failed += 1
    elif replayed:
        made.carried_on += 1
    else:
        made.new += 1
        made.spent += float(job.get("credit_cost") or 0)
    return str(job["status"])

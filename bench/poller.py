"""Poller efficiency: many jobs in flight against the emulator, the app in its own process.

Jobs are submitted through the app's API at a steady rate, so that with the
upstream taking `job_seconds` per job the app has `jobs` of them in flight at
the peak, and their completions arrive at the same steady rate. Then, per job:

- status polls, from the emulator's request log; the minimum the upstream's
  timing allows is one (the poll that finds the job done), so every other poll
  is "beyond the minimum";
- completion to stored: from the moment the emulator finishes the job (its
  creation time plus `job_seconds`, on the emulator's clock) to the job's
  `finished_at` in the app's database (same machine, same clock);

and for the app process: CPU seconds and peak resident memory (VmHWM).

Before the measured batch the app runs a few jobs to completion, unmeasured: a
server in use has a history of how long jobs take, and a poller may learn from
it; the first jobs of a fresh install cannot be timed well by anyone.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.parameters import NAMED_SIZE_PIXELS
from bench import prompts
from bench.measure import BenchError, Connection, percentile
from bench.report import Report
from bench.server import AppProcess, serve_app_process
from bench.upstream import EMULATOR_SETTINGS, serve_upstream

SECTION = "poller"
EXTRA_POLLS_MAX = 2.0
STORED_P50_MAX_SECONDS = 2.0
PEAK_RSS_MAX_BYTES = 250 * 1024 * 1024
IMAGE_SIZE = "auto_2K"  # the default size: what most jobs ask for
SUBMITTERS = 4
MB = 1024 * 1024


@dataclass(frozen=True)
class JobRecord:
    status: str
    upstream_job_id: str | None
    created_at: float
    upstream_completed_at: float | None
    finished_at: float | None


def measure(
    report: Report,
    work_dir: Path,
    *,
    jobs: int,
    job_seconds: float,
    submit_per_second: float,
    history: int,
) -> None:
    with serve_upstream(job_seconds=job_seconds) as upstream:
        upstream.emulator.prepare(*NAMED_SIZE_PIXELS[IMAGE_SIZE])
        with serve_app_process(
            work_dir,
            "app-poller",
            data_dir=work_dir / "data",
            api_key=upstream.api_key,
            base_url=upstream.base_url,
            settings=EMULATOR_SETTINGS,
        ) as app:
            database = work_dir / "data" / "playground.db"
            deadline = time.monotonic() + job_seconds + 120
            _check(_submit(app.port, history, per_second=100.0))
            _wait_until_idle(app, database, deadline)
            measured_after = len(_records(database))

            cpu_before = app.cpu_seconds()
            app.reset_peak_rss()
            started = time.time()
            _check(_submit(app.port, jobs, submit_per_second))
            submitted_in = time.time() - started
            _wait_until_idle(app, database, time.monotonic() + job_seconds + 120 + jobs / 10)
            cpu = app.cpu_seconds() - cpu_before
            peak_rss = app.peak_rss_bytes()
        records = _records(database)[measured_after:]
        polls = Counter(
            request.path.rsplit("/", 1)[-1] for request in upstream.emulator.requests_to("job")
        )
        measured_ids = {r.upstream_job_id for r in records}
        upstream_requests = sum(
            1
            for route in ("run", "job", "image")
            for request in upstream.emulator.requests_to(route)
            if request.at >= started
        )
        created_upstream = {
            job_id: job.created_at
            for job_id, job in upstream.emulator.jobs.items()
            if job_id in measured_ids
        }

    completed = [r for r in records if r.status == "completed"]
    report.info(
        SECTION,
        f"jobs submitted over {submitted_in:.0f} s, completed",
        len(completed),
        "",
        note=f"of {len(records)}",
    )
    if len(completed) != jobs:
        report.failure(SECTION, "every job completes", f"{len(completed)} of {jobs} completed")
        return
    report.info(SECTION, "peak jobs in flight", _peak_in_flight(records), "")
    report.info(
        SECTION, "upstream requests per completed job", upstream_requests / len(completed), ""
    )
    per_job = [polls[r.upstream_job_id or ""] for r in completed]
    extra = [count - 1 for count in per_job]
    report.info(SECTION, "status polls per job: mean", sum(per_job) / len(per_job), "")
    report.at_most(
        SECTION,
        "status polls beyond the minimum (1): mean",
        sum(extra) / len(extra),
        EXTRA_POLLS_MAX,
        "",
        note=f"p95 {percentile(extra, 0.95):g}, max {max(extra)}",
    )
    to_stored = [
        (r.finished_at or 0) - (created_upstream[r.upstream_job_id or ""] + job_seconds)
        for r in completed
    ]
    seen_to_stored = [(r.finished_at or 0) - (r.upstream_completed_at or 0) for r in completed]
    report.at_most(
        SECTION,
        "upstream completion to image stored: p50",
        percentile(to_stored, 0.5),
        STORED_P50_MAX_SECONDS,
        "s",
    )
    report.info(
        SECTION, "upstream completion to image stored: p95", percentile(to_stored, 0.95), "s"
    )
    report.info(
        SECTION,
        "of which, poll seeing it done to stored: p50",
        percentile(seen_to_stored, 0.5),
        "s",
        note=f"p95 {percentile(seen_to_stored, 0.95):.2f} s",
    )
    report.info(
        SECTION, "app CPU seconds", cpu, "s", note=f"{cpu / len(completed) * 1000:.0f} ms per job"
    )
    report.at_most(SECTION, "app peak memory (RSS)", peak_rss / MB, PEAK_RSS_MAX_BYTES / MB, "MB")


def _check(failures: list[str]) -> None:
    if failures:
        raise BenchError(f"{len(failures)} submissions failed, first: {failures[0]}")


def _wait_until_idle(app: AppProcess, database: Path, deadline: float) -> None:
    while unfinished := _unfinished(database):
        if time.monotonic() > deadline:
            raise BenchError(f"{unfinished} jobs still unfinished; app log:\n{app.log_tail()}")
        time.sleep(0.25)


def _submit(port: int, jobs: int, per_second: float) -> list[str]:
    """Submit `jobs` through POST /api/jobs, job i at i/per_second; returns failures."""
    start = time.monotonic() + 0.2
    counter = iter(range(jobs))
    lock = threading.Lock()
    failures: list[str] = []

    def submitter(worker: int) -> None:
        rng = random.Random(worker)
        connection = Connection(port)
        try:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                delay = start + index / per_second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                body = {"prompt": prompts.prompt(rng), "image_size": IMAGE_SIZE}
                status, answer = connection.post_json("/api/jobs", body)
                if status != 202:
                    with lock:
                        failures.append(f"{status} {answer[:200]!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=submitter, args=(i,)) for i in range(SUBMITTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def _unfinished(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        row = connection.execute(
            "SELECT count(*) FROM jobs WHERE status IN ('submitting', 'pending', 'downloading')"
        ).fetchone()
    return int(row[0])


def _epoch(value: str | None) -> float | None:
    # The app stores naive UTC (app.models.UTCDateTime).
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


def _records(database: Path) -> list[JobRecord]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        rows = connection.execute(
            "SELECT status, upstream_job_id, created_at, upstream_completed_at, finished_at"
            " FROM jobs ORDER BY id"
        ).fetchall()
    return [
        JobRecord(status, upstream_id, _epoch(created) or 0.0, _epoch(seen), _epoch(finished))
        for status, upstream_id, created, seen, finished in rows
    ]


def _peak_in_flight(records: list[JobRecord]) -> int:
    events = sorted(
        [(r.created_at, 1) for r in records]
        + [(r.finished_at, -1) for r in records if r.finished_at is not None]
    )
    peak = level = 0
    for _, change in events:
        level += change
        peak = max(peak, level)
    return peak

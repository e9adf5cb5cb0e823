"""The same gallery on SQLite and on PostgreSQL, measured side by side in one run.

One seed generates the same jobs and images twice: into a data dir's SQLite file
with the SQLite blob store, and into a PostgreSQL database with the PostgreSQL
blob store (what the app opens for each). Each is served by its own app process,
both at once; every round requests every probe from both, shuffled together, so
drift on a shared machine lands on both sides of each ratio alike. Before any
timing, both must give the same answers: the same ids on each page, the same
search hits, the same image bytes. A faster wrong answer is no figure at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import sqlalchemy as sa

from app.storage.db import postgres
from app.storage.db.engine import Database
from bench.gallery import DEEP, SEARCH_WORD, Latency
from bench.generate import Dataset, generate, image_holding
from bench.imagery import PoolImage
from bench.measure import BenchError, Connection, interleaved_timings, percentile, timer
from bench.report import Report
from bench.server import serve_app_process
from tests.support.postgres import PostgresCluster, find_bin_dir

SECTION = "SQLite and PostgreSQL"
DATABASES = ("sqlite", "postgresql")
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
# Two words in a row, one setting in eleven has it.
SEARCH_PHRASE = '"golden hour"'


@dataclass(frozen=True)
class Probe:
    name: str
    # What is timed (the page a person sees, or the image bytes) ...
    path: str
    # ... and what both databases must agree on first: an /api/gallery listing whose
    # image ids are compared, or (`same_bytes`) the bytes served.
    listing: str | None = None
    same_bytes: bool = False


def probes(dataset: Dataset, image_id: int) -> list[Probe]:
    deep = f"cursor={dataset.job_cursor(DEEP)}.0"
    word, phrase = f"q={quote_plus(SEARCH_WORD)}", f"q={quote_plus(SEARCH_PHRASE)}"
    return [
        Probe("/healthz (floor)", "/healthz"),
        Probe("/gallery first page", "/gallery", "/api/gallery"),
        Probe("/gallery deep page (keyset)", f"/gallery?{deep}", f"/api/gallery?{deep}"),
        Probe("/gallery search, one word", f"/gallery?{word}", f"/api/gallery?{word}"),
        Probe("/gallery search, a phrase", f"/gallery?{phrase}", f"/api/gallery?{phrase}"),
        Probe("full-size image", f"/api/images/{image_id}", same_bytes=True),
        Probe("thumbnail", f"/api/images/{image_id}/thumbnail", same_bytes=True),
    ]


@dataclass(frozen=True)
class DatabasesRun:
    jobs: int
    images: int
    # Per database: each probe's answer (image ids of a listing, sha256 of image bytes).
    answers: dict[str, dict[str, list[int] | str]]
    latencies: dict[str, dict[str, Latency]]
    generated_seconds: dict[str, float]

    def ratio(self, probe: str, which: str) -> float:
        postgresql = getattr(self.latencies["postgresql"][probe], which)
        sqlite = getattr(self.latencies["sqlite"][probe], which)
        return float(postgresql / sqlite)


def measure(
    work_dir: Path,
    pool: Sequence[PoolImage],
    *,
    postgres_url: str,
    jobs: int,
    rounds: int,
    warmup: int,
    api_key: str,
    base_url: str,
) -> DatabasesRun:
    """Generate, check and time both; `postgres_url` names an empty PostgreSQL database."""
    urls: dict[str, str | None] = {"sqlite": None, "postgresql": postgres_url}
    datasets = {
        kind: generate(work_dir / f"gallery-{kind}", jobs=jobs, pool=pool, database_url=url)
        for kind, url in urls.items()
    }
    sqlite_data = datasets["sqlite"]
    if any((d.jobs, d.images, d.last_image_id) != _shape(sqlite_data) for d in datasets.values()):
        raise BenchError("the same seed generated different galleries")
    # The most common size, 2K square: ~5.7 MB of photo-like PNG.
    picture = next(p for p in pool if p.width == p.height == 2048)
    image_id = image_holding(sqlite_data, picture)
    measured = probes(sqlite_data, image_id)

    with (
        serve_app_process(
            work_dir,
            "app-sqlite",
            data_dir=sqlite_data.data_dir,
            api_key=api_key,
            base_url=base_url,
        ) as sqlite_app,
        serve_app_process(
            work_dir,
            "app-postgresql",
            data_dir=datasets["postgresql"].data_dir,
            api_key=api_key,
            base_url=base_url,
            settings={"database_url": postgres_url},
        ) as postgresql_app,
    ):
        apps = {"sqlite": sqlite_app, "postgresql": postgresql_app}
        connections = {
            kind: Connection(app.port, token=datasets[kind].token) for kind, app in apps.items()
        }
        try:
            answers = {kind: _answers(connections[kind], measured) for kind in DATABASES}
            for probe in measured:
                if answers["sqlite"].get(probe.name) != answers["postgresql"].get(probe.name):
                    raise BenchError(f"{probe.name}: SQLite and PostgreSQL answered differently")
            timers: dict[str, Callable[[], float]] = {
                f"{kind} {probe.name}": timer(connections[kind], probe.path)
                for kind in DATABASES
                for probe in measured
            }
            samples = interleaved_timings(timers, rounds=rounds, warmup=warmup)
        finally:
            for connection in connections.values():
                connection.close()

    def latency(kind: str, probe: Probe) -> Latency:
        values = samples[f"{kind} {probe.name}"]
        return Latency(percentile(values, 0.5), percentile(values, 0.99))

    return DatabasesRun(
        jobs=sqlite_data.jobs,
        images=sqlite_data.images,
        answers=answers,
        latencies={kind: {p.name: latency(kind, p) for p in measured} for kind in DATABASES},
        generated_seconds={kind: d.seconds for kind, d in datasets.items()},
    )


@contextmanager
def throwaway_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL server of the run's own (Debian's binaries), stopped and its files
    removed afterwards: on an error or Ctrl-C too, and by its watchdog if the run is killed."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise BenchError("PostgreSQL server binaries not found (apt install postgresql)")
    cluster = PostgresCluster.start_new(bin_dir)
    try:
        yield cluster
    finally:
        cluster.stop()


def measure_on_a_new_cluster(
    work_dir: Path, pool: Sequence[PoolImage], **options: Any
) -> DatabasesRun:
    """`measure` against a throwaway PostgreSQL server, stopped after."""
    with throwaway_cluster() as cluster:
        return measure(
            work_dir, pool, postgres_url=cluster.create_database("bench_gallery"), **options
        )


def check_ready_for_queries(url: str) -> None:
    """A bulk-generated PostgreSQL gallery as a served one would be: the prompt search's
    GIN index in place (the migrations make it) and the planner's statistics gathered
    (autovacuum would gather them only some time later). Timing without either measures
    a plan the app would not get."""
    db = Database(url)
    try:
        with db.read_engine.connect() as connection:
            indexes = connection.execute(
                sa.text("SELECT count(*) FROM pg_indexes WHERE indexname = :name"),
                {"name": postgres.PROMPT_SEARCH_INDEX},
            ).scalar()
            unanalysed = connection.execute(
                sa.text(
                    "SELECT relname FROM pg_stat_user_tables"
                    " WHERE relname IN ('jobs', 'images')"
                    " AND last_analyze IS NULL AND last_autoanalyze IS NULL"
                )
            ).scalars()
            never = sorted(unanalysed)
    finally:
        db.dispose()
    if not indexes:
        raise BenchError(f"the gallery has no {postgres.PROMPT_SEARCH_INDEX} index to search with")
    if never:
        raise BenchError(f"the planner has no statistics for {', '.join(never)}")


def report(report: Report, run: DatabasesRun) -> None:
    for kind, seconds in run.generated_seconds.items():
        report.info(
            SECTION,
            f"N={run.jobs:,} jobs ({run.images:,} images) into {LABELS[kind]}",
            seconds,
            "s",
        )
    for name in run.latencies["sqlite"]:
        for which in ("p50", "p99"):
            sqlite = getattr(run.latencies["sqlite"][name], which) * 1000
            postgresql = getattr(run.latencies["postgresql"][name], which) * 1000
            report.info(
                SECTION,
                f"{name}: {which} PostgreSQL / SQLite",
                run.ratio(name, which),
                "×",
                note=f"SQLite {sqlite:.2f} ms, PostgreSQL {postgresql:.2f} ms",
            )


def _shape(dataset: Dataset) -> tuple[int, int, int]:
    return dataset.jobs, dataset.images, dataset.last_image_id


def _answers(connection: Connection, measured: Sequence[Probe]) -> dict[str, list[int] | str]:
    answers: dict[str, list[int] | str] = {}
    for probe in measured:
        body = connection.get_ok(probe.path)
        if probe.same_bytes:
            answers[probe.name] = hashlib.sha256(body).hexdigest()
        if probe.listing is None:
            continue
        items = json.loads(connection.get_ok(probe.listing))["items"]
        if not items:
            raise BenchError(f"{probe.listing} found nothing: there is nothing to compare")
        answers[probe.name] = [int(item["id"]) for item in items]
    return answers

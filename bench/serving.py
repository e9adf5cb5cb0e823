"""Image serving from each blob store against Starlette's FileResponse serving the same bytes.

Both are routes of the same app in the same server process, requested
alternately over one keep-alive connection, so they pay the same HTTP cost and
the same noise; the ratio is the price of keeping images in the store.

The stores: SQLite (the data dir's `images.db`, in the run's small gallery),
PostgreSQL (chunked `bytea` rows in a database of a throwaway server) and S3
(moto's server on loopback, a process of its own), each with a small gallery
of its own. S3 is measured twice: streamed through the app, and with
`s3_redirect_seconds` set, when the app answers a 307 to a presigned URL and the
bucket sends the bytes; that figure is the redirect's own, the app's whole part,
and S3's target is on it (the streamed figures are printed beside it).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import databases
from bench.generate import Dataset, generate, image_holding
from bench.imagery import PoolImage
from bench.measure import BenchError, Connection, compare_throughput
from bench.report import Report
from bench.server import FILES_PREFIX, AppProcess, serve_app_process
from tests.support.s3server import AWS_ENVIRONMENT, S3Server

SECTION = "image serving"
RATIO_MIN = 0.5
# A gallery is only there to name the image served: a few jobs do.
STORE_JOBS = 40
# How long the app's presigned URLs live when it redirects (any value > 0 makes it redirect).
REDIRECT_SECONDS = 300


@dataclass(frozen=True)
class Store:
    """Where the app serves images from: the label in the figures, the gallery whose
    rows name them, and the settings the app is served with."""

    label: str
    dataset: Dataset
    settings: dict[str, Any] = field(default_factory=dict)
    # For people: where the bytes are.
    where: str = "the data dir's images.db"
    # The app answers a 307 to the bucket instead of the bytes.
    redirects: bool = False
    # Why its ratio has no target, if it has none.
    untargeted: str = ""

    @property
    def targeted(self) -> bool:
        return not self.untargeted

    @property
    def section(self) -> str:
        """SQLite's figures keep the section they always had; each other store has its own."""
        return SECTION if self.label == "SQLite" else f"{SECTION} from {self.label}"


def measure(
    report: Report,
    app: AppProcess,
    store: Store,
    pool: Sequence[PoolImage],
    *,
    rounds: int,
    full_per_round: int,
    thumbnails_per_round: int,
) -> None:
    # The most common size, 2K square: ~5.7 MB of photo-like PNG.
    picture = next(p for p in pool if p.width == p.height == 2048)
    image_id = image_holding(store.dataset, picture)
    cases = [
        (
            "full image",
            f"/api/images/{image_id}",
            f"{FILES_PREFIX}/{picture.path.name}",
            picture.path,
            full_per_round,
        ),
        (
            "thumbnail",
            f"/api/images/{image_id}/thumbnail",
            f"{FILES_PREFIX}/{picture.thumbnail_path.name}",
            picture.thumbnail_path,
            thumbnails_per_round,
        ),
    ]
    connection = Connection(app.port, token=store.dataset.token)
    try:
        for label, subject, baseline, source, per_round in cases:
            expected = hashlib.sha256(source.read_bytes()).hexdigest()
            for path in (subject, baseline):
                if (
                    _served_digest(connection, path, redirect=store.redirects and path == subject)
                    != expected
                ):
                    raise BenchError(f"{path} did not serve the bytes of {source.name}")
            size = source.stat().st_size
            result = compare_throughput(
                connection,
                subject=subject,
                baseline=baseline,
                body_bytes=size,
                rounds=rounds,
                per_round=per_round,
                subject_status=307 if store.redirects else 200,
            )
            what = case_name(label, size)
            moved = (
                "a 307 to the bucket"
                if store.redirects
                else f"{result.subject.bytes_per_second / 1e6:.0f} MB/s"
            )
            report.info(
                store.section,
                f"{what}: {store.label}, requests/s",
                result.subject.requests_per_second,
                "/s",
                note=moved,
            )
            report.info(
                store.section,
                f"{what}: FileResponse, requests/s",
                result.baseline.requests_per_second,
                "/s",
                note=f"{result.baseline.bytes_per_second / 1e6:.0f} MB/s",
            )
            name = f"{what}: {store.label} against FileResponse"
            rounds_note = f"rounds {min(result.ratios):.2f}–{max(result.ratios):.2f}"
            if store.targeted:
                report.at_least(store.section, name, result.ratio, RATIO_MIN, "×", rounds_note)
            else:
                report.info(
                    store.section, name, result.ratio, "×", f"{rounds_note}; {store.untargeted}"
                )
    finally:
        connection.close()


def case_name(label: str, size: int) -> str:
    """What is served and its size, as the figures name it."""
    return f"{label} ({size / 1e6:.2f} MB)" if size > 1e6 else f"{label} ({size / 1e3:.0f} KB)"


def _served_digest(connection: Connection, path: str, *, redirect: bool) -> str:
    """The sha256 of what `path` serves; of a redirect, of what its URL serves."""
    if not redirect:
        return hashlib.sha256(connection.get_ok(path)).hexdigest()
    answer = httpx.get(connection.location(path), timeout=60)
    if answer.status_code != 200:
        raise BenchError(f"{path} redirected to a URL that answered {answer.status_code}")
    return hashlib.sha256(answer.content).hexdigest()


def measure_stores(
    report: Report,
    work_dir: Path,
    pool: Sequence[PoolImage],
    *,
    api_key: str,
    base_url: str,
    rounds: int,
    full_per_round: int,
    thumbnails_per_round: int,
) -> None:
    """PostgreSQL's store and S3's (streamed, then redirected), each in an app of its own."""
    for label, stores in (("PostgreSQL", postgresql_stores), ("S3", s3_stores)):
        with stores(work_dir / f"serving-{label.lower()}", pool) as each:
            for store in each:
                report.section(f"{store.section} ({store.where})")
                with serve_app_process(
                    work_dir,
                    f"app-serving-{store.label.lower().replace(' ', '-')}",
                    data_dir=store.dataset.data_dir,
                    api_key=api_key,
                    base_url=base_url,
                    files_dir=pool[0].path.parent,
                    settings=store.settings,
                ) as app:
                    measure(
                        report,
                        app,
                        store,
                        pool,
                        rounds=rounds,
                        full_per_round=full_per_round,
                        thumbnails_per_round=thumbnails_per_round,
                    )


@contextmanager
def postgresql_stores(work_dir: Path, pool: Sequence[PoolImage]) -> Iterator[list[Store]]:
    """A small gallery, rows and bytes, in a database of a throwaway PostgreSQL server."""
    with databases.throwaway_cluster() as cluster:
        url = cluster.create_database("bench_serving")
        dataset = generate(work_dir, jobs=STORE_JOBS, pool=pool, database_url=url)
        yield [Store("PostgreSQL", dataset, {"database_url": url}, "a throwaway server")]


@contextmanager
def s3_stores(work_dir: Path, pool: Sequence[PoolImage]) -> Iterator[list[Store]]:
    """A small gallery whose bytes are in a bucket of moto's server on loopback: served
    through the app, and by a redirect to the bucket."""
    with aws_environment():
        server = S3Server.start()
        try:
            bucket = {
                "blob_url": f"s3://{server.create_bucket()}/gallery",
                "s3_endpoint_url": server.endpoint_url,
            }
            dataset = generate(work_dir, jobs=STORE_JOBS, pool=pool, settings=bucket)
            where = "moto's server on loopback"
            yield [
                # Through the app, each request is one more to the bucket (to moto, a Python
                # server, on a new connection each time): the target is the redirect's, as
                # where a store offers one it is the way to serve from it.
                Store("S3", dataset, bucket, where, untargeted="the target is the redirect's"),
                Store(
                    "S3 redirect",
                    dataset,
                    {**bucket, "s3_redirect_seconds": REDIRECT_SECONDS},
                    f"{where}; the app answers a 307 to a presigned URL",
                    redirects=True,
                ),
            ]
        finally:
            server.stop()


@contextmanager
def aws_environment() -> Iterator[None]:
    """The credentials moto accepts, for this process (the generator's store) and the app
    processes it starts (which inherit them); a developer's own are put back after."""
    before = {name: os.environ.get(name) for name in AWS_ENVIRONMENT}
    os.environ.update(AWS_ENVIRONMENT)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

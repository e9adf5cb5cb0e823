"""Image serving from SQLite against Starlette's FileResponse serving the same bytes from a file.

Both are routes of the same app in the same server process, requested
alternately over one keep-alive connection, so they pay the same HTTP cost and
the same noise; the ratio is the price of keeping images in the database.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from bench.imagery import PoolImage
from bench.measure import BenchError, Connection, compare_throughput
from bench.report import Report
from bench.server import FILES_PREFIX, AppProcess

SECTION = "image serving"
RATIO_MIN = 0.5


def image_of(database: Path, picture: PoolImage) -> int:
    """An image row that holds `picture`'s bytes."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        row = connection.execute(
            "SELECT id FROM images WHERE sha256 = ? ORDER BY id LIMIT 1", (picture.sha256,)
        ).fetchone()
    if row is None:
        raise BenchError(f"no generated image holds {picture.path.name}")
    return int(row[0])


def measure(
    report: Report,
    app: AppProcess,
    database: Path,
    pool: Sequence[PoolImage],
    *,
    token: str | None,
    rounds: int,
    full_per_round: int,
    thumbnails_per_round: int,
) -> None:
    # The most common size, 2K square: ~5.7 MB of photo-like PNG.
    picture = next(p for p in pool if p.width == p.height == 2048)
    image_id = image_of(database, picture)
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
    connection = Connection(app.port, token=token)
    try:
        for label, subject, baseline, source, per_round in cases:
            expected = hashlib.sha256(source.read_bytes()).hexdigest()
            for path in (subject, baseline):
                if hashlib.sha256(connection.get_ok(path)).hexdigest() != expected:
                    raise BenchError(f"{path} did not serve the bytes of {source.name}")
            size = source.stat().st_size
            result = compare_throughput(
                connection,
                subject=subject,
                baseline=baseline,
                body_bytes=size,
                rounds=rounds,
                per_round=per_round,
            )
            what = (
                f"{label} ({size / 1e6:.2f} MB)" if size > 1e6 else f"{label} ({size / 1e3:.0f} KB)"
            )
            report.info(
                SECTION,
                f"{what}: SQLite, requests/s",
                result.subject.requests_per_second,
                "/s",
                note=f"{result.subject.bytes_per_second / 1e6:.0f} MB/s",
            )
            report.info(
                SECTION,
                f"{what}: FileResponse, requests/s",
                result.baseline.requests_per_second,
                "/s",
                note=f"{result.baseline.bytes_per_second / 1e6:.0f} MB/s",
            )
            report.at_least(
                SECTION,
                f"{what}: SQLite against FileResponse",
                result.ratio,
                RATIO_MIN,
                "×",
                note=f"rounds {min(result.ratios):.2f}–{max(result.ratios):.2f}",
            )
    finally:
        connection.close()

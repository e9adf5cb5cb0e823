"""Download memory: what storing one 4096×4096 PNG (the largest the model makes) costs the app.

The running app's resident memory is the baseline; its peak (VmHWM, reset just
before) while it downloads, checks, thumbnails and stores one realistic 4K PNG
(~22 MB of photo-like pixels) is the figure. The file's bytes should stream
(download to a scratch file, into the blob store in chunks) and never be held
whole; decoding needs the pixels once (w × h × 3 bytes), and nothing should need
them twice. Serving the image back is measured the same way.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

from app.domain.parameters import NAMED_SIZE_PIXELS
from bench.imagery import photo_like, png_bytes
from bench.measure import BenchError, Connection
from bench.report import Report
from bench.server import AppProcess, serve_app_process
from bench.upstream import EMULATOR_SETTINGS, serve_upstream

SECTION = "download memory"
SIDE = 4096
MB = 1024 * 1024
# Storing may hold the decoded pixels once plus buffers worth at most one file (it holds
# a chunk or a few at a time); holding the whole file on top of its own buffers, or a
# second frame, goes over.
STORING_FILE_SHARE_MAX = 1.0
# Serving streams the blob in chunks: a few of them, never the whole file.
SERVING_FILE_SHARE_MAX = 0.25


def measure(report: Report, work_dir: Path) -> None:
    started = time.perf_counter()
    png = png_bytes(photo_like(SIDE, SIDE))
    report.info(
        SECTION,
        f"a {SIDE}×{SIDE} PNG made",
        len(png) / MB,
        "MB",
        note=f"in {time.perf_counter() - started:.1f} s",
    )
    # Pillow holds RGB as 4 bytes a pixel (RGBX).
    decoded = SIDE * SIDE * 4
    with serve_upstream(job_seconds=0.5, pictures={(SIDE, SIDE): [png]}) as upstream:
        upstream.emulator.prepare(*NAMED_SIZE_PIXELS["auto_2K"])
        with serve_app_process(
            work_dir,
            "app-memory",
            data_dir=work_dir / "data",
            api_key=upstream.api_key,
            base_url=upstream.base_url,
            settings=EMULATOR_SETTINGS,
        ) as app:
            database = work_dir / "data" / "playground.db"
            # One ordinary job first: what the app loads on first use is not the figure.
            _run_job(app, database, "auto_2K")
            baseline = app.rss_bytes()
            app.reset_peak_rss()
            image_id = _run_job(app, database, "auto_4K")
            storing = app.peak_rss_bytes() - baseline

            baseline = app.rss_bytes()
            app.reset_peak_rss()
            connection = Connection(app.port)
            try:
                served = connection.get_ok(f"/api/images/{image_id}")
            finally:
                connection.close()
            serving = app.peak_rss_bytes() - baseline
            if hashlib.sha256(served).hexdigest() != _sha256_of(database, image_id):
                raise BenchError("the stored 4K image came back different")

    report.info(SECTION, "its pixels decoded (w × h × 4 bytes in Pillow)", decoded / MB, "MB")
    report.at_most(
        SECTION,
        "storing it: peak memory above the running app",
        storing / MB,
        (decoded + STORING_FILE_SHARE_MAX * len(png)) / MB,
        "MB",
        note=f"{storing / len(png):.2f}× the file; target: the pixels once + the file once",
    )
    report.at_most(
        SECTION,
        "serving it back: peak memory above the running app",
        max(0, serving) / MB,
        SERVING_FILE_SHARE_MAX * len(png) / MB,
        "MB",
        note=f"{max(0, serving) / len(png):.2f}× the file",
    )


def _sha256_of(database: Path, image_id: int) -> str:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        row = db.execute("SELECT sha256 FROM images WHERE id = ?", (image_id,)).fetchone()
    return str(row[0])


def _run_job(app: AppProcess, database: Path, image_size: str) -> int:
    """Submit one job through the API and wait until it is stored; returns its image id."""
    connection = Connection(app.port)
    try:
        status, body = connection.post_json(
            "/api/jobs", {"prompt": "a lighthouse at dawn, photoreal", "image_size": image_size}
        )
    finally:
        connection.close()
    if status != 202:
        raise BenchError(f"submitting a {image_size} job answered {status}: {body[:200]!r}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
            row = db.execute(
                "SELECT jobs.status, max(images.id) FROM jobs"
                " LEFT JOIN images ON images.job_id = jobs.id"
                " WHERE jobs.id = (SELECT max(id) FROM jobs) GROUP BY jobs.id"
            ).fetchone()
        if row and row[0] not in ("submitting", "pending", "downloading"):
            if row[0] != "completed" or row[1] is None:
                raise BenchError(f"the {image_size} job ended {row[0]}:\n{app.log_tail()}")
            return int(row[1])
        time.sleep(0.05)
    raise BenchError(f"the {image_size} job did not finish in time")

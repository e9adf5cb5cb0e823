"""Jobs put straight into a database (due to be polled, or downloading) and images staged as
the downloader stages them, for the tests of the queue and of what each role does."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from PIL import Image as PILImage
from sqlmodel import col, select

from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow
from app.storage.intake import StagedImage, check_image


def add_due_jobs(db: Database, count: int, *, now: datetime) -> list[int]:
    rows = [
        {
            "created_at": now,
            "updated_at": now,
            "model": "seedream-4",
            "prompt": f"queued {n}",
            "image_size": "auto_2K",
            "num_images": 1,
            "request_body": {},
            "status": JobStatus.PENDING,
            "upstream_job_id": f"job_queued_{n}",
            "next_poll_at": now - timedelta(seconds=count - n),
            "poll_count": 0,
            "estimated_credits": 1.0,
        }
        for n in range(count)
    ]
    with db.write() as session:
        session.connection().execute(sa.insert(Job.__table__), rows)  # type: ignore[attr-defined]
    with db.read() as session:
        return [job_id for job_id in session.exec(select(Job.id)).all() if job_id is not None]


def staged_image(tmp_path: Path, name: str) -> StagedImage:
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 48), (200, 40, 90)).save(buffer, format="PNG")
    path = tmp_path / name
    path.write_bytes(buffer.getvalue())
    return StagedImage(
        index=0,
        source_url="https://example.invalid/a.png",
        path=path,
        byte_size=len(buffer.getvalue()),
        sha256=hashlib.sha256(buffer.getvalue()).hexdigest(),
        checked=check_image(path),
    )


def downloading_job(db: Database) -> int:
    now = utcnow()
    [job_id] = add_due_jobs(db, 1, now=now)
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id) == job_id)
            .values(status=JobStatus.DOWNLOADING, output_urls=["https://example.invalid/a.png"])
        )
    return job_id

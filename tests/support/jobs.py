"""Jobs put straight into a database (due to be polled, downloading, or ended by another
process) and images staged as the downloader stages them, for the tests of the queue and of
what each role does; and waiting for a job to finish through the API."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from PIL import Image as PILImage
from sqlmodel import col, select

from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow
from app.storage.intake import StagedImage, check_image
from tests.support.apps import InProcessClient
from tests.support.waiting import wait_until


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


def end_job_elsewhere(
    db: Database, job_id: int, status: JobStatus, error: str | None = None
) -> None:
    """What another process ending a job writes (its worker held the lease, not ours)."""
    now = utcnow()
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id) == job_id)
            .values(
                status=status,
                error=error,
                finished_at=now,
                updated_at=now,
                next_poll_at=None,
                lease_owner=None,
                lease_expires_at=None,
            )
        )


def wait_for_job(
    client: httpx.Client | InProcessClient, job_id: int, *, timeout: float = 20.0
) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").json()
        return job if job["finished"] else None

    result: dict[str, Any] = wait_until(finished, timeout=timeout, what=f"job {job_id} to finish")
    return result

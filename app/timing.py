"""How long jobs take: the estimate a running job shows, from the jobs before it."""

from __future__ import annotations

import statistics

from sqlmodel import col, select

from app.database import Database
from app.models import Job, JobStatus

# Enough recent jobs to smooth out one slow one, few enough to follow a change of pace.
SAMPLE_SIZE = 20


def typical_seconds(
    db: Database, *, models: list[str], sample: int = SAMPLE_SIZE
) -> dict[str, float]:
    """Median seconds from creation to stored images of each model's recent completed jobs."""
    typical: dict[str, float] = {}
    with db.read() as session:
        for model in models:
            rows = session.exec(
                select(Job.created_at, Job.finished_at)
                .where(Job.model == model, Job.status == JobStatus.COMPLETED)
                .order_by(col(Job.id).desc())
                .limit(sample)
            ).all()
            durations = [
                (finished - created).total_seconds() for created, finished in rows if finished
            ]
            if durations:
                typical[model] = round(statistics.median(durations), 1)
    return typical

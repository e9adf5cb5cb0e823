"""The lease queue on both databases: claimers working at once never get the same job, a
killed worker's jobs are taken over when its lease runs out, and on PostgreSQL claimers
pass over rows another one is taking instead of waiting for them (SKIP LOCKED)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from app.features.jobs import queue
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, Worker, utcnow
from tests.support.databases import DatabaseChoice
from tests.support.jobs import add_due_jobs

pytestmark = pytest.mark.both_databases


def test_claimers_working_at_once_never_get_the_same_job(
    tmp_path: Path, database: DatabaseChoice, db: Database
) -> None:
    """Four workers, each with connections of its own (as four processes would have), claim
    from one queue at once until it is empty: each job goes to exactly one of them."""
    now = utcnow()
    job_ids = add_due_jobs(db, 120, now=now)
    workers = [f"worker-{n}" for n in range(4)]
    for worker in workers:
        queue.register_worker(db, worker_id=worker)
    claimed: dict[str, list[int]] = {worker: [] for worker in workers}
    errors: list[BaseException] = []
    starting = threading.Barrier(len(workers))

    def work(worker: str) -> None:
        own = database.open(tmp_path)
        try:
            starting.wait()
            while True:
                jobs = queue.claim_due_jobs(own, owner=worker, now=now, lease_seconds=300, limit=3)
                if not jobs:
                    return
                claimed[worker].extend(job.id for job in jobs if job.id is not None)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=work, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    every_claim = Counter(job_id for jobs in claimed.values() for job_id in jobs)
    assert sorted(every_claim) == sorted(job_ids)
    assert set(every_claim.values()) == {1}, "a job was claimed twice"
    # The rows say the same: each job is leased to the worker that got it.
    with db.read() as session:
        owners = dict(session.exec(select(Job.id, Job.lease_owner)).all())
    for worker, jobs in claimed.items():
        assert all(owners[job_id] == worker for job_id in jobs)


def test_a_killed_workers_jobs_are_taken_over_when_its_lease_runs_out(db: Database) -> None:
    now = utcnow()
    add_due_jobs(db, 3, now=now)
    queue.register_worker(db, worker_id="killed")
    queue.register_worker(db, worker_id="survivor")
    taken = queue.claim_due_jobs(db, owner="killed", now=now, lease_seconds=30, limit=10)
    assert len(taken) == 3
    # "killed" stops here: no heartbeat, no release. While its lease lasts (and its last
    # heartbeat is recent) its jobs are its own...
    soon = now + timedelta(seconds=10)
    assert queue.claim_due_jobs(db, owner="survivor", now=soon, lease_seconds=30, limit=10) == []
    # ...and once the lease has run out, the survivor takes every one of them over.
    later = now + timedelta(seconds=31)
    taken_over = queue.claim_due_jobs(db, owner="survivor", now=later, lease_seconds=30, limit=10)
    assert {job.id for job in taken_over} == {job.id for job in taken}
    assert {job.lease_owner for job in taken_over} == {"survivor"}


def test_a_live_workers_heartbeat_keeps_its_jobs(db: Database) -> None:
    now = utcnow()
    add_due_jobs(db, 2, now=now)
    queue.register_worker(db, worker_id="busy")
    taken = queue.claim_due_jobs(db, owner="busy", now=now, lease_seconds=30, limit=10)
    queue.heartbeat(
        db, worker_id="busy", job_ids=[job.id for job in taken if job.id], lease_seconds=30
    )
    with db.read() as session:
        leases = session.exec(select(Job.lease_expires_at)).all()
    assert all(lease is not None and lease > now + timedelta(seconds=29) for lease in leases)
    # Renewed: past the first lease's end (but within the renewed one) nobody takes them.
    assert (
        queue.claim_due_jobs(
            db, owner="other", now=now + timedelta(seconds=20), lease_seconds=30, limit=10
        )
        == []
    )


def test_a_heartbeat_keeps_the_submitter_beside_the_worker_alive(db: Database) -> None:
    """A job being submitted is leased to the process's submitter, whose id is alive while
    the process's worker beats: other workers leave the job alone until its lease ends."""
    now = utcnow()
    [job_id] = add_due_jobs(db, 1, now=now)
    for worker_id in ("worker", "worker submitting"):
        queue.register_worker(db, worker_id=worker_id)
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id) == job_id)
            .values(
                status=JobStatus.SUBMITTING,
                lease_owner="worker submitting",
                lease_expires_at=now + timedelta(seconds=90),
            )
        )
    with db.write() as session:
        # A minute without a beat: both would look dead.
        session.execute(sa.update(Worker).values(heartbeat_at=now - timedelta(seconds=60)))
    queue.heartbeat(
        db, worker_id="worker", job_ids=[], lease_seconds=30, also_alive=["worker submitting"]
    )
    live = queue.live_worker_ids(db, now=utcnow(), lease_seconds=30)
    assert {"worker", "worker submitting"} <= live
    queue.register_worker(db, worker_id="other")
    assert queue.claim_due_jobs(db, owner="other", now=utcnow(), lease_seconds=30, limit=1) == []
    # Its lease still ends: a submitter that hung gives the job up in the end.
    ended = now + timedelta(seconds=91)
    assert len(queue.claim_due_jobs(db, owner="other", now=ended, lease_seconds=30, limit=1)) == 1


def test_claims_on_postgres_skip_rows_another_claimer_is_taking_instead_of_waiting(
    postgres_database: DatabaseChoice,
) -> None:
    """While one transaction holds the oldest due jobs locked, another claim takes the next
    ones at once: it neither waits for the lock nor gets the locked jobs. (SQLite has one
    writer at a time, so there are no row locks to skip.)"""
    db = postgres_database.open(Path("unused"))
    now = utcnow()
    job_ids = add_due_jobs(db, 6, now=now)
    oldest = sorted(job_ids)[:3]
    with db.write_engine.connect() as holder:
        holder.execute(
            sa.select(col(Job.id)).where(col(Job.id).in_(oldest)).with_for_update()
        ).all()
        result: list[list[int]] = []
        claim = threading.Thread(
            target=lambda: result.append(
                [
                    job.id
                    for job in queue.claim_due_jobs(
                        db, owner="second", now=now, lease_seconds=30, limit=3
                    )
                    if job.id is not None
                ]
            )
        )
        claim.start()
        claim.join(timeout=10)
        still_waiting = claim.is_alive()
        holder.rollback()
    claim.join(timeout=10)
    db.dispose()
    assert not still_waiting, "the claim waited for the locked rows"
    assert result and sorted(result[0]) == sorted(set(job_ids) - set(oldest))

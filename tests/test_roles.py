"""Web processes and workers apart: `serve --no-worker`, `seedream-playground worker`, leases
fenced by their claim's token, and what every process shares through the database (job
changes, the signing secret, the upstream rate budget)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from app.cli import main as cli
from app.core.config import Settings
from app.core.loopback import LoopbackServer
from app.emulator import Fault
from app.features.jobs import queue
from app.features.jobs.events import JobEvents, JobWatch, shown_states
from app.features.models.rate_budget import SharedRateLimiter
from app.features.people.access import SECRET_FILE, load_secret
from app.storage.blobs.choose import open_blob_store
from app.storage.db.engine import Database
from app.storage.db.tables import Image, Job, JobStatus, utcnow
from app.upstream import UpstreamJob, UpstreamState
from app.web.factory import create_app
from app.worker.role import run_worker
from tests.support.apps import SAME_ORIGIN, make_settings
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator
from tests.support.jobs import (
    add_due_jobs,
    downloading_job,
    end_job_elsewhere,
    staged_image,
    wait_for_job,
)
from tests.support.waiting import wait_until

# --- Fencing ---------------------------------------------------------------------------------


@pytest.mark.both_databases
def test_a_worker_whose_lease_was_taken_over_can_no_longer_write(
    tmp_path: Path, database: DatabaseChoice, db: Database
) -> None:
    """Worker A's heartbeat lagged past its lease and B took the job: everything A still
    tries (renew before a download, record a poll, store its images) changes nothing, and
    B stores the images once."""
    job_id = downloading_job(db)
    settings = make_settings(tmp_path / "data", None, database=database)
    blobs = open_blob_store(settings, database_url=db.url)
    now = utcnow()
    for worker in ("a", "b"):
        queue.register_worker(db, worker_id=worker)
    [held_by_a] = queue.claim_due_jobs(db, owner="a", now=now, lease_seconds=30, limit=1)
    later = now + timedelta(seconds=31)
    [held_by_b] = queue.claim_due_jobs(db, owner="b", now=later, lease_seconds=30, limit=1)
    assert held_by_b.lease_token > held_by_a.lease_token
    stale = held_by_a.lease_token

    assert not queue.renew_lease(db, job_id=job_id, owner="a", token=stale, lease_seconds=30)
    assert not queue.record_upstream_completion(
        db,
        job_id=job_id,
        owner="a",
        token=stale,
        upstream=UpstreamJob(job_id="x", status="completed", state=UpstreamState.COMPLETED),
        done_by_seconds=1.0,
    )
    queue.reschedule(
        db,
        job_id=job_id,
        owner="a",
        token=stale,
        delay_seconds=5,
        status=JobStatus.PENDING,
        error="stale",
        callback_seen=None,
    )
    queue.postpone(db, job_id=job_id, owner="a", token=stale, delay_seconds=5, callback_seen=None)
    assert not queue.finish(db, job_id=job_id, status=JobStatus.FAILED, owner="a", token=stale)
    assert not queue.store_images(
        db, blobs, job_id=job_id, owner="a", token=stale, staged=[staged_image(tmp_path, "a.png")]
    )
    with db.read() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.status, job.lease_owner, job.error) == (JobStatus.DOWNLOADING, "b", None)
        assert session.exec(select(Image)).all() == []

    current = held_by_b.lease_token
    assert queue.renew_lease(db, job_id=job_id, owner="b", token=current, lease_seconds=30)
    assert queue.store_images(
        db, blobs, job_id=job_id, owner="b", token=current, staged=[staged_image(tmp_path, "b.png")]
    )
    with db.read() as session:
        assert len(session.exec(select(Image).where(col(Image.job_id) == job_id)).all()) == 1
        assert session.get(Job, job_id).status is JobStatus.COMPLETED  # type: ignore[union-attr]
    blobs.close()


@pytest.mark.both_databases
def test_a_workers_own_later_claim_fences_off_its_earlier_one(db: Database) -> None:
    """The same worker claims a job again after its lease ran out (its heartbeat lagged while
    the first attempt was still under way): the first attempt can no longer write."""
    job_id = downloading_job(db)
    queue.register_worker(db, worker_id="a")
    now = utcnow()
    [first] = queue.claim_due_jobs(db, owner="a", now=now, lease_seconds=30, limit=1)
    [second] = queue.claim_due_jobs(
        db, owner="a", now=now + timedelta(seconds=31), lease_seconds=30, limit=1
    )
    assert not queue.renew_lease(
        db, job_id=job_id, owner="a", token=first.lease_token, lease_seconds=30
    )
    assert queue.renew_lease(
        db, job_id=job_id, owner="a", token=second.lease_token, lease_seconds=30
    )


def test_a_worker_taken_over_mid_download_fetches_nothing_more(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    """A two-image job: while the worker downloads the first image, another worker takes the
    job over. The first worker never asks for the second image and stores nothing; the new
    holder finishes it."""
    emulator.emulator.faults.add(Fault("image", kind="delay", delay_seconds=1.5))
    settings = make_settings(tmp_path / "data", emulator)
    app = create_app(settings)
    with (
        LoopbackServer(app) as server,
        httpx.Client(base_url=server.url, headers=SAME_ORIGIN, timeout=30) as client,
    ):
        job = client.post("/api/jobs", json={"prompt": "fenced", "num_images": 2}).json()
        wait_until(lambda: emulator.emulator.requests_to("image"), what="the first image request")
        db = Database.for_settings(settings)
        try:
            queue.register_worker(db, worker_id="other")
            later = utcnow() + timedelta(seconds=settings.lease_seconds + 1)
            [taken] = queue.claim_due_jobs(db, owner="other", now=later, lease_seconds=600, limit=1)
            assert taken.id == job["id"]
            poller = app.state.services.poller
            wait_until(lambda: not poller._storing, timeout=30, what="the first worker to give up")
            assert len(emulator.emulator.requests_to("image")) == 1
            with db.read() as session:
                row = session.get(Job, job["id"])
                assert row is not None
                assert (row.status, row.lease_owner) == (JobStatus.DOWNLOADING, "other")
                assert session.exec(select(Image)).all() == []
        finally:
            db.dispose()


# --- Roles -----------------------------------------------------------------------------------


class WorkerThread:
    """`run_worker` on an event loop of its own, as `seedream-playground worker` runs it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.stop_event = asyncio.Event()
            await run_worker(self.settings, stop=self.stop_event)

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:
            self.error = exc
        finally:
            self.loop.close()

    def __enter__(self) -> WorkerThread:
        self.thread.start()
        wait_until(lambda: self.stop_event is not None or self.error, what="the worker to start")
        return self

    def __exit__(self, *_: object) -> None:
        assert self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=30)
        assert self.error is None, self.error


@pytest.mark.both_databases
def test_a_web_only_app_submits_and_a_separate_worker_polls_and_stores(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    settings = make_settings(tmp_path / "web", emulator, database=database)
    app = create_app(settings, run_worker=False)
    with (
        LoopbackServer(app) as server,
        httpx.Client(base_url=server.url, headers=SAME_ORIGIN, timeout=30) as client,
    ):
        job = client.post("/api/jobs", json={"prompt": "web only", "num_images": 1}).json()
        assert job["status"] == "pending"
        db = database.open(tmp_path / "web")
        try:
            # Its first poll is due; a web-only app does not even claim it.
            wait_until(
                lambda: _due(db, job["id"]), what="the job's first poll to be due", timeout=10
            )
            with db.read() as session:
                row = session.get(Job, job["id"])
            assert row is not None and row.lease_owner is None and row.poll_count == 0
            assert emulator.emulator.requests_to("job") == []
        finally:
            db.dispose()
        # A worker with a data dir of its own (another machine), on the same database.
        worker_settings = make_settings(
            own_dir(tmp_path, "worker", database), emulator, database=database
        )
        with WorkerThread(worker_settings):
            done = wait_for_job(client, job["id"], timeout=30)
        assert done["status"] == "completed", done
        [image] = done["images"]
        served = client.get(image["url"])
        assert served.status_code == 200
        assert hashlib.sha256(served.content).hexdigest() == image["sha256"]
        assert list(emulator.emulator.served_images.values()) == [image["sha256"]]


def own_dir(tmp_path: Path, name: str, database: DatabaseChoice) -> Path:
    """A data dir of its own (another machine) on PostgreSQL; on SQLite, whose database is
    the data dir's file, the one data dir every process on the machine shares."""
    return tmp_path / name if database.url is not None else tmp_path / "web"


def _due(db: Database, job_id: int) -> bool:
    with db.read() as session:
        row = session.get(Job, job_id)
    return row is not None and row.next_poll_at is not None and row.next_poll_at < utcnow()


def test_demo_mode_has_no_separate_roles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    for argv in (["serve", "--no-worker"], ["worker"]):
        with pytest.raises(SystemExit) as refused:
            cli.main(argv)
        assert "PIXELDOJO_API_KEY is unset" in str(refused.value)
    with pytest.raises(ValueError, match="demo mode"):
        create_app(make_settings(tmp_path / "data", None), run_worker=False)


def test_worker_concurrency_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["worker", "--concurrency", "0"]) == 2, "a command used wrongly"
    said = capsys.readouterr().err
    assert said.count("\n") == 1, "one line"
    assert "--concurrency must be 1 or more" in said


# --- Shared through the database -------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.both_databases
async def test_a_job_changed_by_another_process_wakes_this_ones_streams_and_workers(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    """Nothing in this process writes: the change comes through the database (NOTIFY on
    PostgreSQL, the change counter on SQLite) and wakes a stream and a subscriber."""
    db = database.open(tmp_path)
    db.migrate()
    [job_id] = add_due_jobs(db, 1, now=utcnow())
    elsewhere = database.open(tmp_path)  # engines of its own, as another process has
    events = JobEvents()
    subscriber = asyncio.Event()
    events.subscribe(subscriber.set)
    events.watch(db)
    watch = JobWatch([job_id])
    watch.changed(shown_states(db, job_ids=[job_id]))
    try:
        with events.listen() as listener:
            await asyncio.sleep(0)  # the watcher's first look
            listener.clear()
            subscriber.clear()
            await asyncio.to_thread(end_job_elsewhere, elsewhere, job_id, JobStatus.FAILED, "there")
            # No periodic recheck here: only the database's word can wake these.
            await asyncio.wait_for(listener.wait(), timeout=20)
            await asyncio.wait_for(subscriber.wait(), timeout=20)
        assert watch.changed(shown_states(db, job_ids=[job_id])) == [job_id]
        assert watch.sent[job_id][:2] == (JobStatus.FAILED, "there")
    finally:
        events.detach()
        elsewhere.dispose()
        db.dispose()


@pytest.mark.both_databases
def test_every_process_signs_with_the_secret_in_the_database(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    """Two web processes with data dirs of their own (two machines), no PLAYGROUND_SECRET_KEY:
    the first to start makes the key, the second reads it, so each accepts the other's
    sessions and form tokens."""
    one = make_settings(own_dir(tmp_path, "one", database), None, database=database)
    two = make_settings(own_dir(tmp_path, "two", database), None, database=database)
    first_db, second_db = Database.for_settings(one), Database.for_settings(two)
    try:
        first_db.migrate()
        first = load_secret(one, first_db)
        assert load_secret(two, second_db) == first
    finally:
        first_db.dispose()
        second_db.dispose()
    assert len(first) == 64
    assert not (one.data_dir / SECRET_FILE).exists()


def test_a_data_dir_s_old_secret_file_is_carried_into_the_database(
    tmp_path: Path, db: Database
) -> None:
    settings = make_settings(tmp_path / "data", None)
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / SECRET_FILE).write_text("ab" * 32)
    assert load_secret(settings, db) == b"ab" * 32
    (settings.data_dir / SECRET_FILE).unlink()
    assert load_secret(settings, db) == b"ab" * 32, "kept in the database from now on"


@pytest.mark.both_databases
def test_the_upstream_rate_limit_is_one_budget_per_key_across_processes(
    tmp_path: Path, database: DatabaseChoice, db: Database
) -> None:
    """Two processes' limiters (engines of their own) on one key draw from one bucket of 6 a
    minute, 2 kept for submissions: polls stop at 4 in all, submissions at 6, and a 429
    seen by one holds the other."""
    elsewhere = database.open(tmp_path)
    try:
        here = SharedRateLimiter(6, db=db, fingerprint="key-one")
        there = SharedRateLimiter(6, db=elsewhere, fingerprint="key-one")
        other_key = SharedRateLimiter(6, db=elsewhere, fingerprint="key-two")
        assert [here.wait_needed(submit=False) for _ in range(2)] == [0.0, 0.0]
        assert [there.wait_needed(submit=False) for _ in range(2)] == [0.0, 0.0]
        assert there.wait_needed(submit=False) > 0, "the polls' share is spent by both"
        assert here.wait_needed(submit=False) > 0
        assert here.wait_needed(submit=True) == 0.0
        assert there.wait_needed(submit=True) == 0.0
        assert here.wait_needed(submit=True) > 0, "the submissions' reserve too"
        assert other_key.wait_needed(submit=False) == 0.0, "another key has its own budget"
        other_key.pause(30)
        assert SharedRateLimiter(None, db=db, fingerprint="key-two").wait_needed(submit=True) > 25
    finally:
        elsewhere.dispose()

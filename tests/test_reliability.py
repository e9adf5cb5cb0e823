"""The refused-key block, running out of credits, rate limits, many clients, several workers,
and backups of a running app (at-most-once submission: tests/test_at_most_once.py)."""

from __future__ import annotations

import hashlib
import sqlite3
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from app.emulator import Fault
from app.storage.backup import backup
from app.storage.blobs.choose import open_blob_store
from app.storage.db.tables import Job
from app.upstream import LocalRateLimit, RateLimiter
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import TEST_KEY, RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.processes import AppProcess
from tests.support.waiting import wait_until

# --- Answers people must understand --------------------------------------------------------


def test_a_refused_key_shows_a_banner_and_blocks_submissions_until_it_works(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    emulator.config.api_keys = frozenset({"pd_the_new_key"})
    refused = app.client.post("/api/jobs", json={"prompt": "with a revoked key"})
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "api_key_refused"
    assert "Invalid API key" in app.client.get("/").text
    assert "PixelDojo refuses the API key" in app.client.get("/gallery").text

    runs_so_far = len(emulator.emulator.requests_to("run"))
    blocked = app.client.post("/api/jobs", json={"prompt": "while it is refused"})
    assert blocked.status_code == 503
    assert "PIXELDOJO_API_KEY" in blocked.json()["error"]["message"]
    assert len(emulator.emulator.requests_to("run")) == runs_so_far, "nothing was sent"

    # Trying all presets is blocked the same way, with the same answer.
    try_all = app.client.post("/playground/try-all", headers={"HX-Request": "true"})
    assert try_all.status_code == 503
    assert "refuses the API key" in try_all.text

    # Checking again while it is still refused keeps the block.
    app.client.post("/upstream/check-key")
    assert app.client.post("/api/jobs", json={"prompt": "still"}).status_code == 503

    emulator.config.api_keys = frozenset({TEST_KEY})  # the key works again
    app.client.post("/upstream/check-key")
    assert "refuses the API key" not in app.client.get("/").text
    accepted = app.client.post("/api/jobs", json={"prompt": "the key works again"})
    assert accepted.status_code == 202


def test_running_out_of_credits_says_so_with_the_balance(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    emulator.config.initial_credits = 2
    answer = app.client.post("/api/jobs", json={"prompt": "six images", "num_images": 6})
    assert answer.status_code == 402
    error = answer.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert "balance is 2 credits" in error["message"]
    assert "https://pixeldojo.ai" in error["message"]
    job = app.client.get(f"/api/jobs/{error['job_id']}").json()
    assert job["status"] == "failed"
    assert "Nothing was charged" in job["error"]


# --- Rate limits ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_spaces_calls_and_keeps_tokens_for_submissions() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, reserved_for_submits=2, clock=clock)
    polls = 0
    while limiter.wait_needed(submit=False) == 0:
        polls += 1
    assert polls == 8, "polls leave two of the ten tokens to submissions"
    assert limiter.wait_needed(submit=True) == 0
    assert limiter.wait_needed(submit=True) == 0
    assert limiter.wait_needed(submit=True) == pytest.approx(6.0)  # 10 a minute: one per 6 s
    clock.now += 6
    assert limiter.wait_needed(submit=True) == 0


def test_a_429_pauses_every_call_for_as_long_as_asked() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock)
    assert limiter.wait_needed(submit=True) == 0
    limiter.pause(7)
    assert limiter.wait_needed(submit=False) == pytest.approx(7)
    clock.now += 7
    assert limiter.wait_needed(submit=True) == 0


@pytest.mark.anyio
async def test_a_submission_is_refused_rather_than_kept_waiting_too_long() -> None:
    limiter = RateLimiter(1)
    await limiter.acquire(submit=True)
    with pytest.raises(LocalRateLimit) as refused:
        await limiter.acquire(submit=True, max_wait=1)
    assert refused.value.retry_after == pytest.approx(60, abs=1)


# --- Many clients, several workers ---------------------------------------------------------


@pytest.mark.both_databases
def test_fifty_parallel_submissions_all_complete_without_a_locked_database(
    tmp_path: Path,
    emulator: RunningEmulator,
    database: DatabaseChoice,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(tmp_path / "data", emulator, database=database, poller_concurrency=16)
    with serve_app(settings) as app:

        def submit(number: int) -> httpx.Response:
            with httpx.Client(base_url=app.url, timeout=60) as client:
                return client.post("/api/jobs", json={"prompt": f"crowd {number}"})

        with ThreadPoolExecutor(25) as pool:
            answers = list(pool.map(submit, range(50)))
        assert [answer.status_code for answer in answers] == [202] * 50
        finished = [wait_for_job(app.client, a.json()["id"], timeout=90) for a in answers]
    assert {job["status"] for job in finished} == {"completed"}
    assert len(emulator.emulator.requests_to("run")) == 50
    assert "database is locked" not in caplog.text


@pytest.mark.both_databases
def test_two_worker_processes_never_work_on_the_same_job_twice(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    emulator.config.job_seconds = 1.0
    data_dir = tmp_path / "data"
    # Both workers live throughout: leases long enough that a heartbeat late on a busy
    # machine is not taken for a dead worker (takeovers are tested where a worker dies;
    # a holder whose lease was lost stores and downloads nothing more: tests/test_roles.py).
    first = AppProcess(data_dir, emulator, database=database, playground_lease_seconds=10)
    second = AppProcess(data_dir, emulator, database=database, playground_lease_seconds=10)
    first.start()
    second.start()
    try:
        with first.client() as one, second.client() as two:
            ids = [
                (one if n % 2 else two)
                .post("/api/jobs", json={"prompt": f"shared {n}", "num_images": 2})
                .json()["id"]
                for n in range(20)
            ]
            for job_id in ids:
                assert wait_for_job(one, job_id, timeout=60)["status"] == "completed"
    finally:
        first.stop()
        second.stop()

    db = database.open(data_dir)
    with db.read() as session:
        rows = session.exec(select(Job)).all()
    db.dispose()
    polls: dict[str, int] = {}
    for request in emulator.emulator.requests_to("job"):
        upstream_id = request.path.rsplit("/", 1)[1]
        polls[upstream_id] = polls.get(upstream_id, 0) + 1
    for job in rows:
        assert job.upstream_job_id is not None
        # Only the lease holder's polls are counted on the row: an extra poll by another
        # worker would show up upstream without being counted here.
        assert polls[job.upstream_job_id] == job.poll_count, job.id
    image_paths = [request.path for request in emulator.emulator.requests_to("image")]
    assert len(image_paths) == len(set(image_paths)) == 40, "every image was downloaded once"


@pytest.mark.both_databases
def test_a_worker_starting_beside_a_running_one_leaves_its_downloads_alone(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    data_dir = tmp_path / "data"
    settings = make_settings(data_dir, emulator, database=database)
    emulator.emulator.faults.add(Fault("image", kind="delay", delay_seconds=2))
    with serve_app(settings) as first:
        job = first.client.post("/api/jobs", json={"prompt": "downloading"}).json()
        wait_until(
            lambda: list((data_dir / "tmp").rglob("download-*.part")),
            what="the first worker's download to be under way",
        )
        with serve_app(settings):
            done = wait_for_job(first.client, job["id"])
    assert done["status"] == "completed", done["error"]


# --- Backups -------------------------------------------------------------------------------


def test_a_backup_taken_while_jobs_run_is_consistent_and_restores(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    with serve_app(settings) as app:
        done = [
            wait_for_job(app.client, app.client.post("/api/jobs", json={"prompt": p}).json()["id"])
            for p in ("backed up one", "backed up two")
        ]
        # More jobs are running while the copy is made.
        for n in range(5):
            app.client.post("/api/jobs", json={"prompt": f"running during backup {n}"})
        store = open_blob_store(settings, database_url=f"sqlite:///{settings.database_path}")
        try:
            summary = backup(settings, tmp_path / "gallery.tar", blobs=store)
        finally:
            store.close()
    assert (summary["images"] or 0) >= 2

    restored = tmp_path / "restored"
    restored.mkdir()
    with tarfile.open(tmp_path / "gallery.tar") as archive:
        archive.extractall(restored, filter="data")
    assert sorted(path.name for path in restored.iterdir()) == ["images.db", "playground.db"]
    with sqlite3.connect(restored / "playground.db") as rows:
        assert rows.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        referenced = {sha for (sha,) in rows.execute("SELECT sha256 FROM images")}
    with sqlite3.connect(restored / "images.db") as blobs:
        stored = dict(blobs.execute("SELECT sha256, data FROM blobs").fetchall())
    assert referenced <= set(stored), "every image a row names is in the copy"
    for sha in referenced:
        assert hashlib.sha256(stored[sha]).hexdigest() == sha

    with serve_app(make_settings(restored, emulator)) as copy:
        listed = {job["id"] for job in copy.client.get("/api/jobs?limit=100").json()["items"]}
        assert {job["id"] for job in done} <= listed
        image = done[0]["images"][0]
        assert hashlib.sha256(copy.client.get(image["url"]).content).hexdigest() == image["sha256"]
        thumbnail = copy.client.get(image["thumbnail_url"])
        assert thumbnail.status_code == 200, "thumbnails are in the copied store, beside the bytes"
        assert thumbnail.headers["content-type"] == "image/webp"

"""At-most-once submission, the refused-key block, rate limits, many clients, several workers,
and backups of a running app."""

from __future__ import annotations

import hashlib
import sqlite3
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from app.emulator import Fault
from app.features.jobs import creation, queue
from app.storage.backup import backup
from app.storage.blobs.choose import open_blob_store
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow
from app.upstream import LocalRateLimit, RateLimiter, parse_job
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import TEST_KEY, RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.processes import AppProcess
from tests.support.waiting import wait_until

# --- At most once ------------------------------------------------------------------------


@pytest.mark.both_databases
def test_the_same_idempotency_key_returns_the_same_job_and_submits_once(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    body = {"prompt": "only once, please"}
    first = app.client.post("/api/jobs", json=body, headers={"Idempotency-Key": "abc-1"})
    again = app.client.post("/api/jobs", json=body, headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == again.json()["id"]
    assert len(emulator.emulator.requests_to("run")) == 1
    other = app.client.post("/api/jobs", json=body, headers={"Idempotency-Key": "abc-2"})
    assert other.json()["id"] != first.json()["id"]
    assert len(emulator.emulator.requests_to("run")) == 2


@pytest.mark.both_databases
def test_simultaneous_requests_with_one_key_make_one_upstream_request(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    emulator.config.latency_seconds = 0.3  # keep the first submit in flight while others arrive
    start = threading.Barrier(8)

    def submit(_: int) -> httpx.Response:
        with httpx.Client(base_url=app.url, timeout=30) as client:
            start.wait()
            return client.post(
                "/api/jobs", json={"prompt": "a double click"}, headers={"Idempotency-Key": "k"}
            )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(submit, range(8)))
    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert len(emulator.emulator.requests_to("run")) == 1
    assert wait_for_job(app.client, answers[0].json()["id"])["status"] == "completed"


@pytest.mark.both_databases
def test_reusing_a_key_for_a_different_request_is_refused(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    app.client.post("/api/jobs", json={"prompt": "first"}, headers={"Idempotency-Key": "same"})
    clash = app.client.post(
        "/api/jobs", json={"prompt": "second"}, headers={"Idempotency-Key": "same"}
    )
    assert clash.status_code == 422
    assert clash.json()["error"]["code"] == "idempotency_key_reused"
    assert len(emulator.emulator.requests_to("run")) == 1


@pytest.mark.both_databases
def test_posting_the_same_form_twice_makes_one_job(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    page = app.client.get("/").text
    token = page.split('name="submission_token" value="', 1)[1].split('"', 1)[0]
    form = {"prompt": "a double-clicked button", "num_images": "1", "submission_token": token}
    htmx = {"HX-Request": "true"}
    first = app.client.post("/jobs", data=form, headers=htmx)
    second = app.client.post("/jobs", data=form, headers=htmx)
    assert first.status_code == second.status_code == 200
    assert second.headers["hx-reswap"] == "none", "nothing new is shown for the repeat"
    assert len(emulator.emulator.requests_to("run")) == 1
    # The answer hands the form a fresh token, so the next Generate is a new job.
    fresh = first.text.split('name="submission_token" value="', 1)[1].split('"', 1)[0]
    assert fresh != token
    app.client.post("/jobs", data={**form, "submission_token": fresh}, headers=htmx)
    assert len(emulator.emulator.requests_to("run")) == 2


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


def test_confirming_try_all_twice_submits_the_eight_presets_once(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    page = app.client.get("/").text
    token = page.split('id="try_all_token" name="submission_token" value="', 1)[1].split('"', 1)[0]
    htmx = {"HX-Request": "true"}
    first = app.client.post("/playground/try-all", data={"submission_token": token}, headers=htmx)
    again = app.client.post("/playground/try-all", data={"submission_token": token}, headers=htmx)
    assert first.status_code == again.status_code == 200
    assert again.headers["hx-reswap"] == "none"
    assert len(emulator.emulator.requests_to("run")) == 8
    fresh = first.text.split('id="try_all_token" name="submission_token" value="', 1)[1]
    assert fresh.split('"', 1)[0] != token, "the dialog gets a new token for the next time"


@pytest.mark.both_databases
def test_a_lost_submission_does_not_take_a_twin_still_being_submitted(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """Two jobs asking the same: one's answer was lost, the other's is on its way. The lost
    one must not adopt the other's upstream job while that is still being submitted."""
    prompt = "twins at the same moment"
    upstream = httpx.post(
        emulator.base_url + "/models/seedream-4/run",
        json={"prompt": prompt},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    ).json()
    settings = make_settings(
        tmp_path / "data",
        emulator,
        database=database,
        request_timeout_seconds=2,
        max_submit_wait_seconds=0,
        reconcile_window_seconds=2,
    )
    db = Database.for_settings(settings)
    db.migrate()
    queue.register_worker(db, worker_id="busy-submitter")
    body = {"prompt": prompt, "image_size": "auto_2K", "num_images": 1}
    now = utcnow()
    with db.write() as session:
        lost = Job(
            model="seedream-4",
            prompt=prompt,
            image_size="auto_2K",
            num_images=1,
            request_body=body,
            status=JobStatus.RECONCILING,
            next_poll_at=now,
        )
        twin = Job(
            model="seedream-4",
            prompt=prompt,
            image_size="auto_2K",
            num_images=1,
            request_body=body,
            status=JobStatus.SUBMITTING,
            lease_owner="busy-submitter",
            lease_expires_at=now + timedelta(minutes=5),
        )
        session.add(lost)
        session.add(twin)
        session.flush()
        lost_id, twin_id = lost.id, twin.id
    assert lost_id is not None and twin_id is not None
    with serve_app(settings) as app:
        wait_until(
            lambda: len(emulator.emulator.requests_to("jobs")) >= 2,
            what="two looks at PixelDojo's recent jobs",
        )
        first = app.client.get(f"/api/jobs/{lost_id}").json()
        assert first["status"] == "reconciling"
        assert first["upstream_job_id"] is None, "it waited for its twin"
        # The twin's submitter gets its answer: the upstream job is the twin's.
        queue.heartbeat(db, worker_id="busy-submitter", job_ids=[], lease_seconds=60)
        accepted = parse_job(upstream)
        creation.record_submitted(
            db, job_id=twin_id, owner="busy-submitter", token=0, upstream=accepted, first_poll_in=0
        )
        assert wait_for_job(app.client, twin_id)["status"] == "completed"
        lost_job = wait_for_job(app.client, lost_id)
    db.dispose()
    assert lost_job["status"] == "unknown"
    assert lost_job["upstream_job_id"] is None


@pytest.mark.both_databases
def test_a_job_taken_over_mid_submit_is_answered_not_failed(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """A worker whose heartbeat ran late is taken for dead, and another takes over the job it
    is submitting. The submitter answers with the job (no 500), and the job is found
    upstream by looking, never sent twice."""
    emulator.emulator.faults.add(Fault("run", kind="delay", delay_seconds=1.5))
    settings = make_settings(tmp_path / "data", emulator, database=database)
    db = Database.for_settings(settings)
    with serve_app(settings) as app, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(app.client.post, "/api/jobs", json={"prompt": "taken over"})
        job_id = wait_until(lambda: db_job_ids(db), what="the job row, written before the submit")[
            0
        ]
        # Another worker takes the job over while the submit is still on its way.
        queue.register_worker(db, worker_id="other-worker")
        with db.write() as session:
            session.execute(
                sa.update(Job).where(col(Job.id) == job_id).values(lease_owner="other-worker")
            )
        submitted = answer.result(timeout=30)
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["id"] == job_id
        # The other worker "dies": this app's worker takes the job over and finds it upstream.
        queue.remove_worker(db, worker_id="other-worker")
        done = wait_for_job(app.client, job_id)
    db.dispose()
    assert done["status"] == "completed", done["error"]
    assert len(emulator.emulator.requests_to("run")) == 1, "never sent twice"


@pytest.mark.both_databases
def test_a_job_being_submitted_is_leased_to_a_submitter_of_its_own_that_is_alive(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """Not to the id the process's worker claims jobs with (a claim of the worker's could
    not then be told from the submitter's), and alive by that worker's heartbeat (so no
    other worker takes the job while it is being sent)."""
    emulator.emulator.faults.add(Fault("run", kind="delay", delay_seconds=1.5))
    settings = make_settings(tmp_path / "data", emulator, database=database)
    db = Database.for_settings(settings)
    with serve_app(settings) as app, ThreadPoolExecutor(1) as pool:
        answer = pool.submit(app.client.post, "/api/jobs", json={"prompt": "whose is it"})
        job_id = wait_until(lambda: db_job_ids(db), what="the job row, written before the submit")[
            0
        ]
        with db.read() as session:
            job = session.get(Job, job_id)
            assert job is not None and job.status is JobStatus.SUBMITTING
            submitter = job.lease_owner
        live = queue.live_worker_ids(db, now=utcnow(), lease_seconds=settings.lease_seconds)
        assert submitter in live
        assert len(live - {submitter}) == 1, "the worker beside it has an id of its own"
        assert answer.result(timeout=30).status_code == 202
    db.dispose()


def db_job_ids(db: Database) -> list[int]:
    with db.read() as session:
        return [job_id for job_id in session.exec(select(Job.id)).all() if job_id is not None]

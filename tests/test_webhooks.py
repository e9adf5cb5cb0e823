"""PixelDojo's callbacks: a run asks to be called back, the call brings the job's poll
forward, polls become a safety net once calls are seen to arrive, and nothing in a call
is trusted beyond its signed address.

It stays one module, long as it is: the rules, the route and the runs end to end write
their waiting jobs one way (`add_job`, at `NOW`), and read as the path of one callback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.core.config import Settings
from app.core.loopback import LoopbackServer
from app.core.signing import Signer
from app.features.jobs import callbacks as webhooks
from app.features.jobs import creation, queue
from app.features.jobs.timing import SAFETY_SHARE, UpstreamTiming, safety_poll_in
from app.features.people.access import load_secret
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow
from app.upstream import UpstreamJob, UpstreamState
from app.web.factory import create_app
from tests.support.apps import CLIENT_TLS, SAME_ORIGIN, RunningApp, in_process, make_settings
from tests.support.databases import DatabaseChoice
from tests.support.emulators import TEST_KEY, serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.processes import AppProcess, WorkerProcess, free_port
from tests.support.waiting import wait_until

NOW = utcnow()


def add_job(db: Database, *, status: JobStatus = JobStatus.PENDING, **values: Any) -> int:
    row: dict[str, Any] = {
        "created_at": NOW,
        "updated_at": NOW,
        "model": "seedream-4",
        "prompt": "a lighthouse",
        "image_size": "auto_2K",
        "num_images": 1,
        "request_body": {},
        "status": status,
        "next_poll_at": NOW + timedelta(minutes=5),
        "poll_count": 1,
        "estimated_credits": 1.0,
        **values,
    }
    with db.write() as session:
        result = session.execute(sa.insert(Job).values(**row))
        job_id = result.inserted_primary_key  # type: ignore[attr-defined]
    assert job_id is not None
    return int(job_id[0])


def read_job(db: Database, job_id: int) -> Job:
    with db.read() as session:
        job = session.get(Job, job_id)
    assert job is not None
    return job


# --- The rules ----------------------------------------------------------------------------


@pytest.mark.both_databases
def test_a_callback_makes_a_waiting_job_due_now_once_within_the_repeat_window(
    db: Database,
) -> None:
    pending = add_job(db, upstream_job_id="job_pending")
    assert webhooks.record_callback(db, job_id=pending, now=NOW)
    job = read_job(db, pending)
    assert job.webhook_at == NOW
    assert job.next_poll_at == NOW, "due at once, not at its planned poll"

    # PixelDojo retrying, or someone calling the address in a loop, brings no second poll.
    later = NOW + timedelta(seconds=webhooks.REPEAT_IGNORED_SECONDS / 2)
    assert not webhooks.record_callback(db, job_id=pending, now=later)
    assert read_job(db, pending).webhook_at == NOW
    after = NOW + timedelta(seconds=webhooks.REPEAT_IGNORED_SECONDS + 1)
    assert webhooks.record_callback(db, job_id=pending, now=after)

    # A job already storing its images is only marked (that callbacks arrive is learned
    # from it); its schedule is the storing lane's.
    storing = add_job(db, status=JobStatus.DOWNLOADING, upstream_job_id="job_storing")
    assert webhooks.record_callback(db, job_id=storing, now=NOW)
    assert read_job(db, storing).next_poll_at == NOW + timedelta(minutes=5)
    assert read_job(db, storing).webhook_at == NOW
    assert not webhooks.record_callback(db, job_id=999_999, now=NOW), "no such job"


@pytest.mark.both_databases
def test_a_callback_while_a_worker_holds_the_job_is_not_lost_when_it_lets_go(
    db: Database,
) -> None:
    job_id = add_job(db, upstream_job_id="job_race")

    def claim() -> Job:
        [claimed] = queue.claim_due_jobs(
            db, owner="w1", now=utcnow() + timedelta(minutes=6), lease_seconds=30, limit=1
        )
        return claimed

    def let_go(claimed: Job, status: JobStatus = JobStatus.PENDING) -> None:
        queue.reschedule(
            db,
            job_id=job_id,
            owner="w1",
            token=claimed.lease_token,
            delay_seconds=60,
            status=status,
            upstream_status="processing",
            callback_seen=claimed.webhook_at,
        )

    def due_now() -> bool:
        due = read_job(db, job_id).next_poll_at
        assert due is not None
        return due <= utcnow()

    # The poll's question left before the job ended; the callback lands before its answer.
    claimed = claim()
    webhooks.record_callback(db, job_id=job_id, now=utcnow())
    let_go(claimed)
    assert due_now(), "asked again at once"

    # Claimed again, the callback already seen: the poll's own delay stands (PixelDojo's
    # status lagging its callback must not make a loop of polls).
    let_go(claim())
    assert not due_now()

    # A callback while the first poll is put off (no poll made): still at once.
    claimed = claim()
    webhooks.record_callback(
        db, job_id=job_id, now=utcnow() + timedelta(seconds=webhooks.REPEAT_IGNORED_SECONDS + 1)
    )
    queue.postpone(
        db,
        job_id=job_id,
        owner="w1",
        token=claimed.lease_token,
        delay_seconds=60,
        callback_seen=claimed.webhook_at,
    )
    assert due_now()

    # A job storing its images keeps its own retry schedule.
    claimed = claim()
    webhooks.record_callback(
        db, job_id=job_id, now=utcnow() + timedelta(seconds=2 * webhooks.REPEAT_IGNORED_SECONDS + 2)
    )
    let_go(claimed, JobStatus.DOWNLOADING)
    assert not due_now()


@pytest.mark.both_databases
def test_a_callback_before_the_submit_answer_makes_the_first_poll_immediate(
    db: Database,
) -> None:
    job_id = add_job(
        db,
        status=JobStatus.SUBMITTING,
        lease_owner="w1",
        lease_expires_at=NOW + timedelta(minutes=1),
        next_poll_at=None,
    )
    webhooks.record_callback(db, job_id=job_id, now=NOW)
    assert read_job(db, job_id).status is JobStatus.SUBMITTING, "untouched until recorded"
    accepted = UpstreamJob(job_id="job_quick", status="pending", state=UpstreamState.RUNNING)
    job = creation.record_submitted(
        db,
        job_id=job_id,
        owner="w1",
        token=0,
        upstream=accepted,
        first_poll_in=60,
        webhook_requested=True,
    )
    assert job.webhook_requested
    assert job.next_poll_at is not None and job.next_poll_at <= utcnow()


@pytest.mark.both_databases
def test_callbacks_are_trusted_once_most_recent_jobs_that_asked_got_one(db: Database) -> None:
    assert not webhooks.callbacks_arrive(db), "nothing known: poll as usual"
    called: dict[str, Any] = {
        "webhook_requested": True,
        "webhook_at": NOW,
        "status": JobStatus.COMPLETED,
    }
    for _ in range(webhooks.TRUST_MIN_JOBS - 1):
        add_job(db, **called)
    assert not webhooks.callbacks_arrive(db), "too few to tell"
    add_job(db, **called)
    assert webhooks.callbacks_arrive(db)
    # Jobs that never asked (no public URL then) say nothing either way.
    for _ in range(10):
        add_job(db, status=JobStatus.COMPLETED)
    assert webhooks.callbacks_arrive(db)
    # Callbacks stop arriving: once most recent jobs finished without one, polls take over.
    for _ in range(webhooks.TRUST_MIN_JOBS + 1):
        add_job(db, webhook_requested=True, status=JobStatus.COMPLETED)
    assert not webhooks.callbacks_arrive(db)


def test_safety_polls_wait_past_the_slowest_jobs_then_back_off_with_the_jobs_age() -> None:
    usual = UpstreamTiming(first=50.0, step=4.0, until=80.0)

    def plan(elapsed: float) -> float:
        return safety_poll_in(
            timing=usual, elapsed=elapsed, poll_count=1, initial=2.0, maximum=10.0
        )

    assert plan(0.0) == pytest.approx(SAFETY_SHARE * 80.0)
    assert plan(100.0) == pytest.approx(SAFETY_SHARE * 80.0 - 100.0)
    assert plan(120.0) == pytest.approx(30.0), "a quarter of its age"
    assert plan(400.0) == pytest.approx(100.0)
    # No history: as an ordinary poll, since nothing says when callbacks would come.
    no_history = safety_poll_in(timing=None, elapsed=0.0, poll_count=1, initial=2.0, maximum=10.0)
    assert no_history == 2.0


def test_signatures_name_one_job_and_one_secret() -> None:
    key = Signer(b"secret one")
    url = webhooks.callback_url("https://playground.example/", key, 42)
    assert url.startswith("https://playground.example/webhooks/pixeldojo/42/")
    signature = url.rsplit("/", 1)[1]
    assert webhooks.signature_valid(key, 42, signature)
    assert not webhooks.signature_valid(key, 43, signature)
    assert not webhooks.signature_valid(Signer(b"secret two"), 42, signature)
    altered = signature[:-1] + ("1" if signature.endswith("0") else "0")
    assert not webhooks.signature_valid(key, 42, altered)


def test_the_trigger_tells_other_processes_of_a_callback(postgres_url: str, tmp_path: Path) -> None:
    from app.storage.db import postgres

    db = Database.for_settings(make_settings(tmp_path / "data", None, database_url=postgres_url))
    db.migrate()
    try:
        job_id = add_job(db, upstream_job_id="job_notified")
        heard = threading.Event()
        listening = threading.Event()
        stop = threading.Event()
        listener = threading.Thread(
            target=postgres.listen,
            args=(postgres_url, postgres.JOB_CHANGES_CHANNEL, heard.set, stop),
            kwargs={"listening": listening},
            daemon=True,
        )
        listener.start()
        assert listening.wait(10)
        # listen() calls once as it starts (for changes made before); then only NOTIFYs.
        assert heard.wait(10)
        heard.clear()
        webhooks.record_callback(db, job_id=job_id, now=utcnow())
        assert heard.wait(10), "a worker in another process would not wake"
        stop.set()
        listener.join(10)
    finally:
        db.dispose()


# --- The route ----------------------------------------------------------------------------


def test_the_callback_route_answers_only_its_signed_address_from_anywhere(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data", None, public_url="https://playground.example")
    db = Database.for_settings(settings)
    db.migrate()
    job_id = add_job(db, upstream_job_id="job_route")
    stranger = {"Host": "playground.example", "Sec-Fetch-Site": "cross-site"}
    try:
        # No accounts: the app answers only this machine, except signed addresses.
        with in_process(settings, peer="203.0.113.9", headers=stranger) as client:
            key = Signer(load_secret(settings, db))
            good = f"/webhooks/pixeldojo/{job_id}/{webhooks.signature(key, job_id)}"
            assert client.get("/").status_code == 403, "everything else stays local"
            for wrong in (
                f"/webhooks/pixeldojo/{job_id}/{'0' * 32}",
                f"/webhooks/pixeldojo/{job_id + 1}/{webhooks.signature(key, job_id)}",
                f"/webhooks/pixeldojo/0/{webhooks.signature(key, 0)}",
            ):
                refused = client.post(wrong, json={"jobId": "job_route", "status": "completed"})
                assert refused.status_code == 404, wrong
            assert read_job(db, job_id).webhook_at is None
            answer = client.post(good, content=b"not even JSON", headers={"content-type": "x/y"})
            assert answer.status_code == 204, answer.text
            assert read_job(db, job_id).webhook_at is not None
            assert client.get(good).status_code == 403, "only the callback's POST is open"
        # With callbacks off no run carries an address, so none is answered.
        off = settings.model_copy(update={"webhooks": False})
        with in_process(off, peer="203.0.113.9", headers=stranger) as client:
            assert client.post(good).status_code == 404
    finally:
        db.dispose()


# --- End to end -----------------------------------------------------------------------------


@contextmanager
def serve_public_app(tmp_path: Path, base_url: str, **overrides: Any) -> Iterator[RunningApp]:
    """The app at a port known before it starts, with that address as its public URL."""
    port = free_port()
    settings: Settings = make_settings(
        tmp_path / "data",
        None,
        pixeldojo_api_key=TEST_KEY,
        pixeldojo_base_url=base_url,
        public_url=f"http://127.0.0.1:{port}",
        **overrides,
    )
    with (
        LoopbackServer(create_app(settings), port=port) as server,
        httpx.Client(
            base_url=server.url, timeout=30, headers=SAME_ORIGIN, verify=CLIENT_TLS
        ) as client,
    ):
        yield RunningApp(server.url, client, settings)


def test_jobs_are_stored_when_pixeldojo_calls_back_and_polled_when_it_does_not(
    tmp_path: Path,
) -> None:
    with (
        serve_emulator(job_seconds=3.0) as upstream,
        serve_public_app(
            tmp_path, upstream.base_url, poll_initial_seconds=0.5, poll_max_seconds=1.0
        ) as app,
    ):
        emulator = upstream.emulator
        history = [
            app.client.post("/api/jobs", json={"prompt": f"history {n}"}).json()["id"]
            for n in range(webhooks.TRUST_MIN_JOBS)
        ]
        for job_id in history:
            assert wait_for_job(app.client, job_id)["status"] == "completed"
        runs = emulator.requests_to("run")
        db = Database.for_settings(app.settings)
        for job_id, run in zip(history, runs, strict=True):
            assert run.body["webhook_url"].startswith(
                f"{app.settings.public_url}/webhooks/pixeldojo/{job_id}/"
            )
            # The address is a permission, not a parameter: the job does not keep or show it.
            assert "webhook" not in json.dumps(read_job(db, job_id).request_body)
            assert "webhooks/pixeldojo" not in app.client.get(f"/api/jobs/{job_id}").text
            assert "webhooks/pixeldojo" not in app.client.get(f"/jobs/{job_id}").text
        db.dispose()
        wait_until(lambda: len(emulator.callbacks) == len(history), what="every callback")
        assert {call.status_code for call in emulator.callbacks} == {204}

        # A job far quicker than the ones before it: nothing but the callback could have
        # it asked about before its kind's usual time (about 3 s), and it is asked once.
        emulator.config.job_seconds = 0.3
        quick = app.client.post("/api/jobs", json={"prompt": "quick"}).json()["id"]
        assert wait_for_job(app.client, quick)["status"] == "completed"
        quick_run = emulator.requests_to("run")[-1]
        polls = [r for r in emulator.requests_to("job") if r.at > quick_run.at]
        assert len(polls) == 1, "the callback's poll, and no other"
        assert polls[0].at >= emulator.callbacks[-1].at - 0.1, "after the callback"
        assert polls[0].at - quick_run.at < 2.0, "before any schedule would have asked"

        # Callbacks lost on the way: the safety net's polls still find the job done. They
        # wait past the slowest jobs before (over 3 s, half as long again: about 5 s), where
        # ordinary polls would have asked first at under 3 s.
        emulator.config.callbacks = False
        lost = app.client.post("/api/jobs", json={"prompt": "lost"}).json()["id"]
        assert wait_for_job(app.client, lost, timeout=30)["status"] == "completed"
        lost_run = emulator.requests_to("run")[-1]
        polls = [r for r in emulator.requests_to("job") if r.at > lost_run.at]
        assert 1 <= len(polls) <= 2
        assert polls[0].at - lost_run.at >= 4.0, "a safety poll, not an ordinary one"
        assert len(emulator.callbacks) == len(history) + 1


def test_the_emulator_calls_back_when_a_job_ends_and_tries_again_after_a_failure() -> None:
    received: list[dict[str, Any]] = []
    answers = iter([500, 204])

    async def receive(request: Request) -> Response:
        received.append(await request.json())
        return Response(status_code=next(answers, 204))

    receiver = Starlette(routes=[Route("/hook/{name}", receive, methods=["POST"])])
    with (
        LoopbackServer(receiver) as hook,
        serve_emulator(job_seconds=0.2) as upstream,
        httpx.Client(
            base_url=upstream.base_url,
            headers={"Authorization": f"Bearer {TEST_KEY}"},
            verify=CLIENT_TLS,
        ) as client,
    ):
        sent = {"prompt": "a callback", "webhook_url": f"{hook.url}/hook/one"}
        job = client.post("/models/seedream-4/run", json=sent).json()
        never = {"prompt": "[[never]] no callback", "webhook_url": f"{hook.url}/hook/two"}
        assert client.post("/models/seedream-4/run", json=never).status_code == 202
        emulator = upstream.emulator
        wait_until(lambda: len(emulator.callbacks) == 2, what="the callback and its second try")
        assert [call.status_code for call in upstream.emulator.callbacks] == [500, 204]
        body = received[-1]
        assert body["jobId"] == job["jobId"]
        assert body["status"] == "completed"
        assert body["output"]["images"], "the job's answer, images included"
    assert len(received) == 2, "a job that never ends never calls"


@pytest.mark.both_databases
def test_a_callback_answered_by_a_web_process_wakes_a_worker_in_another(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    """`serve --no-worker` answers the callback, a `worker` process polls: the worker hears
    of it through the database (PostgreSQL's trigger, SQLite's change counter), long before
    its own first poll (5 s) or its idle look at the queue (5 s)."""
    with serve_emulator(job_seconds=1.0) as upstream:
        web = AppProcess(
            tmp_path / "web",
            upstream,
            database=database,
            arguments=("--no-worker",),
            playground_poll_initial_seconds=5,
            playground_poll_max_seconds=10,
        )
        web.env["PLAYGROUND_PUBLIC_URL"] = web.url
        # One data dir: on SQLite it holds the database they share.
        worker = WorkerProcess(web, data_dir=tmp_path / "web")
        try:
            web.start()
            worker.start()
            with web.client() as client:
                job_id = client.post("/api/jobs", json={"prompt": "told"}).json()["id"]
                assert wait_for_job(client, job_id)["status"] == "completed"
        finally:
            worker.stop()
            web.stop()
    emulator = upstream.emulator
    [run] = emulator.requests_to("run")
    [call] = emulator.callbacks
    assert call.status_code == 204
    [poll] = emulator.requests_to("job")
    assert call.at - 0.1 <= poll.at < run.at + 3.5, "woken by the callback, in another process"

"""Live job cards: the Server-Sent Events stream, its fallbacks, and what wakes it."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from app.domain.parameters import GenerationParams
from app.features.jobs import creation
from app.features.jobs.events import (
    RECHECK_SECONDS,
    JobEvents,
    JobWatch,
    format_event,
    next_look,
    parse_job_ids,
    shown_states,
)
from app.features.jobs.timing import typical_seconds
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow
from tests.support.apps import RunningApp
from tests.support.databases import DatabaseChoice
from tests.support.events import read_events
from tests.support.jobs import end_job_elsewhere, wait_for_job


@pytest.mark.both_databases
def test_the_stream_sends_each_change_as_an_out_of_band_card_then_done(app: RunningApp) -> None:
    job = app.client.post("/api/jobs", json={"prompt": "a kingfisher", "num_images": 2}).json()
    statuses: list[str] = []
    events: list[str] = []
    with app.client.stream("GET", f"/events/jobs?ids={job['id']}") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        for event, data in read_events(response):
            events.append(event)
            if event == "done":
                break
            assert event == "jobs"
            assert f'id="job-{job["id"]}"' in data
            assert 'hx-swap-oob="true"' in data
            statuses += re.findall(r'data-status="(\w+)"', data)
    assert statuses[-1] == "completed"
    assert len(statuses) == len(set(statuses)), "a card is sent only when what it shows changes"
    assert events[-1] == "done"
    done = app.client.get(f"/api/jobs/{job['id']}").json()
    assert done["status"] == "completed"


def test_a_stream_of_finished_jobs_ends_at_once(app: RunningApp) -> None:
    job = app.client.post("/api/jobs", json={"prompt": "a finished heron"}).json()
    wait_for_job(app.client, job["id"])
    with app.client.stream("GET", f"/events/jobs?ids={job['id']},999") as response:
        events = list(read_events(response))
    assert [event for event, _ in events] == ["jobs", "done"]
    assert 'data-status="completed"' in events[0][1]
    assert 'id="job-999"' not in events[0][1]


def test_the_polling_fallback_answers_every_card_in_one_request(app: RunningApp) -> None:
    ids = [app.client.post("/api/jobs", json={"prompt": f"bird {n}"}).json()["id"] for n in (1, 2)]
    answer = app.client.get(f"/jobs/cards?ids={ids[0]},{ids[1]}")
    assert answer.status_code == 200
    assert answer.text.count('hx-swap-oob="true"') == 2
    for job_id in ids:
        assert f'id="job-{job_id}"' in answer.text


@pytest.mark.parametrize("ids", ["", "1,x", ",".join(str(n) for n in range(60))])
def test_bad_job_id_lists_are_refused_naming_the_field(app: RunningApp, ids: str) -> None:
    answer = app.client.get(f"/jobs/cards?ids={ids}")
    assert answer.status_code == 422
    assert "ids" in answer.text


def test_parse_and_format_helpers() -> None:
    assert parse_job_ids("5,3,5") == [3, 5]
    with pytest.raises(ValueError, match="commas"):
        parse_job_ids("3;5")
    message = format_event("jobs", "<a>\n<b>", event_id="7")
    assert message == "event: jobs\nid: 7\ndata: <a>\ndata: <b>\n\n"


def _job(db: Database, prompt: str) -> int:
    job, _ = creation.create_job(
        db,
        params=GenerationParams(prompt=prompt),
        model="seedream-4",
        preset=None,
        owner="test",
        lease_seconds=60,
    )
    assert job.id is not None
    return job.id


@pytest.mark.anyio
@pytest.mark.both_databases
async def test_a_write_through_the_engine_wakes_listeners_and_detaching_stops_it(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    db = database.open(tmp_path)
    db.migrate()
    job_id = _job(db, "a wren")
    events = JobEvents()
    events.attach(db.write_engine)
    with events.listen() as listener:
        await asyncio.to_thread(end_job_elsewhere, db, job_id, JobStatus.FAILED)
        await asyncio.wait_for(listener.wait(), timeout=RECHECK_SECONDS / 2)
        listener.clear()
        events.detach()
        await asyncio.to_thread(end_job_elsewhere, db, job_id, JobStatus.COMPLETED)
        # A wake is queued on the loop during the write, before the thread's result, so
        # had there been one it would have run by now.
        assert not listener.is_set()
    assert events.listener_count == 0
    db.dispose()


@pytest.mark.anyio
@pytest.mark.both_databases
async def test_without_any_wake_a_watch_still_sees_another_process_s_change(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    """What a second worker's write looks like here: nothing wakes us; the recheck finds it."""
    db = database.open(tmp_path)
    db.migrate()
    job_id = _job(db, "a swift")
    events = JobEvents()  # attached to nothing: no write of any process wakes it
    watch = JobWatch([job_id])
    assert watch.changed(shown_states(db, job_ids=[job_id])) == [job_id]
    assert not watch.all_finished

    def finish_elsewhere() -> None:
        end_job_elsewhere(db, job_id, JobStatus.FAILED, "elsewhere")

    threading.Timer(0.1, finish_elsewhere).start()
    started = time.monotonic()
    with events.listen() as listener:
        while not watch.changed(shown_states(db, job_ids=[job_id])):
            assert time.monotonic() - started < RECHECK_SECONDS * 3, "the recheck never came"
            await next_look(listener)
    assert watch.all_finished
    assert watch.sent[job_id] == (JobStatus.FAILED, "elsewhere", None, False)
    db.dispose()


@pytest.mark.both_databases
def test_typical_seconds_is_the_median_of_recent_completed_jobs(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    db = database.open(tmp_path)
    db.migrate()
    now = utcnow()
    with db.write() as session:
        for seconds, status in (
            (10, JobStatus.COMPLETED),
            (30, JobStatus.COMPLETED),
            (20, JobStatus.COMPLETED),
            (500, JobStatus.FAILED),
        ):
            session.add(
                Job(
                    model="seedream-4",
                    prompt="x",
                    image_size="auto_2K",
                    num_images=1,
                    request_body={},
                    status=status,
                    created_at=now - timedelta(seconds=seconds),
                    finished_at=now,
                )
            )
    assert typical_seconds(db, models=["seedream-4", "other"]) == {"seedream-4": 20.0}
    db.dispose()

"""/api/events as a script's SSE client reads it, over real HTTP: each change of a job as the
API gives the job, resumed with Last-Event-ID without a gap or a repeat, 204 once there is
nothing left to watch, and JSON refusals."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.features.people import accounts
from app.storage.db.engine import Database
from tests.support.apps import make_settings, serve_app
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job


@dataclass
class Message:
    event: str
    id: str | None
    data: str


def read_stream(client: httpx.Client, url: str, **headers: str) -> tuple[int, list[Message]]:
    """A minimal SSE client: the messages of one connection, until the server ends it."""
    messages: list[Message] = []
    with client.stream("GET", url, headers=headers, timeout=30) as answer:
        if answer.status_code != 200:
            answer.read()
            return answer.status_code, messages
        assert answer.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, list[str]] = {}
        for line in answer.iter_lines():
            if line == "":
                if "data" in fields:
                    messages.append(
                        Message(
                            event=fields.get("event", ["message"])[0],
                            id=fields.get("id", [None])[0],
                            data="\n".join(fields["data"]),
                        )
                    )
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields.setdefault(name, []).append(value.removeprefix(" "))
    return 200, messages


def jobs_of(messages: list[Message]) -> list[dict[str, Any]]:
    assert all(message.event == "job" and message.id for message in messages)
    return [json.loads(message.data) for message in messages]


@pytest.mark.both_databases
def test_a_stream_follows_a_job_and_resumes_without_a_gap_or_a_repeat(settings: Settings) -> None:
    with serve_app(settings) as app:
        client = app.client
        job_id = client.post("/api/jobs", json={"prompt": "an otter"}).json()["id"]
        status, messages = read_stream(client, f"/api/events?ids={job_id}")
        assert status == 200
        sent = jobs_of(messages)
        assert sent[0]["id"] == job_id and not sent[0]["finished"], "the state it started in"
        assert sent[-1]["status"] == "completed"
        # Every message is a state of its own, never the same one twice.
        states = [(job["status"], job["error"], job["credit_cost"]) for job in sent]
        assert len(states) == len(set(states))
        # The last message is the job exactly as the API gives it.
        assert sent[-1] == client.get(f"/api/jobs/{job_id}").json()

        # After the final state EventSource reconnects: told to stop.
        last = messages[-1].id
        assert last is not None
        status, _ = read_stream(client, f"/api/events?ids={job_id}", **{"Last-Event-ID": last})
        assert status == 204
        # From the first message: what changed since, the job as it is now, once.
        first = messages[0].id
        assert first is not None
        status, resumed = read_stream(
            client, f"/api/events?ids={job_id}", **{"Last-Event-ID": first}
        )
        assert status == 200
        assert jobs_of(resumed) == [sent[-1]]
        # Without an id a new client is sent the job as it is now, then the stream ends.
        status, fresh = read_stream(client, f"/api/events?ids={job_id}")
        assert jobs_of(fresh) == [sent[-1]]


def test_several_jobs_stream_until_each_has_finished(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    with serve_app(settings) as app:
        client = app.client
        done = wait_for_job(
            client, client.post("/api/jobs", json={"prompt": "a vole"}).json()["id"]
        )
        running = client.post("/api/jobs", json={"prompt": "a mole"}).json()["id"]
        status, messages = read_stream(client, f"/api/events?ids={done['id']},{running},999999")
        assert status == 200
        sent = jobs_of(messages)
        assert [job["id"] for job in sent if job["id"] == done["id"]] == [done["id"]], "once"
        assert sent[-1]["id"] == running and sent[-1]["finished"]
        # The id holds both jobs: resuming from it, nothing is left.
        last = messages[-1].id
        assert last is not None
        url = f"/api/events?ids={done['id']},{running}"
        assert read_stream(client, url, **{"Last-Event-ID": last})[0] == 204
        # A Last-Event-ID that is not ours resumes nothing: everything again, no gap.
        status, again = read_stream(client, url, **{"Last-Event-ID": "garbage"})
        assert {job["id"] for job in jobs_of(again)} == {done["id"], running}

        bad = client.get("/api/events?ids=a,b")
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert "ids" in bad.json()["fields"]
        assert client.get("/api/events?ids=999999").status_code == 204


def test_without_credentials_the_stream_answers_401_json(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    db = Database.at_path(settings.database_path)
    db.migrate()
    accounts.create_user(db, name="Ada", password="a long enough password", is_admin=True)
    db.dispose()
    with serve_app(settings) as app:
        refused = app.client.get("/api/events?ids=1", headers={"Accept": "text/event-stream"})
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "sign_in_required"


def test_the_stream_is_in_the_openapi(tmp_path: Path, emulator: RunningEmulator) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    with serve_app(settings) as app:
        spec = app.client.get("/openapi.json").json()
    operation = spec["paths"]["/api/events"]["get"]
    assert operation["operationId"] == "events_stream"
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert "204" in operation["responses"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"ids", "last-event-id"} <= names

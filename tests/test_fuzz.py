"""Schemathesis over the app's own OpenAPI description, in-process: every phase it has
(examples, coverage, fuzzing, and stateful sequences where it can link operations), with
every check it offers. It must find no server error, and nothing else either.

Two runs, as the API is used, each on SQLite and on PostgreSQL (whose text cannot hold a
NUL at all, where SQLite's keeps one or cuts the string at it):

- team: sign-in on, as a script with an admin's API token. The token is kept working
  whatever the fuzzer does to it (it may revoke it, demote or remove its own person):
  then a new admin and token stand in, so every request is tested, not refused.
- local: one person without sign-in, with no browser headers, as a local script sends:
  the cross-site check must read forms (or refuse) without ever failing on one.

Every free-text string the API takes, in a query or in a body, is given NUL and other
control characters among its examples besides what the fuzzer makes up. Where the schema
says a string may not hold them (app/core/text.py), the fuzzer's copy of it says nothing, so
they are sent as valid data: the one answer besides acceptance is then the rule's own, a 422
naming each such field and nothing else.

`PLAYGROUND_FUZZ_EXAMPLES` sets the examples per operation (default 5; raise it for a deeper
run by hand).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import Case, CheckContext, Response
from schemathesis.engine import Status, events, from_schema
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.core.config import Settings
from app.core.text import CONTROL_MESSAGE, LINE_PATTERN, TEXT_PATTERN, WORDED_LINE_PATTERN
from app.features.people import accounts
from app.storage.db.engine import Database
from app.web.factory import create_app
from tests.support.apps import in_process, make_settings
from tests.support.databases import DatabaseChoice
from tests.support.jobs import wait_for_job

MAX_EXAMPLES = int(os.environ.get("PLAYGROUND_FUZZ_EXAMPLES", "5"))
# Schema-valid requests these operations may still refuse (422), for rules that span
# several fields or the data, which JSON Schema cannot say: a custom size's pixel budget
# and its sides given together, a remix naming a job that exists, a date range (since
# not after until, a usage range of at most 366 days), a zip of at most 1,000 matches.
CROSS_FIELD_RULES = [
    ("POST", "/api/jobs"),
    ("POST", "/api/team-presets"),
    ("GET", "/api/usage"),
    ("GET", "/api/gallery"),
    ("GET", "/api/gallery/jobs"),
    ("GET", "/api/zip"),
]
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]


pytestmark = pytest.mark.both_databases

# Examples every free-text string is given besides what the fuzzer makes up: NUL (SQLite
# reads a string only up to it, PostgreSQL refuses it in text) after a word, alone and in a
# phrase, and other control characters, C0, DEL and C1, and the ones a text may hold.
CONTROL_CHARACTER_EXAMPLES = [
    "a\x00",
    "\x00",
    '"a\x00b"',
    "\x01\x08\x1b[0m\x7f\x85 word",
    "two\nlines\tand a tab",
]


class Loopback:
    """The app as reached from this machine (schemathesis's ASGI client says `testclient`);
    it keeps each query string it passes on, for the test to see what was sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.query_strings: list[bytes] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = {**scope, "client": ("127.0.0.1", 50000)}
        self.query_strings.append(scope.get("query_string", b""))

        async def kept_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                self.bodies.append(message.get("body", b""))
            return message

        await self.app(scope, kept_receive, send)

    def sent_in_a_body(self, text: bytes) -> bool:
        return any(text in body for body in self.bodies)


PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code"}


@schemathesis.check
def problem_details(ctx: Any, response: Any, case: Any) -> None:
    """Every error the API answers is an RFC 9457 problem that keeps its `code`."""
    if response.status_code < 400 or not case.path.startswith("/api/"):
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type == "application/problem+json", (
        f"{response.status_code} answered as {content_type!r}, not application/problem+json"
    )
    body = response.json()
    missing = PROBLEM_MEMBERS - body.keys()
    assert not missing, f"the problem lacks {sorted(missing)}"
    assert body["status"] == response.status_code, "its status is the answer's"
    assert body["error"]["code"] == body["code"], "the code kept where scripts read it"


def with_control_characters(schema: dict[str, Any]) -> tuple[int, int]:
    """Give every free-text string (one with no enum or format, and no pattern but the control
    characters' rule, which is taken out) the control-character examples: each query
    parameter's, and each property of the JSON bodies the API takes, in lists too. Returns how
    many query parameters and body properties it gave them to."""
    parameters = 0
    bodies: set[str] = set()
    for operations in schema["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and _give_examples(parameter["schema"]):
                    parameters += 1
            content = operation.get("requestBody", {}).get("content", {})
            reference = content.get("application/json", {}).get("schema", {}).get("$ref", "")
            if reference:
                bodies.add(reference.rsplit("/", 1)[1])
    properties = 0
    components = schema["components"]["schemas"]
    seen: set[str] = set()
    while bodies - seen:
        name = (bodies - seen).pop()
        seen.add(name)
        for property_schema in components[name].get("properties", {}).values():
            for option in _options(property_schema):
                inner = option.get("items", option)
                reference = inner.get("$ref", "")
                if reference:
                    bodies.add(reference.rsplit("/", 1)[1])
                elif _give_examples(inner):
                    properties += 1
    return parameters, properties


def _options(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return list(schema.get("anyOf", [schema]))


# The patterns that say a string holds no control characters (beyond line breaks and tabs),
# and what the fuzzer is told instead: nothing, or only what else the pattern asked for.
CONTROL_RULES = {LINE_PATTERN: None, TEXT_PATTERN: None, WORDED_LINE_PATTERN: r"\S"}


def _give_examples(schema: dict[str, Any]) -> bool:
    free = []
    for option in _options(schema):
        if option.get("pattern") in CONTROL_RULES:
            instead = CONTROL_RULES[option.pop("pattern")]
            if instead:
                option["pattern"] = instead
        if (
            option.get("type") == "string"
            and not {"enum", "format"} & option.keys()
            and option.get("pattern", r"\S") == r"\S"
            and option.get("maxLength", 1) > 0
        ):
            free.append(option)
    if free:
        free[0]["examples"] = CONTROL_CHARACTER_EXAMPLES
    return bool(free)


# The operations valid data was refused for, for holding control characters (as it should).
REFUSED_FOR_CONTROL_CHARACTERS: set[str] = set()


@schemathesis.check
def valid_data_accepted_or_refused_for_control_characters(
    ctx: CheckContext, response: Response, case: Case[Any]
) -> bool | None:
    """schemathesis's positive_data_acceptance (turned off for this one), save that a 422
    is the right answer where it names only fields that hold a control character they may not
    (the fuzzer's schema lets them through as valid)."""
    if response.status_code == 422:
        fields = json.loads(response.content).get("error", {}).get("fields") or {}
        if fields and set(fields.values()) == {CONTROL_MESSAGE}:
            REFUSED_FOR_CONTROL_CHARACTERS.add(case.operation.label)
            return None
    return positive_data_acceptance(ctx, response, case)


@dataclass
class StandingAdmin:
    """An admin's API token that keeps working: if the fuzzer revokes it, or demotes or
    removes its person, a new admin with a new token stands in before the next request."""

    db: Database
    secret: str = ""
    made: int = 0

    def token(self) -> str:
        owner = (
            accounts.api_token_owner(self.db, hashed=accounts.token_hash(self.secret))
            if self.secret
            else None
        )
        if owner is None or not owner.user.is_admin:
            self.made += 1
            admin = accounts.create_user(
                self.db, name=f"fuzz-admin-{self.made}", password="fuzzing password", is_admin=True
            )
            assert admin.id is not None
            self.secret = accounts.create_api_token(self.db, user_id=admin.id, name="fuzz").secret
        return self.secret


def seed_gallery(settings: Settings) -> None:
    """A few finished jobs and a collection, so ids the fuzzer tries lead somewhere."""
    with in_process(settings) as client:
        for body in (
            {"prompt": "a lighthouse at dawn", "num_images": 2},
            {"prompt": "a red bicycle", "image_size": "square"},
        ):
            wait_for_job(client, client.post("/api/jobs", json=body).json()["id"])
        client.post("/api/collections", json={"name": "Keepers"})


def fuzz(
    app: Any,
    *,
    headers: dict[str, str],
    auth: StandingAdmin | None,
    leave_out: tuple[tuple[str, str], ...] = (),
) -> list[str]:
    config = schemathesis.Config.from_dict(
        {
            "base-url": "http://127.0.0.1",
            "headers": headers,
            "seed": 20261130,
            "generation": {"max-examples": MAX_EXAMPLES},
            "checks": {"positive_data_acceptance": {"enabled": False}},
            "operations": [
                {
                    "include-method": method,
                    "include-path": path,
                    "checks": {
                        "positive_data_acceptance": {
                            "enabled": False,
                            "expected-statuses": [*ACCEPTED, "422"],
                        }
                    },
                }
                for method, path in CROSS_FIELD_RULES
            ]
            + [
                {"include-method": method, "include-path": path, "enabled": False}
                for method, path in leave_out
            ],
        }
    )
    loading = {**headers, "Authorization": f"Bearer {auth.token()}"} if auth else headers
    loopback = Loopback(app)
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", loopback, config=config, headers=loading
    )
    # Before any operation is read from it: the search's three operations at least (q), and
    # the bodies' texts (a prompt, a collection's name and description, a token's name...).
    parameters, properties = with_control_characters(schema.raw_schema)
    assert parameters >= 3
    assert properties >= 10
    if auth is not None:
        standing = auth

        @schema.auth(refresh_interval=None)  # asked before every request
        class Token:
            def get(self, case: Any, context: Any) -> str:
                return standing.token()

            def set(self, case: Any, data: str, context: Any) -> None:
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    found: list[str] = []
    phases: list[str] = []
    try:
        for event in from_schema(schema).execute():
            record(event, found, phases)
    finally:
        # The app's lifespan (poller, demo emulator) ends with the run, not with the process.
        shutdown_lifespans()
    print("\n" + ", ".join(phases))
    searched = [query for query in loopback.query_strings if b"q=a%00" in query]
    assert searched, "the run searched for a word and a NUL"
    assert loopback.sent_in_a_body(b'"a\\u0000"'), "the run sent a NUL in a body"
    # The check standing in for positive_data_acceptance ran, and saw the rule refuse a body.
    refused = REFUSED_FOR_CONTROL_CHARACTERS
    assert any(label.startswith(("POST", "PATCH")) for label in refused), refused
    return sorted(set(found))


def record(event: events.EngineEvent, found: list[str], phases: list[str]) -> None:
    if isinstance(event, events.ScenarioFinished):
        for checks in event.recorder.checks.values():
            for check in checks:
                if check.status == Status.FAILURE and check.failure_info is not None:
                    failure = check.failure_info.failure
                    sample = check.failure_info.code_sample
                    found.append(
                        f"[{event.phase.value}] {event.label or 'a sequence'}: {check.name}: "
                        f"{failure.title}: {failure.message[:300]}\n{sample}"
                    )
    elif isinstance(event, events.NonFatalError):
        # In-process, an exception the app lets escape (a 500 over HTTP) arrives here.
        found.append(f"{event.label}: the app raised: {event.info}")
    elif isinstance(event, events.FatalError):
        found.append(f"schemathesis could not run: {event.exception}")
    elif isinstance(event, events.PhaseStarted) and isinstance(
        event.payload, events.StatefulPhasePayload
    ):
        payload = event.payload
        phases.append(
            f"stateful links: {payload.transitions_selected} of {payload.transitions_total} "
            f"({payload.inferred_transitions} inferred)"
        )
    elif isinstance(event, events.PhaseFinished):
        phases.append(f"{event.phase.name}: {event.status.value} at {time.monotonic():.0f}")


@pytest.fixture
def team_app(tmp_path: Path, database: DatabaseChoice) -> Iterator[tuple[Any, StandingAdmin]]:
    data = tmp_path / "data"
    seed_gallery(make_settings(data, None, database=database))
    db = database.open(data)
    # Jobs the fuzzer submits stay pending: nothing to render or download meanwhile.
    app = create_app(make_settings(data, None, database=database, demo_job_seconds=3600))
    yield app, StandingAdmin(db)
    db.dispose()


@pytest.mark.timeout(600)
def test_fuzzing_the_api_with_a_token_finds_nothing(
    team_app: tuple[Any, StandingAdmin],
) -> None:
    app, admin = team_app
    admin.token()
    found = fuzz(app, headers={"Host": "127.0.0.1"}, auth=admin)
    assert found == [], "\n\n".join(found)


@pytest.mark.timeout(600)
def test_fuzzing_the_local_api_without_browser_headers_finds_nothing(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    data = tmp_path / "data"
    seed_gallery(make_settings(data, None, database=database))
    app = create_app(make_settings(data, None, database=database, demo_job_seconds=3600))
    # Adding the first person turns sign-in on, ending the single-person mode this run is
    # about (everything after would be a 401); the team run fuzzes that operation.
    found = fuzz(app, headers={"Host": "127.0.0.1"}, auth=None, leave_out=(("POST", "/api/users"),))
    assert found == [], "\n\n".join(found)

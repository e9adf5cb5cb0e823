"""What a request costs on PostgreSQL in round trips, and pooled connections that died.

Each listing's query takes well under a millisecond on the server; a request's other
round trips (a ping before each connection taken, a BEGIN and a ROLLBACK) cost as much
again each (docs/benchmarks.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app.features.people import accounts
from app.storage.db import postgres
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator
from tests.support.gallery_seed import seed_gallery
from tests.support.round_trips import RoundTrips


@pytest.fixture
def pg_app(
    tmp_path: Path, emulator: RunningEmulator, postgres_database: DatabaseChoice
) -> Iterator[RunningApp]:
    """An app on PostgreSQL with a small gallery, its client signed in with a team member's
    API token (as the benchmarks' requests are)."""
    db = postgres_database.open(tmp_path)
    seed_gallery(db, jobs=40)
    person = accounts.create_user(db, name="ada", password="correct horse battery", is_admin=True)
    assert person.id is not None
    token = accounts.create_api_token(db, user_id=person.id, name="tests").secret
    db.dispose()
    with serve_app(make_settings(tmp_path / "data", emulator, database=postgres_database)) as app:
        app.client.headers["Authorization"] = f"Bearer {token}"
        yield app


def fewest_round_trips(app: RunningApp, path: str) -> dict[str, int]:
    """The round trips of the cheapest of three requests for `path`, after one to warm the
    caches: anything the app does meanwhile in the background only adds to one."""
    app.client.get(path).raise_for_status()
    seen = []
    for _ in range(3):
        with RoundTrips() as trips:
            app.client.get(path).raise_for_status()
        seen.append(trips.summary())
    return min(seen, key=lambda counts: sum(counts.values()))


@pytest.mark.parametrize(
    ("path", "statements"),
    [
        ("/api/gallery", 1),
        ("/api/gallery?q=lighthouse", 1),
        ("/api/jobs", 1),
        ("/gallery", 3),
        ("/gallery?q=lighthouse", 3),
    ],
)
def test_a_listing_costs_its_statements_and_no_other_round_trip(
    pg_app: RunningApp, path: str, statements: int
) -> None:
    assert fewest_round_trips(pg_app, path) == {"statement": statements}


def test_a_connection_idle_for_a_while_is_pinged_before_use(
    pg_app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert fewest_round_trips(pg_app, "/api/gallery") == {"ping": 1, "statement": 1}


def test_pooled_connections_ended_by_the_server_are_replaced_without_a_request_failing(
    pg_app: RunningApp, postgres_database: DatabaseChoice
) -> None:
    for path in ("/api/gallery", "/gallery", "/api/jobs"):
        pg_app.client.get(path).raise_for_status()
    assert postgres_database.url is not None
    with psycopg.connect(postgres_database.url, autocommit=True) as admin:
        # Waits (up to 5 s) until each backend has exited: its socket is closed by then.
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            (postgres.APPLICATION_NAME,),
        ).fetchall()
    assert ended and all(row[0] for row in ended)
    for path in ("/api/gallery", "/gallery", "/api/jobs", "/api/gallery?q=lighthouse"):
        assert pg_app.client.get(path).status_code == 200, path

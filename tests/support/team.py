"""A signed-in team on a served app (an admin and two members), shared by the tests of
sign-in, permissions and what each role may do. `team` and `stopped_throttle_clock` are
fixtures, offered to every test through tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from app.core.config import Settings
from app.features.people import accounts, throttle
from app.storage.db.engine import Database
from app.storage.db.tables import utcnow
from app.web.factory import ROUTERS, create_app
from tests.support.apps import CLIENT_TLS, SAME_ORIGIN, RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator

PASSWORD = "correct horse battery"


@dataclass
class Team:
    app: RunningApp
    admin: httpx.Client
    member: httpx.Client
    other: httpx.Client
    db: Database

    def anonymous(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.app.url, timeout=30, headers=headers, verify=CLIENT_TLS)


def sign_in(url: str, name: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30, headers=SAME_ORIGIN, verify=CLIENT_TLS)
    answer = client.post("/sign-in", data={"name": name, "password": password, "next": "/"})
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture
def team(tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice) -> Iterator[Team]:
    settings = make_settings(tmp_path / "data", emulator, database=database)
    db = Database.for_settings(settings)
    db.migrate()
    accounts.create_user(db, name="Ada", password=PASSWORD, is_admin=True)
    accounts.create_user(db, name="Max", password=PASSWORD)
    accounts.create_user(db, name="Zoe", password=PASSWORD)
    with serve_app(settings) as app:
        admin, member, other = (sign_in(app.url, name) for name in ("Ada", "Max", "Zoe"))
        clients = [admin, member, other]
        yield Team(app, admin, member, other, db=db)
        for client in clients:
            client.close()
    db.dispose()


@pytest.fixture
def stopped_throttle_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The throttle's clock stopped (it runs in this process's server thread): the first wait,
    one second, still holds when the next request is checked, however slowly a busy machine
    answers in between. The waits' lengths are what the tests check."""
    now = utcnow()
    monkeypatch.setattr(throttle, "utcnow", lambda: now)
    return now


def all_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the app serves."""
    app = create_app(Settings(_env_file=None))
    found: list[tuple[str, str]] = []
    included = 0
    for route in app.routes:
        if isinstance(route, Mount):
            assert route.path in ("/static", "/docs/assets"), f"an unexpected mount: {route.path}"
        elif isinstance(route, APIRoute | Route):
            found += [(method, route.path) for method in route.methods or ()]
        else:
            included += 1  # an included router: its routes are listed from ROUTERS
    assert included == len(ROUTERS), "every router the app includes is in ROUTERS"
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute | Route)
            found += [(method, route.path) for method in route.methods or ()]
    return sorted(set(found) - {(m, p) for m, p in found if m == "HEAD"})

"""Who holds a cookie or token is remembered briefly (app/features/people/credentials.py): never
past a change
made in this process or in another (SQLite's shared marker, PostgreSQL's notices), at most
`TTL_SECONDS` should news of a change go missing, and the gate asks the database (in a
worker thread) only when it does not know."""

from __future__ import annotations

import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest

from app.core.config import Settings
from app.features.people import accounts
from app.features.people.access import Access
from app.features.people.credentials import TTL_SECONDS, CredentialCache
from app.storage.db.change_marker import ChangeMarker
from app.storage.db.engine import CREDENTIALS_MARKER_SUFFIX, Database
from app.storage.db.tables import ApiToken, utcnow
from app.web.factory import create_app
from tests.support.apps import SAME_ORIGIN
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator
from tests.support.processes import AppProcess

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    db: Database
    access: Access
    clock: Clock
    user_id: int
    other_user_id: int
    token_id: int
    secret: str


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int, int, str]:
    """A migrated database with two people and a token, made once (hashing is slow on purpose)."""
    path = tmp_path_factory.mktemp("credentials") / "playground.db"
    db = Database.at_path(path)
    db.migrate()
    ada = accounts.create_user(db, name="Ada", password=PASSWORD, is_admin=True)
    max_ = accounts.create_user(db, name="Max", password=PASSWORD)
    assert ada.id is not None and max_.id is not None
    token = accounts.create_api_token(db, user_id=max_.id, name="script")
    assert token.token.id is not None
    db.dispose()
    return path, ada.id, max_.id, token.token.id, token.secret


@pytest.fixture
def setup(tmp_path: Path, template: tuple[Path, int, int, int, str]) -> Iterator[Setup]:
    source, ada_id, max_id, token_id, secret = template
    shutil.copy(source, tmp_path / "playground.db")
    db = Database.at_path(tmp_path / "playground.db")
    clock = Clock()
    access = Access(db, b"secret", credentials=CredentialCache(clock=clock))
    yield Setup(db, access, clock, ada_id, max_id, token_id, secret)
    access.close()
    db.dispose()


def test_a_token_is_looked_up_once_then_remembered(setup: Setup) -> None:
    secret = setup.secret
    assert setup.access.cached_token(secret) is None
    found = setup.access.look_up_token(secret)
    assert found is not None and found.user.name == "Max" and found.session_hash is None
    assert setup.access.cached_token(secret) == found
    assert setup.access.look_up_token("sp_not-a-token") is None
    assert setup.access.cached_token("sp_not-a-token") is None, "misses are not remembered"


REVOCATIONS: dict[str, Callable[[Setup], Any]] = {
    "token revoked": lambda s: accounts.revoke_api_token(
        s.db, user_id=s.other_user_id, token_id=s.token_id
    ),
    "person removed": lambda s: accounts.remove_user(s.db, user_id=s.other_user_id),
    "made admin": lambda s: accounts.set_admin(s.db, user_id=s.other_user_id, is_admin=True),
    "new password": lambda s: accounts.set_password(
        s.db, user_id=s.other_user_id, password=PASSWORD + "!"
    ),
    # A password change that also ends the API tokens (and an admin's reset, which always does).
    "new password, tokens revoked": lambda s: accounts.set_password(
        s.db, user_id=s.other_user_id, password=PASSWORD + "!", revoke_tokens=True
    ),
}
REVOKING = ("token revoked", "person removed", "new password, tokens revoked")


@pytest.mark.parametrize("change", REVOCATIONS, ids=str)
def test_a_change_in_this_process_is_seen_at_once(setup: Setup, change: str) -> None:
    secret = setup.secret
    assert setup.access.look_up_token(secret) is not None
    REVOCATIONS[change](setup)
    assert setup.access.cached_token(secret) is None, "no waiting for the cache to expire"
    again = setup.access.look_up_token(secret)
    if change in REVOKING:
        assert again is None
    else:
        assert again is not None and again.user.is_admin == (change == "made admin")


def test_a_change_in_another_process_is_seen_at_once(setup: Setup) -> None:
    """On SQLite: the other process moves the marker beside the database
    (app/storage/db/change_marker.py),
    which this one reads before trusting what it remembers. The clock never moves."""
    secret = setup.secret
    assert setup.access.look_up_token(secret) is not None
    assert setup.access.cached_token(secret) is not None
    # Another process (the CLI, a second web process): its own Database, nobody here is told.
    elsewhere = Database(setup.db.url)
    accounts.remove_user(elsewhere, user_id=setup.other_user_id)
    elsewhere.dispose()
    assert setup.access.cached_token(secret) is None
    assert setup.access.look_up_token(secret) is None


def test_the_marker_is_a_private_file_beside_the_database_shared_by_all_who_map_it(
    tmp_path: Path,
) -> None:
    db = Database.at_path(tmp_path / "playground.db")
    read = db.credentials_marker()
    assert read is not None
    path = tmp_path / ("playground.db" + CREDENTIALS_MARKER_SUFFIX)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    other = ChangeMarker(path)  # as another process maps it
    seen = read()
    assert other.read() == seen
    other.move()
    assert read() != seen and read() == other.read()
    db.credentials_changed()
    assert other.read() == read() != seen
    db.dispose()


def test_an_entry_nothing_says_is_stale_lasts_the_ttl() -> None:
    """The bound should a notice go missing (PostgreSQL's), and the only one without a marker."""
    clock = Clock()
    cache = CredentialCache(clock=clock)
    credential: Any = object()
    cache.put("token:x", credential, generation=cache.generation)
    clock.now += TTL_SECONDS - 0.1
    assert cache.get("token:x") is credential
    clock.now += 0.2
    assert cache.get("token:x") is None


def test_a_marker_moved_while_a_lookup_read_keeps_its_answer_from_use() -> None:
    marks = [b"first"]
    cache = CredentialCache()
    cache.follow(lambda: marks[-1])
    credential: Any = object()
    began = cache.generation  # a lookup starts reading the database ...
    marks.append(b"moved")  # ... another process revokes, and moves the marker ...
    cache.put("token:x", credential, generation=began)  # ... the old answer is stored ...
    assert cache.get("token:x") is None, "... but never used"
    cache.put("token:x", credential, generation=cache.generation)
    assert cache.get("token:x") is credential, "nothing moved since: remembered"


def test_a_notification_from_another_process_clears_it_at_once(setup: Setup) -> None:
    """The hook a server database's LISTEN/NOTIFY calls: `Database.credentials_changed`."""
    secret = setup.secret
    assert setup.access.look_up_token(secret) is not None
    setup.db.credentials_changed()
    assert setup.access.cached_token(secret) is None


def test_a_lookup_overtaken_by_a_change_is_not_remembered() -> None:
    cache = CredentialCache()
    began = cache.generation  # a lookup starts reading the database ...
    cache.clear()  # ... a revocation commits meanwhile ...
    credential: Any = object()
    cache.put("token:x", credential, generation=began)  # ... its answer arrives: too late
    assert cache.get("token:x") is None
    cache.put("token:x", credential, generation=cache.generation)
    assert cache.get("token:x") is credential


def test_sessions_end_at_their_expiry_even_when_remembered(setup: Setup) -> None:
    token = accounts.start_session(setup.db, user_id=setup.user_id, ip=None, days=1)
    found = setup.access.look_up_session(token)
    assert found is not None and found.session_hash is not None
    assert found.csrf_token == setup.access.csrf_token(found.session_hash)
    assert setup.access.cached_session(token) == found
    accounts.end_session(setup.db, token=token)
    assert setup.access.cached_session(token) is None, "signed out here: gone at once"
    assert setup.access.look_up_session(token) is None

    token = accounts.start_session(setup.db, user_id=setup.user_id, ip=None, days=1 / 86400)
    assert setup.access.look_up_session(token) is not None
    with pytest.MonkeyPatch.context() as patch:
        later = utcnow() + timedelta(seconds=2)
        patch.setattr("app.features.people.access.utcnow", lambda: later)
        assert setup.access.cached_session(token) is None, "expired, though cached"


def test_a_new_password_ends_remembered_sessions_at_once(setup: Setup) -> None:
    token = accounts.start_session(setup.db, user_id=setup.other_user_id, ip=None, days=1)
    assert setup.access.look_up_session(token) is not None
    accounts.set_password(setup.db, user_id=setup.other_user_id, password=PASSWORD + "?")
    assert setup.access.cached_session(token) is None, "signed out everywhere: gone at once"
    assert setup.access.look_up_session(token) is None


def test_token_use_is_still_written_down_once_a_minute(setup: Setup) -> None:
    secret = setup.secret
    found = setup.access.look_up_token(secret)
    assert found is not None and setup.access.token_use_due(found), "never used yet"
    setup.access.record_token_use(secret, found)
    remembered = setup.access.cached_token(secret)
    assert remembered is not None and not setup.access.token_use_due(remembered)
    with setup.db.read() as session:
        stored = session.get(ApiToken, found.token_id)
    assert stored is not None and stored.last_used_at is not None
    assert utcnow() - stored.last_used_at < timedelta(minutes=1)


def test_writing_down_a_use_brings_back_no_revoked_token_and_no_fresh_ttl(setup: Setup) -> None:
    secret = setup.secret
    found = setup.access.look_up_token(secret)
    assert found is not None and setup.access.token_use_due(found)
    # A request found the token, and its use is being written down as it is revoked.
    accounts.revoke_api_token(setup.db, user_id=setup.other_user_id, token_id=setup.token_id)
    setup.access.record_token_use(secret, found)
    assert setup.access.cached_token(secret) is None, "the revoked token stays forgotten"
    assert setup.access.look_up_token(secret) is None

    # A live token's use written down 4 s after it was read keeps the read's TTL: a change
    # made elsewhere is still seen within TTL_SECONDS of the read, not of the write.
    token = accounts.create_api_token(setup.db, user_id=setup.other_user_id, name="again")
    read = setup.access.look_up_token(token.secret)
    assert read is not None
    setup.clock.now += TTL_SECONDS - 1
    setup.access.record_token_use(token.secret, read)
    assert setup.access.cached_token(token.secret) is not None
    setup.clock.now += 1.1
    assert setup.access.cached_token(token.secret) is None


@pytest.mark.anyio
async def test_a_known_token_costs_the_gate_no_thread_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    db = Database.at_path(settings.database_path)
    db.migrate()
    ada = accounts.create_user(db, name="Ada", password=PASSWORD, is_admin=True)
    assert ada.id is not None
    secret = accounts.create_api_token(db, user_id=ada.id, name="script").secret
    db.dispose()
    hops: list[str] = []
    real = anyio.to_thread.run_sync

    async def counted(function: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(function, "__name__", repr(function)))
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            assert (await client.get("/healthz", headers=headers)).status_code == 200
            assert hops, "the first request asks the database"
            hops.clear()
            for _ in range(3):
                answer = await client.get("/healthz", headers=headers)
                assert answer.status_code == 200
                assert answer.headers["x-frame-options"] == "DENY"
            # (Whether sign-in is on is looked up again every 2 s: a slow machine may.)
            assert [hop for hop in hops if hop != "sign_in_on"] == [], "known token: no thread"
            revoked = await client.get("/healthz", headers={"Authorization": "Bearer sp_wrong"})
            assert revoked.status_code == 401


def test_on_postgresql_a_token_revoked_by_another_process_is_forgotten_at_once(
    postgres_url: str,
) -> None:
    """Each process's cache hears the others' changes through LISTEN/NOTIFY: no TTL to
    wait out (the clock here never moves)."""
    here = Database(postgres_url)
    here.migrate()
    max_ = accounts.create_user(here, name="Max", password=PASSWORD)
    assert max_.id is not None
    token = accounts.create_api_token(here, user_id=max_.id, name="script")
    assert token.token.id is not None
    access = Access(here, b"secret", credentials=CredentialCache(clock=Clock()))
    elsewhere = Database(postgres_url)  # another web process, or the CLI
    try:
        notices = here._notices
        assert notices is not None and notices.listening.wait(10), "listening"
        assert access.look_up_token(token.secret) is not None
        assert access.cached_token(token.secret) is not None
        assert accounts.revoke_api_token(elsewhere, user_id=max_.id, token_id=token.token.id)
        deadline = time.monotonic() + 10
        while access.cached_token(token.secret) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert access.cached_token(token.secret) is None
        assert access.look_up_token(token.secret) is None
    finally:
        access.close()
        assert here._notices is None, "no one listens: the thread is stopped"
        elsewhere.dispose()
        here.dispose()


@pytest.mark.both_databases
def test_a_credential_ended_in_one_process_stops_at_once_in_another(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """Two web processes on one database, each remembering who holds what: a token revoked
    and a session ended through one, and a person removed by a third (the CLI's way), are
    refused by the other on the very next request, on SQLite as on PostgreSQL."""
    data_dir = tmp_path / "data"
    db = database.open(data_dir)
    db.migrate()
    max_ = accounts.create_user(db, name="Max", password=PASSWORD)
    assert max_.id is not None
    revoked, kept = (
        accounts.create_api_token(db, user_id=max_.id, name=name) for name in ("a", "b")
    )
    # One data dir: on SQLite it holds the database they share.
    first, second = (
        AppProcess(data_dir, emulator, database=database, arguments=("--no-worker",))
        for _ in range(2)
    )
    try:
        first.start()
        second.start()
        with first.client() as on_first, second.client() as on_second:
            signed_in = on_first.post(
                "/sign-in", data={"name": "Max", "password": PASSWORD}, headers=SAME_ORIGIN
            )
            assert signed_in.status_code == 303, signed_in.text
            session = {"Cookie": f"playground_session={on_first.cookies['playground_session']}"}
            holders = [bearer(revoked.secret), bearer(kept.secret), session]
            for headers in holders * 2:  # the second time from what each process remembers
                for client in (on_first, on_second):
                    assert client.get("/api/me", headers=headers).status_code == 200

            assert revoked.token.id is not None
            gone = on_first.delete(f"/api/tokens/{revoked.token.id}", headers=holders[0])
            assert gone.status_code == 204
            assert on_second.get("/api/me", headers=holders[0]).status_code == 401
            assert on_second.get("/api/me", headers=holders[1]).status_code == 200

            out = on_first.post("/sign-out", headers={**session, **SAME_ORIGIN})
            assert out.status_code == 303
            assert on_second.get("/api/me", headers=session).status_code == 401

            accounts.remove_user(db, user_id=max_.id)  # this process: a third one
            for client in (on_first, on_second):
                assert client.get("/api/me", headers=holders[1]).status_code == 401
    finally:
        first.stop()
        second.stop()
        db.dispose()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}

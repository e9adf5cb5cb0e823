"""Sign-in throttling: per name at an address and per address, kept in the database, with
the real wait in the message, for every password check (signing in, changing one's
password). Knowing someone's name no longer locks them out."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from app.features.people import accounts, audit, throttle
from app.features.people.throttle import Attempt
from app.storage.db.engine import Database
from app.storage.db.tables import utcnow
from tests.support.apps import SAME_ORIGIN
from tests.support.databases import DatabaseChoice
from tests.support.team import PASSWORD, Team


def fresh_db(tmp_path: Path, database: DatabaseChoice) -> Database:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    db = database.open(data_dir)
    db.migrate()
    return db


@pytest.mark.both_databases
def test_a_guesser_slows_down_only_their_own_address(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    db = fresh_db(tmp_path, database)
    now = utcnow()
    guesser = Attempt(name="Max", address="203.0.113.7")
    for _ in range(throttle.NAME_AT_ADDRESS_FREE_FAILURES + 1):
        throttle.record_failure(db, guesser, now=now)
    # Six failures: the sixth doubles the first wait of a second.
    assert throttle.wait_seconds(db, guesser, now=now) == 2.0
    assert throttle.wait_seconds(db, Attempt("max", "203.0.113.7"), now=now) == 2.0
    assert throttle.wait_seconds(db, Attempt("Max", "198.51.100.2"), now=now) == 0, (
        "the real Max, elsewhere, signs in as usual"
    )
    assert throttle.wait_seconds(db, Attempt("Zoe", "203.0.113.7"), now=now) == 0
    assert throttle.wait_seconds(db, guesser, now=now + timedelta(seconds=2)) == 0
    db.dispose()


@pytest.mark.both_databases
def test_an_address_trying_name_after_name_is_slowed_down(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    db = fresh_db(tmp_path, database)
    now = utcnow()
    for number in range(throttle.ADDRESS_FREE_FAILURES):
        throttle.record_failure(db, Attempt(f"person{number}", "203.0.113.7"), now=now)
    assert throttle.wait_seconds(db, Attempt("anyone", "203.0.113.7"), now=now) == 1.0
    assert throttle.wait_seconds(db, Attempt("anyone", "198.51.100.2"), now=now) == 0
    # An hour later the count starts again.
    later = now + throttle.FORGET_AFTER + timedelta(seconds=1)
    throttle.record_failure(db, Attempt("person0", "203.0.113.7"), now=later)
    assert throttle.wait_seconds(db, Attempt("anyone", "203.0.113.7"), now=later) == 0
    db.dispose()


@pytest.mark.both_databases
def test_the_wait_is_shared_by_every_process_on_the_database(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    """Two engines on one database stand for two web processes: nothing is in memory."""
    first, second = fresh_db(tmp_path, database), fresh_db(tmp_path, database)
    now = utcnow()
    attempt = Attempt("Ada", "203.0.113.7")
    for db in [first, second] * 3:
        throttle.record_failure(db, attempt, now=now)
    assert throttle.wait_seconds(first, attempt, now=now) == 2.0
    assert throttle.wait_seconds(second, attempt, now=now) == 2.0
    throttle.record_success(second, attempt, now=now)
    assert throttle.wait_seconds(first, attempt, now=now) == 0
    first.dispose()
    second.dispose()


def test_the_message_gives_the_real_wait_rounded_up() -> None:
    assert throttle.wait_message(27.2) == "Too many wrong passwords. Try again in 28 s."
    assert throttle.wait_message(0.3) == "Too many wrong passwords. Try again in 1 s."


@pytest.mark.both_databases
@pytest.mark.usefixtures("stopped_throttle_clock")
def test_a_locked_name_still_signs_in_from_another_address(team: Team) -> None:
    def sign_in(address: str, password: str) -> httpx.Response:
        # The test server trusts X-Forwarded-For from loopback, as behind a proxy.
        return httpx.post(
            team.app.url + "/sign-in",
            data={"name": "Max", "password": password},
            headers={**SAME_ORIGIN, "X-Forwarded-For": address},
        )

    for _ in range(throttle.NAME_AT_ADDRESS_FREE_FAILURES):
        assert sign_in("203.0.113.7", "not the password").status_code == 401
    refused = sign_in("203.0.113.7", PASSWORD)
    assert refused.status_code == 429
    assert f"Try again in {refused.headers['retry-after']} s." in refused.text
    assert sign_in("198.51.100.2", PASSWORD).status_code == 303, "Max at their own desk"


@pytest.mark.both_databases
@pytest.mark.usefixtures("stopped_throttle_clock")
def test_changing_a_password_counts_its_checks_with_the_sign_ins(team: Team) -> None:
    """A stolen session cannot guess the password on the account page either: the current
    password's checks wait and count as sign-ins at that name and address do."""

    def change(current: str) -> httpx.Response:
        return team.member.post(
            "/account/password", data={"current": current, "new": "a brand new password"}
        )

    for _ in range(throttle.NAME_AT_ADDRESS_FREE_FAILURES):
        wrong = change("not the password")
        assert wrong.status_code == 422
        assert "The current password is not right." in wrong.text
    refused = change(PASSWORD)
    assert refused.status_code == 429, "even the right password waits its turn"
    assert f"Try again in {refused.headers['retry-after']} s." in refused.text
    assert accounts.authenticate(team.db, name="Max", password=PASSWORD) is not None, "unchanged"
    # One count: signing in as Max from here waits too.
    with team.anonymous(**SAME_ORIGIN) as browser:
        sign_in = browser.post("/sign-in", data={"name": "Max", "password": PASSWORD})
        assert sign_in.status_code == 429


@pytest.mark.both_databases
def test_a_name_holding_nul_is_a_wrong_name_on_both_databases(team: Team) -> None:
    with team.anonymous(**SAME_ORIGIN) as browser:
        answer = browser.post("/sign-in", data={"name": "Max\x00", "password": PASSWORD})
    assert answer.status_code == 401
    assert "Wrong name or password." in answer.text
    events, _ = audit.recent_events(team.db)
    assert events[0].action == audit.Action.SIGN_IN_FAILED and events[0].actor == "Max\ufffd"


APP = Path(__file__).resolve().parent.parent / "app"


def test_every_password_check_goes_through_the_throttle() -> None:
    """Only `throttle.check_password` asks whether a password is right."""
    asking = {
        str(path.relative_to(APP))
        for path in APP.rglob("*.py")
        if re.search(r"\bauthenticate\(", path.read_text())
    }
    assert asking == {"features/people/accounts.py", "features/people/throttle.py"}

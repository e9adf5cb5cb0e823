"""The one signing module (app/core/signing.py): a key per purpose, what signed before the
module still checks (links, callback addresses, the demo upstream's key), a session cookie
signed before it is refused, and a malformed signature is a refusal, never an error."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.core import signing
from app.core.config import Settings
from app.core.signing import Signer
from app.features.jobs import callbacks
from app.features.jobs.references import SignedReference
from app.features.people import accounts
from app.features.people.access import Access
from app.storage.db.engine import Database
from app.web.gate import SESSION_COOKIE
from tests.support.apps import SAME_ORIGIN, serve_app

SECRET = b"k" * 32


def test_every_purpose_has_a_key_of_its_own() -> None:
    labels = [purpose.label for purpose in signing.PURPOSES]
    assert len(set(labels)) == len(labels)
    signer = Signer(SECRET)
    for purpose in signing.PURPOSES:
        signature = signer.sign(purpose, "the same message")
        assert signer.valid(purpose, "the same message", signature)
        assert not signer.valid(purpose, "another message", signature)
        assert not Signer(b"j" * 32).valid(purpose, "the same message", signature)
        for other in signing.PURPOSES:
            if other is not purpose:
                assert not signer.valid(other, "the same message", signature), (purpose, other)


def test_links_and_callback_addresses_signed_before_the_module_stay_good() -> None:
    """Values pinned from the code before: a reference link or callback address PixelDojo
    holds across an upgrade still works, and the demo upstream's key (its jobs are kept
    under it) is the same."""
    signer = Signer(SECRET)
    link = SignedReference(7, 4096, 10_000_000, 1_900_000_000)
    assert link.signature(signer) == "biX03WtVaQUTxBJfUR7s50zkQU83zS7F"
    assert link.valid(signer, "biX03WtVaQUTxBJfUR7s50zkQU83zS7F", now=1_800_000_000)
    assert callbacks.signature(signer, 42) == "5789ecbc07b04c3fbbd1bd711b51dc94"
    assert callbacks.signature_valid(signer, 42, "5789ecbc07b04c3fbbd1bd711b51dc94")
    assert signer.derived(signing.DEMO_UPSTREAM_KEY) == "d135716c57004b734f0fc9a0a349ed76"


@pytest.fixture
def access(db: Database) -> Iterator[Access]:
    access = Access(db, SECRET)
    yield access
    access.close()


def test_a_session_cookie_signed_before_the_module_is_refused(access: Access) -> None:
    """Sessions moved onto the module's keys: a cookie from before signs its holder out once
    (the README's upgrade note), rather than being taken for someone."""
    before = "tok.FaPV4nsinxIYcvEReFAV1XG30WiqcTZqRqN-axjiLdQ"
    assert access.unsign_session(before) is None
    assert access.unsign_session(access.sign_session("tok")) == "tok"


@pytest.mark.parametrize("presented", ["tökén", "\x00", "x" * 500, ""])
def test_a_malformed_signature_is_refused_not_an_error(access: Access, presented: str) -> None:
    assert not access.csrf_valid(None, presented)
    assert not access.csrf_valid("a-session", presented)
    assert access.unsign_session(f"tok.{presented}") is None
    assert not callbacks.signature_valid(access.signer, 42, presented)
    link = SignedReference(7, 4096, 10_000_000, 1_900_000_000)
    assert not link.valid(access.signer, presented, now=1_800_000_000)


def test_a_cookie_or_form_token_that_is_not_ascii_is_refused_not_a_500(
    settings: Settings,
) -> None:
    """Headers arrive as latin-1 text; comparing such text as a signature raised (a 500)."""
    db = Database.for_settings(settings)
    db.migrate()
    accounts.create_user(db, name="Ada", password="correct horse battery")
    db.dispose()
    with serve_app(settings) as app:
        cookie = f"{SESSION_COOKIE}=tok.t\xf6k\xe9n".encode("latin-1")
        page = app.client.get("/gallery", headers={b"Cookie": cookie})
        assert page.status_code == 303
        with httpx.Client(base_url=app.url, timeout=30) as person:
            signed_in = person.post(
                "/sign-in",
                data={"name": "Ada", "password": "correct horse battery", "next": "/"},
                headers=SAME_ORIGIN,
            )
            assert signed_in.status_code == 303
            # No Sec-Fetch-Site or Origin (an old browser): the form token is what is checked.
            token = "t\xf6k\xe9n".encode("latin-1")
            form = person.post("/sign-out", headers={b"X-CSRF-Token": token})
            assert form.status_code == 403

"""The smaller hardening: no-store on what is personal, a private data dir, tokens revoked
with a password, redirects only to this site, API docs that work offline, and a
single-person app that answers only this machine, even behind a proxy on it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import lxml.html
import pytest

from app.cli import main as cli
from app.cli.local import open_database
from app.features.people import accounts
from tests.support.apps import RunningApp, in_process, make_settings
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.team import PASSWORD, Team, sign_in


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- Cache-Control ---------------------------------------------------------------------


def test_signed_in_pages_and_api_answers_are_not_stored(team: Team) -> None:
    for path in ("/", "/gallery", "/account", "/api/jobs", "/api/me", "/no-such-page"):
        assert team.member.get(path).headers["cache-control"] == "no-store", path
    assert "no-store" not in team.member.get("/static/app.css").headers.get("cache-control", "")
    job = wait_for_job(
        team.member, team.member.post("/api/jobs", json={"prompt": "x"}).json()["id"]
    )
    image = team.member.get(job["images"][0]["url"])
    # Stored images never change: they stay cacheable, but only by this browser.
    assert image.headers["cache-control"].startswith("private")
    with httpx.Client(base_url=team.app.url) as anonymous:
        assert anonymous.get("/api/jobs").headers["cache-control"] == "no-store"


# --- The data dir ----------------------------------------------------------------------


def test_the_data_dir_and_its_files_are_private(
    tmp_path: Path, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    settings = make_settings(data, emulator)
    old_umask = os.umask(0o022)
    try:
        with in_process(settings) as client:
            job = client.post("/api/jobs", json={"prompt": "private"}).json()
            wait_for_job(client, job["id"])
        assert mode(data) == 0o700
        # The signing key is kept in the database (app.features.people.access), not in a file of
        # its own.
        assert not (data / "secret_key").exists()
        for name in ("playground.db", "images.db"):
            assert mode(data / name) == 0o600, name
        for companion in data.glob("*.db-*"):
            assert mode(companion) == 0o600, companion.name
        monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data))
        backup, export = tmp_path / "backup.tar", tmp_path / "gallery.zip"
        assert cli.main(["backup", str(backup)]) == 0
        assert cli.main(["export", str(export)]) == 0
    finally:
        os.umask(old_umask)
    assert mode(backup) == 0o600 and mode(export) == 0o600
    with tarfile.open(backup) as archive:
        assert {member.mode & 0o777 for member in archive.getmembers()} == {0o600}


# --- Passwords and tokens --------------------------------------------------------------


def test_changing_a_password_offers_to_revoke_the_tokens(team: Team) -> None:
    token = team.member.post("/api/tokens", json={"name": "script"}).json()["token"]
    account = lxml.html.fromstring(team.member.get("/account").text)
    (offer,) = account.xpath("//input[@name='revoke_tokens']")
    assert offer.get("checked") is not None and "1 API token" in offer.getparent().text_content()

    def bearer() -> int:
        with httpx.Client(base_url=team.app.url) as script:
            return script.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code

    new_password = "a brand new password"
    kept = team.member.post("/account/password", data={"current": PASSWORD, "new": new_password})
    assert kept.status_code == 303
    assert bearer() == 200, "declined: the token keeps working"
    member = sign_in(team.app.url, "Max", new_password)
    try:
        revoked = member.post(
            "/account/password",
            data={"current": new_password, "new": PASSWORD, "revoke_tokens": "true"},
        )
    finally:
        member.close()
    assert revoked.status_code == 303
    assert bearer() == 401


@pytest.mark.both_databases
def test_an_api_token_can_neither_change_the_password_nor_make_tokens(team: Team) -> None:
    """A leaked token must not take the account, nor make tokens that outlive its revocation:
    both are for a person at their own pages. It may still revoke itself."""
    made = team.member.post("/api/tokens", json={"name": "script"}).json()
    with httpx.Client(
        base_url=team.app.url, headers={"Authorization": f"Bearer {made['token']}"}
    ) as script:
        assert script.get("/api/me").json()["name"] == "Max"
        for answer in (
            script.post("/account/password", data={"current": PASSWORD, "new": "taken over!!"}),
            script.post("/api/tokens", json={"name": "another"}),
            script.post("/account/tokens", data={"name": "another"}),
        ):
            assert answer.status_code == 403, answer.text
            assert "not an API token" in answer.text
        assert [token["id"] for token in team.member.get("/api/tokens").json()] == [made["id"]]
        assert accounts.authenticate(team.db, name="Max", password=PASSWORD) is not None
        assert script.delete(f"/api/tokens/{made['id']}").status_code == 204
        assert script.get("/api/me").status_code == 401


def test_an_admins_reset_revokes_the_tokens(tmp_path: Path) -> None:
    env = {"PLAYGROUND_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    settings = make_settings(tmp_path / "data", None)
    db = open_database(settings)
    user = accounts.create_user(db, name="Max", password=PASSWORD, is_admin=True)
    assert user.id is not None
    new = accounts.create_api_token(db, user_id=user.id, name="nightly")
    reset = subprocess.run(
        [sys.executable, "-m", "app", "users", "set-password", "Max", "--password-stdin"],
        input="an admin's new password\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reset.returncode == 0, reset.stderr
    assert "revoked their API tokens" in reset.stderr
    # The gate's own lookup (app.features.people.access) finds no owner for it any more.
    assert accounts.api_token_owner(db, hashed=accounts.token_hash(new.secret)) is None
    db.dispose()


# --- Redirects -------------------------------------------------------------------------


def test_the_favourite_redirect_goes_only_to_this_site(app: RunningApp) -> None:
    job = wait_for_job(app.client, app.client.post("/api/jobs", json={"prompt": "x"}).json()["id"])
    image_id = job["images"][0]["id"]

    def back_from(referer: str, **form: str) -> str:
        answer = app.client.post(
            f"/gallery/images/{image_id}/favourite",
            data={"favourite": "true", **form},
            headers={"Referer": referer},
        )
        assert answer.status_code == 303
        location: str = answer.headers["location"]
        return location

    for hostile in (
        f"{app.url}//evil.example/gallery",
        f"{app.url}/\\evil.example",
        "https://evil.example/gallery",
        "javascript:alert(1)",
    ):
        assert back_from(hostile) == "/gallery", hostile
    assert back_from(f"{app.url}/gallery", next="//evil.example/") == "/gallery"
    assert back_from(f"{app.url}/gallery?q=x") == "/gallery?q=x", "this site's own page"


# --- Local only ------------------------------------------------------------------------


def test_without_sign_in_a_proxy_on_this_machine_does_not_expose_the_app(app: RunningApp) -> None:
    # A proxy on this machine connects from 127.0.0.1 and may even pass Host: localhost.
    for forwarded in (
        {"X-Forwarded-For": "203.0.113.9"},
        {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"},
        {"Forwarded": 'for="[2001:db8::1]:4711"'},
        {"X-Real-IP": "203.0.113.9"},
    ):
        refused = app.client.get("/api/jobs", headers={"Host": "localhost", **forwarded})
        assert refused.status_code == 403, forwarded
        assert "not through a proxy" in refused.text
    assert app.client.get("/api/jobs", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


def test_without_sign_in_a_caller_elsewhere_is_refused(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    with in_process(settings, peer="192.0.2.10") as client:
        assert client.get("/api/jobs").status_code == 403
        assert client.get("/").status_code == 403


# --- API docs --------------------------------------------------------------------------


def test_the_api_docs_come_from_the_app_itself(tmp_path: Path, emulator: RunningEmulator) -> None:
    with in_process(make_settings(tmp_path / "data", emulator)) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "http" not in policy
        tree = lxml.html.fromstring(page.text)
        assets = tree.xpath("//script/@src") + tree.xpath("//link/@href")
        assert tree.xpath("//script[not(@src)]") == [], "no inline script"
        assert len(assets) >= 3
        for asset in assets:
            assert asset.startswith("/") and not asset.startswith("//"), asset
            assert client.get(asset).status_code == 200, asset
        assert client.get("/openapi.json").json()["info"]["title"] == "Seedream Playground"
        assert client.get("/redoc").status_code == 404


@pytest.mark.browser
def test_the_api_docs_render_offline_in_a_browser(app: RunningApp, browser: object) -> None:
    context = browser.new_context()  # type: ignore[attr-defined]
    outside: list[str] = []

    def only_loopback(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()  # type: ignore[attr-defined]
        else:
            outside.append(url)
            route.abort()  # type: ignore[attr-defined]

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.goto(app.url + "/docs")
    page.wait_for_selector(".opblock", timeout=15_000)
    assert page.locator(".opblock").count() > 20
    assert (
        "POST /api/jobs"
        in " ".join(page.locator(".opblock-summary").all_inner_texts()).replace("\n", " ")
        or page.locator(".opblock-summary-path[data-path='/api/jobs']").count() > 0
    )
    assert outside == [], "nothing is fetched from outside"
    context.close()

"""A shared gallery nobody else gets into: sign-in, permissions, budgets, tokens, CSRF, audit."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.features.people import accounts, throttle
from tests.support.apps import SAME_ORIGIN, RunningApp
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.team import PASSWORD, Team, all_routes

# --- Safe by default -----------------------------------------------------------------


def test_without_sign_in_only_loopback_host_names_are_answered(app: RunningApp) -> None:
    assert app.client.get("/", headers={"Host": "localhost:8000"}).status_code == 200
    assert app.client.get("/", headers={"Host": "127.0.0.1"}).status_code == 200
    rebound = app.client.get("/api/jobs", headers={"Host": "attacker.example"})
    assert rebound.status_code == 403
    assert "users add" in rebound.text


def test_serving_on_a_public_address_without_sign_in_is_refused(tmp_path: Path) -> None:
    env = {"PLAYGROUND_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--host", "0.0.0.0", "--port", "65000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Refusing to listen on 0.0.0.0 without sign-in" in result.stderr
    assert "seedream-playground users add NAME --admin" in result.stderr


def test_every_route_refuses_anonymous_requests_once_sign_in_is_on(
    team: Team, emulator: RunningEmulator
) -> None:
    public = {("GET", "/sign-in"), ("POST", "/sign-in")}
    # The probes: an orchestrator asks them signed in as nobody (tests/test_ops.py).
    public |= {("GET", "/healthz"), ("GET", "/livez"), ("GET", "/readyz")}
    # A signed link for PixelDojo: its signature is its permission (tests/test_references.py).
    public.add(("GET", "/references/{image_id}"))
    # PixelDojo's callback: its signed address is its permission (tests/test_webhooks.py).
    public.add(("POST", "/webhooks/pixeldojo/{job_id}/{signature}"))
    # Signing in for a token: a name and password are its permission.
    public.add(("POST", "/api/sign-in"))
    # The API's description holds no data: tools read it before they hold a token.
    public.add(("GET", "/openapi.json"))
    routes = all_routes()
    assert len(routes) > 40
    with team.anonymous(**SAME_ORIGIN) as anonymous:
        for method, path in routes:
            if (method, path) in public:
                continue
            url = re.sub(r"\{[^}]+\}", "1", path)
            answer = anonymous.request(method, url, json={} if method != "GET" else None)
            if answer.status_code == 303:
                assert answer.headers["location"].startswith("/sign-in?next="), (method, path)
            else:
                assert answer.status_code == 401, (method, path, answer.status_code)
        # The exceptions stay open.
        assert anonymous.get("/sign-in").status_code == 200
        wrong = anonymous.post("/api/sign-in", json={"name": "max", "password": "not it"})
        assert wrong.status_code == 401 and "token" not in wrong.json()
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/static/app.css").status_code == 200
    assert emulator.emulator.requests_to("run") == []


# --- People, sessions, permissions ------------------------------------------------------


@pytest.mark.both_databases
def test_sign_in_sets_a_safe_cookie_and_sign_out_ends_the_session(team: Team) -> None:
    with team.anonymous(**SAME_ORIGIN) as client:
        answer = client.post(
            "/sign-in", data={"name": "max", "password": PASSWORD, "next": "/gallery"}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/gallery"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert client.get("/api/me").json()["name"] == "Max"
        stolen = dict(client.cookies)
        client.post("/sign-out")
    with httpx.Client(base_url=team.app.url, cookies=stolen) as again:
        assert again.get("/api/me").status_code == 401, "a signed-out session is dead"


def test_sign_in_goes_only_to_pages_of_this_site(team: Team) -> None:
    with team.anonymous(**SAME_ORIGIN) as client:
        answer = client.post(
            "/sign-in", data={"name": "Max", "password": PASSWORD, "next": "//evil.example/"}
        )
    assert answer.headers["location"] == "/"


@pytest.mark.both_databases
@pytest.mark.usefixtures("stopped_throttle_clock")
def test_repeated_failed_sign_ins_are_slowed_down(team: Team) -> None:
    with team.anonymous(**SAME_ORIGIN) as client:
        # An unknown name answers like a wrong password: names are not revealed.
        unknown = client.post("/sign-in", data={"name": "nobody", "password": "wrong password!"})
        assert unknown.status_code == 401
        assert "Wrong name or password" in unknown.text
        for _ in range(throttle.NAME_AT_ADDRESS_FREE_FAILURES):
            wrong = client.post("/sign-in", data={"name": "Max", "password": "wrong password!"})
            assert wrong.status_code == 401
            assert "Wrong name or password" in wrong.text
        slowed = client.post("/sign-in", data={"name": "Max", "password": PASSWORD})
        assert slowed.status_code == 429, "even the right password waits its turn"
        wait = int(slowed.headers["retry-after"])
        assert wait >= 1
        assert f"Try again in {wait} s." in slowed.text, "the message gives the real wait"
        # Only that name at that address waits: another name from here goes in.
        assert (
            client.post("/sign-in", data={"name": "Zoe", "password": PASSWORD}).status_code == 303
        )


def test_members_cannot_reach_admin_pages(team: Team) -> None:
    for path in ("/admin/people", "/admin/spend", "/admin/audit", "/api/users", "/api/audit"):
        assert team.member.get(path).status_code == 403, path
        assert team.admin.get(path).status_code == 200, path
    refused = team.member.post("/api/users", json={"name": "Eve", "password": PASSWORD})
    assert refused.status_code == 403
    assert accounts.find_user(team.db, name="Eve") is None


def test_members_delete_only_their_own_team_presets(team: Team) -> None:
    body = {"name": "Moody", "description": "", "parameters": {"prompt": "a moody street"}}
    created = team.member.post("/api/team-presets", json=body).json()
    refused = team.other.delete(f"/api/team-presets/{created['id']}")
    assert refused.status_code == 403
    assert team.member.delete(f"/api/team-presets/{created['id']}").status_code == 204
    again = team.other.post("/api/team-presets", json={**body, "name": "Bright"}).json()
    assert team.admin.delete(f"/api/team-presets/{again['id']}").status_code == 204


@pytest.mark.both_databases
def test_jobs_record_who_made_them(team: Team) -> None:
    job = team.member.post("/api/jobs", json={"prompt": "made by max"}).json()
    assert job["author"] == "Max"
    assert "by Max" in team.other.get("/").text, "the whole team sees who made what"
    assert wait_for_job(team.other, job["id"])["author"] == "Max"


# --- Budgets ---------------------------------------------------------------------------


@pytest.mark.both_databases
@pytest.mark.usefixtures("fixed_calendar")
def test_a_job_over_budget_is_refused_before_any_upstream_request(
    team: Team, emulator: RunningEmulator
) -> None:
    max_id = accounts.find_user(team.db, name="Max").id  # type: ignore[union-attr]
    answer = team.admin.patch(f"/api/users/{max_id}", json={"daily_budget": 3})
    assert answer.json()["daily_budget"] == 3
    first = team.member.post("/api/jobs", json={"prompt": "two images", "num_images": 2})
    assert first.status_code == 202
    runs = len(emulator.emulator.requests_to("run"))
    over = team.member.post("/api/jobs", json={"prompt": "two more", "num_images": 2})
    assert over.status_code == 403
    error = over.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert "daily budget is 3" in error["message"]
    assert "2 are spent" in error["message"]
    assert len(emulator.emulator.requests_to("run")) == runs, "nothing was sent"
    assert team.member.post("/api/jobs", json={"prompt": "one fits"}).status_code == 202
    spend = {row["name"]: row for row in team.admin.get("/api/spend").json()}
    assert spend["Max"]["today"] == 3
    assert "Max" in team.admin.get("/admin/spend").text


@pytest.mark.both_databases
def test_failed_and_refused_jobs_do_not_use_the_budget(
    team: Team, emulator: RunningEmulator
) -> None:
    max_id = accounts.find_user(team.db, name="Max").id  # type: ignore[union-attr]
    team.admin.patch(f"/api/users/{max_id}", json={"daily_budget": 1})
    failed = team.member.post("/api/jobs", json={"prompt": "fails upstream [[fail]]"}).json()
    assert wait_for_job(team.member, failed["id"])["status"] == "failed"
    assert team.member.post("/api/jobs", json={"prompt": "still fits"}).status_code == 202


# --- API tokens ------------------------------------------------------------------------


@pytest.mark.both_databases
def test_api_tokens_act_as_their_owner_and_stop_at_once_when_revoked(team: Team) -> None:
    created = team.member.post("/api/tokens", json={"name": "nightly"})
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("sp_")
    script = team.anonymous(Authorization=f"Bearer {secret}")
    job = script.post("/api/jobs", json={"prompt": "from a script"})
    assert job.status_code == 202
    assert job.json()["author"] == "Max"
    assert script.get("/api/me").json()["name"] == "Max"
    assert secret not in team.member.get("/api/tokens").text, "shown once only"

    revoked = team.member.delete(f"/api/tokens/{created.json()['id']}")
    assert revoked.status_code == 204
    assert script.get("/api/jobs").status_code == 401
    assert script.post("/api/jobs", json={"prompt": "after revoking"}).status_code == 401
    assert team.member.get("/api/tokens").json() == []
    script.close()


@pytest.mark.both_databases
def test_removing_a_person_ends_their_sessions_and_tokens(team: Team) -> None:
    secret = team.other.post("/api/tokens", json={"name": "ci"}).json()["token"]
    zoe_id = accounts.find_user(team.db, name="Zoe").id  # type: ignore[union-attr]
    assert team.admin.delete(f"/api/users/{zoe_id}").status_code == 204
    assert team.other.get("/api/me").status_code == 401
    with team.anonymous(Authorization=f"Bearer {secret}") as script:
        assert script.get("/api/jobs").status_code == 401


def test_the_last_admin_cannot_be_removed_or_demoted(team: Team) -> None:
    ada_id = accounts.find_user(team.db, name="Ada").id  # type: ignore[union-attr]
    # 409: a valid request that clashes with what is there (the team's only admin).
    demoted = team.admin.patch(f"/api/users/{ada_id}", json={"is_admin": False})
    assert demoted.status_code == 409 and "is_admin" in demoted.json()["error"]["fields"]
    assert team.admin.delete(f"/api/users/{ada_id}").status_code == 409


# --- Cross-site requests and headers ------------------------------------------------------


def test_state_changing_requests_from_other_sites_are_refused(team: Team) -> None:
    cookies = dict(team.member.cookies)
    form = {"prompt": "a cross-site post", "num_images": "1"}

    def post(headers: dict[str, str], data: dict[str, Any]) -> httpx.Response:
        return httpx.post(team.app.url + "/jobs", data=data, headers=headers, cookies=cookies)

    assert post({"Sec-Fetch-Site": "cross-site"}, form).status_code == 403
    assert post({"Sec-Fetch-Site": "same-site"}, form).status_code == 403
    assert post({"Origin": "https://evil.example"}, form).status_code == 403
    # Neither header, and no token: an old browser or a forged form. Refused.
    bare = post({}, form)
    assert bare.status_code == 403
    assert "carried no valid CSRF token" in bare.text, "a page says why, to a person"
    api = httpx.delete(team.app.url + "/api/collections/1", cookies=cookies)
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "cross_site_request"
    # With the page's CSRF token it goes through; a token from another session does not.
    page = team.member.get("/").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    assert post({}, {**form, "csrf_token": token.group(1)}).status_code == 303
    other_page = team.other.get("/").text
    other_token = re.search(r'name="csrf_token" value="([^"]+)"', other_page)
    assert other_token is not None and other_token.group(1) != token.group(1)
    assert post({}, {**form, "csrf_token": other_token.group(1)}).status_code == 403
    # A cross-site request is refused even with a valid token.
    refused = post({"Sec-Fetch-Site": "cross-site"}, {**form, "csrf_token": token.group(1)})
    assert refused.status_code == 403


def test_the_single_person_mode_is_protected_from_other_sites_too(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    forged = httpx.post(
        app.url + "/jobs",
        data={"prompt": "spend their credits", "num_images": "6"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert forged.status_code == 403
    script = httpx.post(app.url + "/api/jobs", json={"prompt": "a local script"})
    assert script.status_code == 202, "JSON from a script (no browser headers) is allowed"
    assert len(emulator.emulator.requests_to("run")) == 1


def test_pages_carry_security_headers(team: Team) -> None:
    for path in ("/", "/gallery", "/account", "/api/jobs"):
        headers = team.member.get(path).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self';" in policy
        assert "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"


# --- Audit log ---------------------------------------------------------------------------


@pytest.mark.both_databases
def test_the_audit_log_records_who_did_what_from_where(team: Team) -> None:
    team.member.post("/api/jobs", json={"prompt": "audited"})
    max_id = accounts.find_user(team.db, name="Max").id  # type: ignore[union-attr]
    team.admin.patch(f"/api/users/{max_id}", json={"monthly_budget": 100})
    with team.anonymous(**SAME_ORIGIN) as stranger:
        stranger.post("/sign-in", data={"name": "Max", "password": "nope!"})
    events = team.admin.get("/api/audit").json()
    seen = {(event["actor"], event["action"]) for event in events}
    assert ("Max", "sign_in") in seen
    assert ("Max", "submit") in seen
    assert ("Ada", "budget_changed") in seen
    assert ("Max", "sign_in_failed") in seen
    assert all(event["ip"] == "127.0.0.1" for event in events)
    assert "budget changed" in team.admin.get("/admin/audit").text


# --- The command line --------------------------------------------------------------------


def test_users_are_managed_from_the_command_line(tmp_path: Path) -> None:
    env = {"PLAYGROUND_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", "users", *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = run("add", "Ada", "--password-stdin", stdin=PASSWORD + "\n")
    assert first.returncode == 0, first.stderr
    assert "admin" in first.stderr and "Sign-in is now on" in first.stderr
    assert run("add", "Max", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    short = run("add", "Kim", "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "at least 10 characters" in short.stderr
    listed = run("list").stdout.splitlines()
    assert listed == ["Ada\tadmin", "Max\tmember"]
    assert run("remove", "Max").returncode == 0
    assert run("list").stdout.splitlines() == ["Ada\tadmin"]
    assert run("remove", "Ada").returncode != 0, "the last admin stays"


def test_patch_changes_only_the_fields_it_names(team: Team) -> None:
    max_id = accounts.find_user(team.db, name="Max").id  # type: ignore[union-attr]

    def patch(body: dict[str, Any]) -> dict[str, Any]:
        answer = team.admin.patch(f"/api/users/{max_id}", json=body)
        assert answer.status_code == 200, answer.text
        return {key: answer.json()[key] for key in ("is_admin", "daily_budget", "monthly_budget")}

    both = {"is_admin": False, "daily_budget": 5.0, "monthly_budget": 100.0}
    assert patch({"daily_budget": 5, "monthly_budget": 100}) == both
    assert patch({"daily_budget": 7}) == {**both, "daily_budget": 7.0}, "monthly stays"
    assert patch({"monthly_budget": None}) == {**both, "daily_budget": 7.0, "monthly_budget": None}
    assert patch({"is_admin": True}) == {
        "is_admin": True,
        "daily_budget": 7.0,
        "monthly_budget": None,
    }
    board = team.admin.post("/api/collections", json={"name": "Keep", "description": "d"}).json()
    renamed = team.admin.patch(f"/api/collections/{board['id']}", json={"name": "Kept"}).json()
    assert (renamed["name"], renamed["description"]) == ("Kept", "d")

"""The PixelDojo key never reaches a page, an API answer, a log line, an error or the database;
a blank setting is no setting, and nothing signs with a key too short to keep a secret."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from app.cli import main as cli
from app.cli.local import load_settings
from app.core.config import SECRET_KEY_MIN_BYTES, Settings
from app.core.signing import SESSION, Signer
from app.emulator import Fault
from app.features.jobs import callbacks as webhooks
from app.features.jobs.references import SignedReference
from app.web.gate import SESSION_COOKIE
from tests.support.apps import SAME_ORIGIN, make_settings, serve_app
from tests.support.emulators import TEST_KEY, RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.processes import AppProcess
from tests.support.waiting import wait_until


def test_the_key_appears_nowhere_it_could_leak(
    tmp_path: Path, emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path / "data", emulator)
    seen: list[str] = []
    with serve_app(settings) as running:
        client = running.client
        job = client.post("/api/jobs", json={"prompt": "keep the key secret", "num_images": 2})
        seen.append(job.text)
        done = wait_for_job(client, job.json()["id"])
        # An upstream error whose message echoes the key back must not pass it on.
        emulator.emulator.faults.add(
            Fault(route="run", status=403, body={"error": f"bad token {TEST_KEY}"})
        )
        failed = client.post("/api/jobs", json={"prompt": "this one fails"})
        assert failed.status_code == 502
        seen.append(failed.text)
        for path in (
            "/",
            "/gallery",
            f"/jobs/{done['id']}",
            f"/jobs/{failed.json()['error']['job_id']}",
            "/api/jobs",
            "/api/presets",
            "/openapi.json",
            "/docs",
            "/playground/form?preset=food-overhead",
            "/no-such-page",
        ):
            seen.append(client.get(path).text)

    assert TEST_KEY not in "\n".join(seen)
    assert "[redacted]" in seen[1]
    log_text = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    assert TEST_KEY not in log_text
    for file in (tmp_path / "data").rglob("*"):
        if file.is_file():
            assert TEST_KEY.encode() not in file.read_bytes(), file


def test_a_settings_error_does_not_echo_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELDOJO_API_KEY", TEST_KEY)
    monkeypatch.setenv("PIXELDOJO_BASE_URL", "http://pixeldojo.example/api/v1")
    with pytest.raises(SystemExit) as exit_info:
        load_settings()
    message = str(exit_info.value)
    assert "plain http" in message
    assert TEST_KEY not in message


def test_the_settings_repr_hides_the_key(tmp_path: Path, emulator: RunningEmulator) -> None:
    settings = make_settings(tmp_path, emulator)
    assert TEST_KEY not in repr(settings)
    assert TEST_KEY not in str(settings.model_dump())


# --- Blank settings and the signing key -------------------------------------------------

# What compose.yaml's `${VAR:-}` gave a container for a variable the host never set.
BLANKS = pytest.mark.parametrize("blank", ["", " \t "], ids=["empty", "whitespace"])
SECRET_SETTINGS = (
    "PIXELDOJO_API_KEY",
    "PLAYGROUND_SECRET_KEY",
    "PLAYGROUND_DATABASE_URL",
    "PLAYGROUND_FORWARDED_ALLOW_IPS",
)


@BLANKS
def test_blank_secret_settings_are_unset_and_nothing_signed_with_an_empty_key_works(
    tmp_path: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    blank: str,
) -> None:
    """The app started as compose started it, every secret-bearing setting blank, sign-in on
    and a public URL (so reference links and callback addresses are signed): a link, a
    callback address and a session cookie signed with the blank value as the key are all
    refused (taken as the key, it let anyone fetch an image or forge a cookie)."""
    data_dir = tmp_path / "data"
    blanks = {name: blank for name in SECRET_SETTINGS}
    for name, value in blanks.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert cli.main(["users", "add", "Ada", "--admin", "--password-stdin"]) == 0
    capsys.readouterr()

    app = AppProcess(data_dir, emulator)
    app.env.update(blanks)
    app.env["PLAYGROUND_PUBLIC_URL"] = app.url
    app.env["PLAYGROUND_DEMO_JOB_SECONDS"] = "0.3"
    app.start()
    try:
        with app.client() as person, app.client() as stranger:
            signed_in = person.post(
                "/sign-in",
                data={"name": "Ada", "password": "correct horse battery", "next": "/"},
                headers=SAME_ORIGIN,
            )
            assert signed_in.status_code == 303
            job = person.post("/api/jobs", json={"prompt": "blank keys"}, headers=SAME_ORIGIN)
            assert job.status_code == 202, job.text
            done = wait_for_job(person, job.json()["id"])
            image_id = done["images"][0]["id"]
            assert stranger.get(f"/api/images/{image_id}").status_code == 401

            empty = blank.encode()
            link = SignedReference(image_id, 4096, 10_000_000, int(time.time()) + 600)
            forged_link = link.url(app.url, Signer(empty))
            assert stranger.get(forged_link).status_code == 404

            callback = webhooks.callback_url(app.url, Signer(empty), done["id"])
            assert stranger.post(callback).status_code == 404

            cookie = person.cookies[SESSION_COOKIE]
            token = cookie.rpartition(".")[0]
            forged_cookie = f"{token}.{Signer(empty).sign(SESSION, token)}"
            assert forged_cookie != cookie
            stranger.cookies.set(SESSION_COOKIE, forged_cookie)
            assert stranger.get("/api/jobs").status_code == 401
            assert person.get("/api/jobs").status_code == 200
    finally:
        app.stop()
    assert "Traceback" not in app.output


@BLANKS
def test_blank_means_unset_for_every_setting(blank: str) -> None:
    """Whatever the setting: a blank value is its default, never an empty string."""
    defaults = Settings(_env_file=None)
    everything: dict[str, Any] = dict.fromkeys(Settings.model_fields, blank)
    blanked = Settings(_env_file=None, **everything)
    assert blanked.model_dump() == defaults.model_dump()
    assert blanked.secret_key is None and blanked.forwarded_allow_ips is None


def test_a_short_signing_key_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    key = "not-32-bytes-long"
    started = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", "65000"],
        env={
            "PATH": os.environ["PATH"],
            "PLAYGROUND_DATA_DIR": str(tmp_path / "data"),
            "PLAYGROUND_SECRET_KEY": key,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    said = started.stderr.strip()
    assert said.startswith("Invalid settings: PLAYGROUND_SECRET_KEY is shorter than 32 bytes")
    assert "\n" not in said and "Traceback" not in said
    assert key not in said + started.stdout
    assert not (tmp_path / "data").exists(), "refused before anything was made"
    long_enough = Settings(_env_file=None, secret_key="k" * SECRET_KEY_MIN_BYTES)
    assert long_enough.secret_key is not None


# --- The access log -------------------------------------------------------------------


def test_the_access_log_shows_signed_addresses_without_their_signatures(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    """uvicorn's own access log, from `serve`: the callback PixelDojo makes, reference links
    and callback addresses (spelled plainly and with percent escapes) are each answered and
    logged, and no line holds a signature."""
    secret = "s" * SECRET_KEY_MIN_BYTES
    app = AppProcess(tmp_path / "data", emulator, arguments=("--log-level", "info"))
    app.env["PLAYGROUND_SECRET_KEY"] = secret
    app.env["PLAYGROUND_PUBLIC_URL"] = app.url
    app.start()
    signatures: list[str] = []
    try:
        with app.client() as client:
            job_id = client.post("/api/jobs", json={"prompt": "logged"}).json()["id"]
            done = wait_for_job(client, job_id)
            image_id = done["images"][0]["id"]
            wait_until(lambda: emulator.emulator.callbacks, what="PixelDojo's callback")
            signatures.append(webhooks.signature(Signer(secret.encode()), job_id))

            link = SignedReference(image_id, 4096, 10_000_000, int(time.time()) + 600)
            url = link.url(app.url, Signer(secret.encode()))
            signatures.append(link.signature(Signer(secret.encode())))
            assert client.get(url).status_code == 200
            escaped = url.replace("signature=", "sig%6Eature=")
            assert client.get(escaped).status_code == 200

            callback = webhooks.callback_url(app.url, Signer(secret.encode()), job_id)
            assert client.post(callback).status_code == 204
            escaped = callback.replace("/pixeldojo/", "/pixel%64ojo/")
            assert client.post(escaped).status_code == 204
    finally:
        app.stop()
    log = app.output
    assert f'"POST /webhooks/pixeldojo/{job_id}/[redacted] HTTP/1.1" 204' in log
    assert log.count(f"/webhooks/pixeldojo/{job_id}/[redacted]") >= 3
    assert f'"GET /references/{image_id}?expires=' in log
    assert log.count('ature=[redacted] HTTP/1.1" 200') == 2
    assert '"GET /healthz HTTP/1.1" 200' in log, "the rest of each line is as it was"
    for signature in signatures:
        assert signature not in log
    assert secret not in log

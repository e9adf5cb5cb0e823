"""The PixelDojo key never reaches a page, an API answer, a log line, an error or the database."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.cli.local import load_settings
from app.emulator import Fault
from tests.conftest import (
    TEST_KEY,
    RunningEmulator,
    make_settings,
    serve_app,
    wait_for_job,
)


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

"""No message the app gives (an API answer, a job's error, a page, doctor's report) names a
file on the server: a refused upload or download once showed the scratch file's path, in
Pillow's words."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from app.core.errors import plain_reason
from app.emulator import Fault
from tests.support.apps import make_settings, serve_app
from tests.support.doctor import doctor
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job

NOT_AN_IMAGE = b"<html><body>Bad gateway</body></html>"


def assert_no_server_path(text: str, *places: Path) -> None:
    for place in places:
        assert str(place) not in text, f"{place} in {text!r}"
    assert "_io." not in text, text


def test_a_refused_upload_names_no_scratch_file(tmp_path: Path, emulator: RunningEmulator) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    with serve_app(settings) as app:
        answer = app.client.post(
            "/api/uploads", content=NOT_AN_IMAGE, headers={"Content-Type": "image/png"}
        )
    assert answer.status_code == 422
    message = answer.json()["error"]["message"]
    assert "not a readable image" in message
    assert_no_server_path(message, tmp_path)


def test_a_refused_download_fails_its_job_naming_no_scratch_file(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    emulator.emulator.faults.add(Fault("image", kind="payload", body=NOT_AN_IMAGE))
    settings = make_settings(tmp_path / "data", emulator)
    with serve_app(settings) as app:
        job_id = app.client.post("/api/jobs", json={"prompt": "junk back"}).json()["id"]
        job = wait_for_job(app.client, job_id)
        page = app.client.get(f"/jobs/{job_id}").text
    assert job["status"] == "failed"
    assert "not a readable image" in job["error"]
    assert_no_server_path(job["error"], tmp_path)
    assert_no_server_path(page, tmp_path)


def test_doctor_names_no_scratch_file_when_its_test_image_is_refused(
    tmp_path: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scratch = tmp_path / "temp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    emulator.emulator.faults.add(Fault("image", kind="payload", body=NOT_AN_IMAGE))
    code, out = doctor(monkeypatch, capsys, emulator.base_url, tmp_path / "data", "--run")
    assert code == 1
    assert "the test image was refused (the file is not a readable image" in out
    assert_no_server_path(out, scratch)


def test_an_os_error_is_told_by_its_reason_not_its_path() -> None:
    full = OSError(28, "No space left on device", "/srv/playground/tmp/upload-1")
    assert plain_reason(full) == "No space left on device"
    assert plain_reason(PermissionError(13, "Permission denied", "/a", "/b")) == "Permission denied"
    assert plain_reason(OSError("image file is truncated")) == "image file is truncated"
    assert plain_reason(ValueError()) == "ValueError"

"""The worker checks images (decode, thumbnail) in threads that yield the CPU to requests:
on a small server a batch being stored otherwise took the cores pages are made on."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from app.storage import intake
from app.storage.intake import CheckedImage
from app.upstream import DownloadRefused
from tests.support.apps import make_settings
from tests.support.asgi import finished_job, running
from tests.support.emulators import RunningEmulator

pytestmark = pytest.mark.anyio


def niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


async def test_a_stored_image_is_checked_at_a_lower_cpu_priority_than_requests(
    tmp_path: Path, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked_at: list[tuple[str, int]] = []
    check_image = intake.check_image

    def recording(path: Path) -> CheckedImage:
        checked_at.append((threading.current_thread().name, niceness()))
        return check_image(path)

    monkeypatch.setattr(intake, "check_image", recording)
    async with running(make_settings(tmp_path / "data", emulator)) as (_, client):
        answer = await client.post("/api/jobs", json={"prompt": "a lighthouse", "num_images": 2})
        assert answer.status_code == 202
        job = await finished_job(client, answer.json()["id"])
        assert job["status"] == "completed" and len(job["images"]) == 2
        requests_niceness = niceness()
    assert len(checked_at) == 2, "each image is checked once, by the checks' own threads"
    for thread_name, value in checked_at:
        assert thread_name.startswith("image-check")
        assert value == min(19, requests_niceness + intake.IMAGE_THREAD_NICENESS)


async def test_a_refused_image_is_refused_from_the_checks_threads_too(tmp_path: Path) -> None:
    path = tmp_path / "not-an-image.png"
    path.write_bytes(b"plain text, not a picture")
    with pytest.raises(DownloadRefused, match="not a readable image"):
        await intake.check_image_aside(path)

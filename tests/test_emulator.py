"""The emulator keeps to the upstream contract (docs/upstream-contract.md)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from app.emulator.catalogue import SEEDREAM_EDIT
from tests.support.emulators import TEST_KEY, RunningEmulator
from tests.support.waiting import wait_until

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}
RUN = "/api/v1/models/seedream-4/run"


@pytest.fixture
def http(emulator: RunningEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=10) as client:
        yield client


def test_submit_is_202_with_the_documented_fields(http: httpx.Client) -> None:
    answer = http.post(RUN, json={"prompt": "a fox"}, headers=AUTH)
    assert answer.status_code == 202
    body = answer.json()
    assert set(body) == {
        "jobId",
        "status",
        "statusUrl",
        "creditCost",
        "creditsRemaining",
        "expiresAt",
    }
    assert body["status"] == "pending"
    assert body["statusUrl"].endswith(f"/api/v1/jobs/{body['jobId']}")
    assert body["expiresAt"].endswith("Z")


def test_a_job_moves_from_pending_to_completed_with_real_pngs(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.config.job_seconds = 0.6
    job_id = http.post(
        RUN,
        json={"prompt": "a fox", "image_size": "landscape_16_9", "num_images": 2},
        headers=AUTH,
    ).json()["jobId"]
    seen: set[str] = set()

    def completed() -> dict[str, Any] | None:
        body = http.get(f"/api/v1/jobs/{job_id}", headers=AUTH).json()
        seen.add(body["status"])
        return body if body["status"] == "completed" else None

    done = wait_until(completed, timeout=10, interval=0.02)
    assert {"pending", "processing", "completed"} <= seen
    images = done["output"]["images"]
    assert len(images) == 2
    assert done["expiresAt"] and done["creditCost"] == 2
    png = httpx.get(images[0])
    assert png.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(png.content)) as image:
        assert image.format == "PNG"
        assert image.size == (2560, 1440)


def test_auth_is_required_and_checked(http: httpx.Client) -> None:
    missing = http.post(RUN, json={"prompt": "a fox"})
    assert missing.status_code == 401
    wrong = http.post(RUN, json={"prompt": "a fox"}, headers={"Authorization": "Bearer pd_no"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    # Model discovery is public.
    assert http.get("/api/v1/models").json()["models"][0]["apiId"] == "seedream-4"


def test_unknown_fields_are_refused_by_name_and_aspect_ratio_is_a_switch(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    unknown = http.post(RUN, json={"prompt": "a fox", "style": "noir"}, headers=AUTH)
    assert unknown.status_code == 400
    assert "style" in unknown.json()["error"]["message"]

    strict = http.post(RUN, json={"prompt": "a fox", "aspect_ratio": "1:1"}, headers=AUTH)
    assert strict.status_code == 400
    emulator.config.strict = False
    lenient = http.post(RUN, json={"prompt": "a fox", "aspect_ratio": "1:1"}, headers=AUTH)
    assert lenient.status_code == 202


def test_invalid_parameters_are_400_naming_the_field(http: httpx.Client) -> None:
    answer = http.post(RUN, json={"prompt": "a fox", "num_images": 9}, headers=AUTH)
    assert answer.status_code == 400
    assert "num_images" in answer.json()["error"]["message"]


def test_credits_are_spent_and_refunded_for_failures(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.config.job_seconds = 0
    start = emulator.emulator.balance(TEST_KEY)
    ok = http.post(RUN, json={"prompt": "a fox", "num_images": 3}, headers=AUTH).json()
    assert ok["creditsRemaining"] == start - 3
    failing = http.post(RUN, json={"prompt": "a fox [[fail]]"}, headers=AUTH).json()
    assert emulator.emulator.balance(TEST_KEY) == start - 4
    failed = http.get(f"/api/v1/jobs/{failing['jobId']}", headers=AUTH).json()
    assert failed["status"] == "failed"
    assert failed["error"]
    assert emulator.emulator.balance(TEST_KEY) == start - 3


def test_insufficient_credits_is_403_with_the_documented_code(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    emulator.config.initial_credits = 0
    answer = http.post(RUN, json={"prompt": "a fox"}, headers=AUTH)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "insufficient_credits"


def test_another_keys_job_is_not_found(http: httpx.Client, emulator: RunningEmulator) -> None:
    emulator.config.api_keys = frozenset({TEST_KEY, "pd_other"})
    job_id = http.post(RUN, json={"prompt": "a fox"}, headers=AUTH).json()["jobId"]
    other = http.get(f"/api/v1/jobs/{job_id}", headers={"Authorization": "Bearer pd_other"})
    assert other.status_code == 404


def test_recent_jobs_are_listed(http: httpx.Client) -> None:
    ids = [
        http.post(RUN, json={"prompt": f"fox {n}"}, headers=AUTH).json()["jobId"] for n in range(3)
    ]
    listed = http.get("/api/v1/jobs", headers=AUTH).json()
    assert [job["jobId"] for job in listed["jobs"]] == ids[::-1]


def test_knobs_can_be_changed_over_http(http: httpx.Client, emulator: RunningEmulator) -> None:
    answer = http.post("/_emulator/config", json={"job_seconds": 42, "strict": False})
    assert answer.json()["job_seconds"] == 42
    assert emulator.config.job_seconds == 42
    http.post("/_emulator/faults", json={"route": "run", "status": 500, "times": 1})
    assert http.post(RUN, json={"prompt": "a fox"}, headers=AUTH).status_code == 500
    assert http.post(RUN, json={"prompt": "a fox"}, headers=AUTH).status_code == 202


def test_the_edit_model_refuses_a_reference_that_does_not_decode_and_charges_nothing(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    edit = f"/api/v1/models/{SEEDREAM_EDIT}/run"
    jobs_before = len(emulator.emulator.jobs)
    credits = dict(emulator.emulator.credits)
    garbage = "data:image/png;base64," + base64.b64encode(b"<html>not a picture</html>").decode()
    answer = http.post(
        edit, json={"prompt": "the same, in red", "image_urls": [garbage]}, headers=AUTH
    )
    assert answer.status_code == 400
    assert "image_urls[0]" in answer.json()["error"]["message"]
    assert "not a decodable image" in answer.json()["error"]["message"]
    assert len(emulator.emulator.jobs) == jobs_before, "no job made, nothing charged"
    assert emulator.emulator.credits == credits
    missing = http.post(edit, json={"prompt": "the same, in red"}, headers=AUTH)
    assert missing.status_code == 400 and "image_urls" in missing.json()["error"]["message"]

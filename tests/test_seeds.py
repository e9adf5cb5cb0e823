"""Every seed is known: a seed left random is drawn by the app, sent and recorded, so every
image shows the seed that made it and the same seed makes it again."""

from __future__ import annotations

from tests.support.apps import RunningApp
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job

SEED_MAX = 2_147_483_647


def test_a_random_seed_is_drawn_sent_and_recorded(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    answer = app.client.post("/api/jobs", json={"prompt": "a lighthouse at dawn"})
    assert answer.status_code == 202
    job = wait_for_job(app.client, answer.json()["id"])
    (run,) = emulator.emulator.requests_to("run")
    sent = run.body["seed"]
    assert isinstance(sent, int) and 0 <= sent <= SEED_MAX
    assert job["parameters"]["seed"] == sent, "recorded as sent"
    image = job["images"][0]
    detail = app.client.get(f"/api/gallery/images/{image['id']}").json()
    assert detail["reproduce"]["body"]["seed"] == sent
    sidecar = app.client.get(f"/api/images/{image['id']}/sidecar").json()
    assert sidecar["parameters"]["seed"] == sent
    page = app.client.get(f"/jobs/{job['id']}").text
    assert f"<dd>{sent}</dd>" in page

    # The same seed makes it again: byte for byte.
    again = app.client.post(
        "/api/jobs", json={"prompt": "a lighthouse at dawn", "seed": sent}
    ).json()
    remade = wait_for_job(app.client, again["id"])
    assert remade["images"][0]["sha256"] == image["sha256"]


def test_seed_minus_one_the_model_s_random_is_drawn_too(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    assert app.client.post("/api/jobs", json={"prompt": "a fox", "seed": -1}).status_code == 202
    (run,) = emulator.emulator.requests_to("run")
    assert 0 <= run.body["seed"] <= SEED_MAX


def test_a_repeated_request_draws_the_same_seed_and_names_the_same_job(
    app: RunningApp, emulator: RunningEmulator
) -> None:
    headers = {"Idempotency-Key": "seed-twice"}
    first = app.client.post("/api/jobs", json={"prompt": "a fox"}, headers=headers)
    second = app.client.post("/api/jobs", json={"prompt": "a fox"}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]
    form = {"prompt": "a hare", "num_images": "1", "seed": "", "submission_token": "form-one"}
    app.client.post("/jobs", data=form)
    app.client.post("/jobs", data=form)
    other = app.client.post("/jobs", data={**form, "submission_token": "form-two"})
    assert other.status_code == 303
    runs = emulator.emulator.requests_to("run")
    assert len(runs) == 3, "one run per key or token"
    assert runs[1].body["seed"] != runs[2].body["seed"], "a new form, a new seed"

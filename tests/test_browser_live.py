"""Live status in headless Chromium: several jobs at once, changes made by another process,
and what the page does when the stream or the network goes away.

Jobs here take a few seconds upstream, long enough to watch them run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from app.storage.db.engine import Database
from app.storage.db.tables import JobStatus
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.browser import wait_for_htmx
from tests.support.emulators import RunningEmulator, serve_emulator
from tests.support.jobs import end_job_elsewhere, wait_for_job

pytestmark = pytest.mark.browser

JOB_SECONDS = 2.5
DONE_TIMEOUT = 30_000


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[RunningEmulator]:
    with serve_emulator(job_seconds=JOB_SECONDS) as running:
        yield running


@pytest.fixture(scope="module")
def slow_app(
    tmp_path_factory: pytest.TempPathFactory, slow_emulator: RunningEmulator
) -> Iterator[RunningApp]:
    data_dir = tmp_path_factory.mktemp("live") / "data"
    with serve_app(make_settings(data_dir, slow_emulator)) as running:
        # One finished job, so the page has a typical duration to estimate from.
        first = running.client.post("/api/jobs", json={"prompt": "a first light"}).json()
        wait_for_job(running.client, first["id"])
        yield running


@pytest.fixture
def page(browser: Any, slow_app: RunningApp) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.requests = []
    page.on("request", lambda request: page.requests.append(request.url))
    yield page
    context.close()
    assert errors == [], errors


def open_playground(page: Any, app: RunningApp) -> None:
    page.goto(app.url + "/")
    wait_for_htmx(page)


def submit(page: Any, prompt: str) -> Any:
    page.locator("#prompt").fill(prompt)
    page.get_by_role("button", name=re.compile("^Generate")).click()
    card = page.locator(".job-card", has_text=prompt)
    card.wait_for()
    return card


def test_several_jobs_run_at_once_with_elapsed_time_and_an_estimate(
    page: Any, slow_app: RunningApp
) -> None:
    from playwright.sync_api import expect

    open_playground(page, slow_app)
    first = submit(page, "a heron at dawn")
    second = submit(page, "a heron at dusk")
    for card in (first, second):
        expect(card).to_have_attribute("data-running", "")
    # Elapsed time counts up, beside the estimate from the job before.
    expect(first.locator("[data-timing]")).to_have_text(
        re.compile(r"· [1-9]\d* s (of about|\(usually)")
    )
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#connection")).to_contain_text("Live")
    for card in (first, second):
        expect(card).to_have_attribute("data-status", "completed", timeout=DONE_TIMEOUT)
        expect(card.locator("img")).to_have_count(1)
    # Once nothing runs, the stream is closed and the indicator quiet.
    expect(page.locator("#connection")).to_have_attribute("data-state", "idle")
    streams = [url for url in page.requests if "/events/jobs" in url]
    assert 1 <= len(streams) <= 3, streams
    assert not any("/jobs/cards" in url for url in page.requests), "no polling while streaming"


def test_a_change_made_by_another_process_reaches_the_page(
    page: Any, slow_app: RunningApp, slow_emulator: RunningEmulator
) -> None:
    from playwright.sync_api import expect

    open_playground(page, slow_app)
    slow_emulator.emulator.config.job_seconds = 600  # it stays running until we end it
    try:
        card = submit(page, "a heron that never lands")
        expect(card).to_have_attribute("data-status", "pending")
        job_id = int(card.get_attribute("data-job-id"))
        # Another worker on the same database: its writes wake nothing in this process.
        other = Database.at_path(slow_app.settings.database_path)
        try:
            end_job_elsewhere(other, job_id, JobStatus.FAILED, "Stopped elsewhere.")
        finally:
            other.dispose()
        expect(card).to_have_attribute("data-status", "failed", timeout=10_000)
        expect(card.locator(".job-error")).to_have_text("Stopped elsewhere.")
    finally:
        slow_emulator.emulator.config.job_seconds = JOB_SECONDS


def test_without_a_stream_the_page_polls_and_says_it_is_reconnecting(
    page: Any, slow_app: RunningApp
) -> None:
    from playwright.sync_api import expect

    page.route("**/events/jobs**", lambda route: route.abort())
    open_playground(page, slow_app)
    card = submit(page, "a heron behind a proxy")
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#connection")).to_contain_text("Reconnecting")
    expect(card).to_have_attribute("data-status", "completed", timeout=DONE_TIMEOUT)
    expect(card.locator("img")).to_have_count(1)
    assert any("/jobs/cards?ids=" in url for url in page.requests)


def test_the_page_says_when_it_is_offline_and_recovers(page: Any, slow_app: RunningApp) -> None:
    from playwright.sync_api import expect

    open_playground(page, slow_app)
    card = submit(page, "a heron in a tunnel")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    page.context.set_offline(True)
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    expect(page.locator("#connection")).to_contain_text("Offline")
    page.context.set_offline(False)
    expect(card).to_have_attribute("data-status", "completed", timeout=DONE_TIMEOUT)
    expect(page.locator("#connection")).not_to_have_attribute("data-state", "offline")

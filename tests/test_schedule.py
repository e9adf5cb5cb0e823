"""The worker's scheduling policy, alone: no database, no clock, no PixelDojo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.features.jobs.timing import UpstreamTiming
from app.storage.db.tables import Job
from app.upstream import ListedJob
from app.worker import schedule

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
USUAL = UpstreamTiming(first=50.0, step=4.0, until=80.0)


def _job(**fields: object) -> Job:
    values: dict[str, object] = {
        "model": "seedream-4.5",
        "prompt": "a lighthouse",
        "image_size": "square_hd",
        "num_images": 1,
        "request_body": {},
        "created_at": T0,
    }
    values.update(fields)
    return Job.model_validate(values)


def _listed(**fields: object) -> ListedJob:
    values: dict[str, object] = {
        "job_id": "up-1",
        "status": "completed",
        "created_at": T0 + timedelta(seconds=5),
        "model": "seedream-4.5",
        "prompt": "a lighthouse",
    }
    values.update(fields)
    return ListedJob(**values)  # type: ignore[arg-type]


def test_the_loop_sleeps_until_the_next_job_is_due_and_never_past_the_recheck() -> None:
    assert schedule.idle_wait(None) == schedule.IDLE_RECHECK_SECONDS
    assert schedule.idle_wait(1.0) == pytest.approx(1.01)
    assert schedule.idle_wait(0.0) == pytest.approx(0.01)
    assert schedule.idle_wait(3600.0) == schedule.IDLE_RECHECK_SECONDS


def test_only_images_waiting_for_a_storing_slot_count_against_claiming() -> None:
    assert schedule.free_slots(concurrency=10, polling=3, storing=0) == 7
    # Images being stored in their own slots leave claiming alone ...
    assert schedule.free_slots(concurrency=10, polling=3, storing=schedule.STORE_CONCURRENCY) == 7
    # ... those queued behind them do not.
    queued = schedule.STORE_CONCURRENCY + 4
    assert schedule.free_slots(concurrency=10, polling=3, storing=queued) == 3


def test_what_was_looked_up_is_trusted_for_a_few_seconds_only() -> None:
    assert not schedule.still_fresh(None, now=100.0)
    assert schedule.still_fresh(100.0, now=100.0)
    assert schedule.still_fresh(100.0, now=100.0 + schedule.EXPECTATION_TTL_SECONDS - 0.001)
    assert not schedule.still_fresh(100.0, now=100.0 + schedule.EXPECTATION_TTL_SECONDS)


def test_a_first_poll_waits_for_callbacks_only_while_they_arrive() -> None:
    without = schedule.first_poll_delay(
        found=USUAL, callbacks_arrive=False, initial=2.0, maximum=30.0
    )
    waiting = schedule.first_poll_delay(found=USUAL, callbacks_arrive=True, initial=2.0, maximum=30)
    assert without == USUAL.first
    # With callbacks, half as late again as all but the slowest jobs would have called.
    assert waiting == pytest.approx(1.5 * USUAL.until)
    # No history: the setting's first poll.
    assert (
        schedule.first_poll_delay(found=None, callbacks_arrive=False, initial=2.0, maximum=30) == 2
    )


def test_a_running_job_is_polled_sparingly_while_its_callback_is_awaited() -> None:
    common = {"found": USUAL, "elapsed": 60.0, "poll_count": 2, "initial": 2.0, "maximum": 30.0}
    ordinary = schedule.poll_delay(awaiting_callback=False, **common)  # type: ignore[arg-type]
    safety = schedule.poll_delay(awaiting_callback=True, **common)  # type: ignore[arg-type]
    assert ordinary == USUAL.step
    assert safety == pytest.approx(1.5 * USUAL.until - 60.0)


def test_a_running_job_is_out_of_time_only_after_its_deadline() -> None:
    assert not schedule.past_deadline(
        created_at=T0, deadline_seconds=600, now=T0 + timedelta(seconds=600)
    )
    assert schedule.past_deadline(
        created_at=T0, deadline_seconds=600, now=T0 + timedelta(seconds=601)
    )


def test_a_job_is_given_up_only_past_its_deadline_and_its_images_expiry() -> None:
    late = T0 + timedelta(seconds=700)
    assert schedule.given_up(created_at=T0, expires_at=None, deadline_seconds=600, now=late)
    # Images still fetchable: not yet.
    assert not schedule.given_up(
        created_at=T0, expires_at=T0 + timedelta(hours=1), deadline_seconds=600, now=late
    )
    # An expiry before the deadline does not bring the deadline forward.
    assert not schedule.given_up(
        created_at=T0,
        expires_at=T0 + timedelta(seconds=10),
        deadline_seconds=600,
        now=T0 + timedelta(seconds=300),
    )


def test_images_expire_when_pixeldojo_says_else_a_day_after_they_were_made() -> None:
    said = T0 + timedelta(hours=2)
    assert schedule.images_expire(_job(expires_at=said)) == said
    done = T0 + timedelta(minutes=1)
    assert schedule.images_expire(_job(upstream_completed_at=done)) == done + timedelta(hours=24)
    assert schedule.images_expire(_job()) == T0 + timedelta(hours=24)


def test_retries_back_off_exponentially_up_to_a_ceiling() -> None:
    assert schedule.backoff_ceiling(poll_count=0, initial=2.0) == 2.0
    assert schedule.backoff_ceiling(poll_count=3, initial=2.0) == 16.0
    assert schedule.backoff_ceiling(poll_count=50, initial=2.0) == schedule.RETRY_MAX_SECONDS
    # The exponent stops growing at ten doublings, however small the first delay.
    assert schedule.backoff_ceiling(poll_count=50, initial=0.01) == pytest.approx(10.24)


def test_a_retry_never_waits_past_the_cap_nor_long_past_the_images_expiry() -> None:
    assert schedule.capped_retry_delay(500.0, expires_in=None) == schedule.RETRY_MAX_SECONDS
    assert schedule.capped_retry_delay(20.0, expires_in=None) == 20.0
    # The last attempt lands just after the expiry, where the job is marked expired ...
    assert schedule.capped_retry_delay(20.0, expires_in=3.0) == 3.5
    # ... and one already past it is tried again at once, not in the past.
    assert schedule.capped_retry_delay(20.0, expires_in=-100.0) == 0.5


def test_a_fresh_lease_is_trusted_for_a_quarter_of_its_length() -> None:
    assert schedule.trusted_for(60.0) == 15.0
    assert schedule.held_within(100.0, now=110.0, within=15.0)
    assert not schedule.held_within(100.0, now=115.0, within=15.0)
    assert not schedule.held_within(None, now=100.0, within=15.0)
    # Asked with no trust at all, a lease is always checked.
    assert not schedule.held_within(100.0, now=100.0, within=0.0)


def test_a_listed_job_could_be_a_lost_submission_only_if_nothing_contradicts_it() -> None:
    job = _job()
    assert schedule.could_be(job, _listed(), submit_window_seconds=60)
    assert not schedule.could_be(job, _listed(model="other"), submit_window_seconds=60)
    assert not schedule.could_be(job, _listed(prompt="a harbour"), submit_window_seconds=60)
    # Without a time, only a matching prompt tells.
    assert schedule.could_be(job, _listed(created_at=None), submit_window_seconds=60)
    assert not schedule.could_be(
        job, _listed(created_at=None, prompt=None), submit_window_seconds=60
    )
    # Within the submit's window, give or take the clocks' slack; not outside it.
    slack = schedule.CLOCK_SLACK_SECONDS
    edge = T0 + timedelta(seconds=60 + slack)
    assert schedule.could_be(job, _listed(created_at=edge), submit_window_seconds=60)
    past = edge + timedelta(seconds=1)
    assert not schedule.could_be(job, _listed(created_at=past), submit_window_seconds=60)
    early = T0 - timedelta(seconds=slack + 1)
    assert not schedule.could_be(job, _listed(created_at=early), submit_window_seconds=60)

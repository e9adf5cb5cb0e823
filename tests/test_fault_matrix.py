"""Every fault in the matrix ends as it should: right state and message, at most one paid
submission, and complete, correct, unduplicated images."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fault_matrix import (
    SCENARIOS,
    Expect,
    Report,
    Scenario,
    run_random_kills,
    run_scenario,
    summarize,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fault(scenario: Scenario, tmp_path: Path) -> None:
    report = run_scenario(scenario, tmp_path)
    assert report.check() == []
    assert report.submissions <= 1


def test_credits_are_kept_on_an_expired_job(tmp_path: Path) -> None:
    (expiry,) = [s for s in SCENARIOS if s.expect.status == "expired"]
    report = run_scenario(expiry, tmp_path)
    assert report.status == "expired"
    assert report.credit_cost == 1, "the credits PixelDojo reported stay on the job"


def test_killed_at_random_instants_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    reports = run_random_kills(tmp_path)
    for report in reports:
        assert report.check() == [], report.scenario.name


def test_the_summary_line_counts_what_went_wrong() -> None:
    fine = Report(Scenario("fine", Expect("completed", images=1)), status="completed")
    fine.submissions, fine.images_stored = 1, 1
    doubled = Report(Scenario("doubled", Expect("completed")), status="completed")
    doubled.submissions, doubled.corrupt_images = 2, 1
    line, all_well = summarize([fine, doubled])
    assert line == (
        "faults tried: 2, jobs lost: 0, double submissions: 1, "
        "corrupt or partial images: 1, unexpected outcomes: 1"
    )
    assert not all_well
    assert summarize([fine]) == (
        "faults tried: 1, jobs lost: 0, double submissions: 0, "
        "corrupt or partial images: 0, unexpected outcomes: 0",
        True,
    )

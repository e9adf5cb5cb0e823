"""What the app remembers of the upstream (the live schema's last good copy, the latest doctor
report) is plain SQLAlchemy: the same functions on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from app.domain.parameters import GenerationParams
from app.features.doctor.report import DoctorResult, latest_report, save_report
from app.features.models.live_rules import known_models, load_row, record_read, rules_from_row
from app.storage.db.engine import Database

NARROW = GenerationParams.model_json_schema()
NARROW["properties"]["num_images"]["maximum"] = 4


pytestmark = pytest.mark.both_databases


def test_the_last_good_copy_outlives_a_failed_read(db: Database) -> None:
    upstream = "https://pixeldojo.ai/api/v1"
    assert rules_from_row(None, "seedream-4").source == "built-in"
    record_read(
        db,
        upstream=upstream,
        model="seedream-4",
        schema={"schema": NARROW},
        card={"apiId": "seedream-4"},
        error=None,
        model_found=True,
    )
    fresh = rules_from_row(load_row(db, upstream=upstream, model="seedream-4"), "seedream-4")
    assert fresh.source == "live"
    assert fresh.rules.bounds("num_images") == (1, 4)
    record_read(
        db,
        upstream=upstream,
        model="seedream-4",
        schema=None,
        card=None,
        error="PixelDojo did not answer in time",
        model_found=None,
    )
    row = load_row(db, upstream=upstream, model="seedream-4")
    kept = rules_from_row(row, "seedream-4")
    assert kept.source == "last good copy"
    assert kept.fetched_at == fresh.fetched_at
    assert kept.rules.bounds("num_images") == (1, 4), "never looser than the live schema"
    assert kept.problem == "PixelDojo did not answer in time"
    assert row is not None and row.model_found is True and row.model_card == {"apiId": "seedream-4"}
    assert known_models(db, upstream=upstream) == ["seedream-4"]
    assert known_models(db, upstream="demo") == []


def test_the_latest_doctor_report_replaces_the_one_before(db: Database) -> None:
    first = DoctorResult(base_url="https://pixeldojo.ai/api/v1", model="seedream-4", spent=False)
    first.block("API key", "refused", "PixelDojo refused the API key.")
    save_report(db, upstream="https://pixeldojo.ai/api/v1", result=first)
    second = DoctorResult(base_url="https://pixeldojo.ai/api/v1", model="seedream-4", spent=False)
    second.add("API key", "ok", "accepted")
    save_report(db, upstream="https://pixeldojo.ai/api/v1", result=second)
    report = latest_report(db, upstream="https://pixeldojo.ai/api/v1")
    assert report is not None
    assert report.exit_code == 0
    assert report.headline == "The app can work with this key."
    assert report.report["checks"][0]["status"] == "ok"

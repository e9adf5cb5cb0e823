"""Which model names the app keeps and reads with the team's key: the configured model and
the models the catalogue lists, no others. A GET writes nothing and sends nothing upstream,
whatever model it names; a stored model the catalogue stopped listing is not read again
and is forgotten after a grace period."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from app.core.config import Settings
from app.emulator import Fault
from app.emulator.catalogue import FLUX, SEEDREAM_EDIT
from app.features.models.live_rules import (
    FORGET_UNLISTED_AFTER,
    forget_unlisted,
    known_models,
    record_read,
)
from app.storage.db.engine import Database
from app.storage.db.tables import ModelCatalogue, ModelSchema, RateBudget, utcnow
from tests.support.apps import make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.doctor import doctor
from tests.support.emulators import RunningEmulator, serve_emulator

HTMX = {"HX-Request": "true"}
JUNK = "junk-model"


def stored(settings: Settings, database: DatabaseChoice) -> dict[str, list[Any]]:
    """What a read of a model or a call upstream would change: the schemas and catalogue
    kept, and the key's rate budget."""
    db = database.open(settings.data_dir)
    try:
        with db.read() as session:
            return {
                "schemas": sorted(
                    (row.model, row.checked_at) for row in session.exec(select(ModelSchema))
                ),
                "catalogues": [
                    (row.upstream, row.checked_at) for row in session.exec(select(ModelCatalogue))
                ],
                "budgets": [
                    (row.fingerprint, row.tokens, row.updated_at, row.paused_until)
                    for row in session.exec(select(RateBudget))
                ],
            }
    finally:
        db.dispose()


def sent_paths(emulator: RunningEmulator) -> list[str]:
    return [request.path for request in emulator.emulator.requests]


@pytest.mark.both_databases
def test_a_get_naming_any_model_writes_nothing_and_sends_nothing(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """`GET /?model=junk-model` (a link, or any page's cross-site `<img>` in local mode)
    stores no name, and the name is never read from PixelDojo, then or at the next start.
    A listed model never read is not read by a GET either."""
    settings = make_settings(
        tmp_path / "data", emulator, database=database, rate_limit_per_minute=600
    )
    with serve_app(settings) as app:
        before = stored(settings, database)
        assert before["budgets"], "the budget is counted in the database"
        emulator.emulator.reset_log()
        for model in (JUNK, FLUX):
            for path in ("/", "/playground/form", "/api/rules", "/playground/code"):
                answer = app.client.get(path, params={"model": model})
                assert answer.status_code == 200, (path, answer.text)
        assert sent_paths(emulator) == []
        assert stored(settings, database) == before
        # Asked by POST, a name the catalogue does not list is still not read, nor kept.
        refreshed = app.client.post("/upstream/rules/refresh", data={"model": JUNK}, headers=HTMX)
        assert refreshed.status_code == 200
        assert sent_paths(emulator) == []
        assert stored(settings, database) == before
    emulator.emulator.reset_log()
    with serve_app(settings):
        pass
    assert sent_paths(emulator), "the next start reads what it keeps"
    assert not [path for path in sent_paths(emulator) if JUNK in path or FLUX in path]


@pytest.mark.both_databases
def test_a_listed_model_never_read_is_read_when_its_form_asks_by_post_then_kept(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    settings = make_settings(tmp_path / "data", emulator, database=database)
    schema_path = f"/models/{SEEDREAM_EDIT}/schema"
    with serve_app(settings) as app:
        emulator.emulator.reset_log()
        page = app.client.get("/", params={"model": SEEDREAM_EDIT})
        assert 'data-rules-reading hx-post="/upstream/rules/refresh" hx-trigger="load"' in page.text
        assert sent_paths(emulator) == []
        answer = app.client.post(
            "/upstream/rules/refresh", data={"model": SEEDREAM_EDIT}, headers=HTMX
        )
        assert answer.status_code == 200
        assert [path for path in sent_paths(emulator) if path.endswith(schema_path)]
        assert 'id="references"' in answer.text, "its own form, with its image input"
        again = app.client.get("/", params={"model": SEEDREAM_EDIT})
        assert "data-rules-reading" not in again.text and 'id="references"' in again.text
    emulator.emulator.reset_log()
    with serve_app(settings):
        pass
    assert [path for path in sent_paths(emulator) if path.endswith(schema_path)], (
        "a listed model once read is read again at start"
    )


def _age(db: Database, *, upstream: str, model: str, by: timedelta) -> None:
    record_read(
        db, upstream=upstream, model=model, schema=None, card=None, error="old", model_found=None
    )
    with db.write() as session:
        row = session.get(ModelSchema, (upstream, model))
        assert row is not None
        row.checked_at = utcnow() - by
        session.add(row)


@pytest.mark.both_databases
def test_stored_models_the_catalogue_does_not_list_are_not_read_and_are_forgotten(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """Names stored before (21 junk names once slowed every job) are not read at start; the
    ones unlisted for longer than the grace period are forgotten, the others kept for now."""
    settings = make_settings(tmp_path / "data", emulator, database=database)
    with serve_app(settings):
        pass  # the catalogue is read and kept
    upstream = settings.upstream_name
    db = database.open(settings.data_dir)
    try:
        past_grace = FORGET_UNLISTED_AFTER + timedelta(hours=1)
        for index in range(21):
            _age(db, upstream=upstream, model=f"{JUNK}-{index}", by=past_grace)
        _age(db, upstream=upstream, model=JUNK, by=timedelta(days=1))
        _age(db, upstream=upstream, model=FLUX, by=past_grace)
        emulator.emulator.reset_log()
        with serve_app(settings):
            pass
        assert not [path for path in sent_paths(emulator) if JUNK in path]
        assert [path for path in sent_paths(emulator) if path.endswith(f"/models/{FLUX}/schema")]
        assert sorted(known_models(db, upstream=upstream)) == sorted([JUNK, FLUX, settings.model])
    finally:
        db.dispose()


@pytest.mark.both_databases
def test_forgetting_takes_only_unlisted_models_past_the_grace_period(db: Database) -> None:
    old, recent = timedelta(days=30), timedelta(days=2)
    for upstream, model, age in [
        ("up", "gone", old),
        ("up", "listed", old),
        ("up", "configured", old),
        ("up", "recently-gone", recent),
        ("elsewhere", "gone", old),
    ]:
        _age(db, upstream=upstream, model=model, by=age)
    forgotten = forget_unlisted(
        db,
        upstream="up",
        listed={"listed"},
        keep="configured",
        checked_before=utcnow() - timedelta(days=7),
    )
    assert forgotten == ["gone"]
    assert sorted(known_models(db, upstream="up")) == ["configured", "listed", "recently-gone"]
    assert known_models(db, upstream="elsewhere") == ["gone"]


@pytest.mark.both_databases
def test_without_a_catalogue_only_the_configured_model_is_kept(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    """While no catalogue was ever read, another model is read for the run at hand (a POST)
    and checked, but not kept: nothing says the name is PixelDojo's."""
    with serve_emulator() as running:
        running.emulator.faults.add(Fault("models", status=503, times=2))
        settings = make_settings(tmp_path / "data", running, database=database)
        with serve_app(settings) as app:
            assert app.client.get("/api/models").json()["source"] == "none"
            page = app.client.get("/", params={"model": FLUX})
            assert "data-rules-reading" not in page.text
            answer = app.client.post("/api/jobs", json={"model": FLUX, "prompt": "a fox"})
            assert answer.status_code == 202, answer.text
            assert [request.body for request in running.emulator.requests_to("run")]
        schemas = [model for model, _ in stored(settings, database)["schemas"]]
        assert schemas == [settings.model]


def test_doctor_keeps_what_it_reads_only_for_a_model_the_app_keeps(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    emulator: RunningEmulator,
) -> None:
    data = tmp_path / "data"
    code, _ = doctor(monkeypatch, capsys, emulator.base_url, data, "--model", JUNK)
    assert code == 1
    code, _ = doctor(monkeypatch, capsys, emulator.base_url, data)
    assert code == 0
    db = Database.at_path(data / "playground.db")
    try:
        assert known_models(db, upstream=emulator.base_url) == ["seedream-4"]
    finally:
        db.dispose()

"""The gallery with sign-in on: whose work is whose, who may delete it, what it cost each
person, and a team's gallery carried to another instance with its authors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.cli import main as cli
from app.features.people import accounts, audit
from app.storage.db.engine import Database
from tests.support.apps import make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.team import Team

pytestmark = pytest.mark.both_databases


def make(client: httpx.Client, prompt: str) -> dict[str, object]:
    answer = client.post("/api/jobs", json={"prompt": prompt})
    assert answer.status_code == 202, answer.text
    return wait_for_job(client, answer.json()["id"])


def image_of(job: dict[str, object]) -> int:
    images = job["images"]
    assert isinstance(images, list)
    image_id: int = images[0]["id"]
    return image_id


def test_the_gallery_filters_by_person_and_names_who_made_each_image(team: Team) -> None:
    maxs = make(team.member, "max paints a lighthouse")
    zoes = make(team.other, "zoe paints a lighthouse")
    max_id = accounts.find_user(team.db, name="Max").id  # type: ignore[union-attr]
    found = team.admin.get("/api/gallery", params={"q": "lighthouse", "user": max_id}).json()
    assert [item["id"] for item in found["items"]] == [image_of(maxs)]
    detail = team.other.get(f"/api/gallery/images/{image_of(maxs)}").json()
    assert detail["author"] == "Max"
    assert "Made by</dt><dd>Zoe" in team.member.get(
        f"/gallery/images/{image_of(zoes)}/lightbox"
    ).text.replace("\n", "")
    page = team.member.get("/gallery").text
    assert '<select name="user">' in page and ">Zoe</option>" in page
    usage = team.admin.get("/api/usage").json()
    assert {row["key"]: row["credits"] for row in usage["by_person"]} == {"Max": 1, "Zoe": 1}
    bad = team.admin.get("/api/gallery", params={"user": "max"})
    assert bad.status_code == 422 and "user" in bad.json()["error"]["fields"]


def test_only_the_maker_or_an_admin_deletes_an_image_and_the_log_says_who(team: Team) -> None:
    image_id = image_of(make(team.member, "max's own image"))
    refused = team.other.post("/api/trash", json={"image_ids": [image_id]})
    assert refused.status_code == 403
    selection = team.other.post(
        "/gallery/selection", data={"action": "trash", "ids": [str(image_id)]}
    )
    assert selection.status_code == 403
    assert team.member.get("/api/trash").json()["items"] == []

    assert team.member.post("/api/trash", json={"image_ids": [image_id]}).json() == {"count": 1}
    assert team.admin.post("/api/trash/restore", json={"image_ids": [image_id]}).json() == {
        "count": 1
    }
    assert team.other.post("/api/trash/purge", json={"image_ids": [image_id]}).status_code == 403
    events, _ = audit.recent_events(team.db)
    mine = [(e.action, e.actor) for e in events if e.action in ("delete", "restore")]
    assert mine == [("restore", "Ada"), ("delete", "Max")]
    # Favourites and collections are the team's: anyone may star or board anyone's image.
    assert team.other.put(f"/api/gallery/images/{image_id}/favourite").status_code == 200


@pytest.mark.usefixtures("fixed_calendar")
def test_same_prompt_new_seed_is_the_person_s_job_within_their_budget(team: Team) -> None:
    first = make(team.member, "a budgeted lighthouse")
    again = team.member.post(f"/api/jobs/{first['id']}/new-seed")
    assert again.status_code == 202, again.text
    assert again.json()["author"] == "Max"
    wait_for_job(team.member, again.json()["id"])
    max_user = accounts.find_user(team.db, name="Max")
    assert max_user is not None and max_user.id is not None
    accounts.set_budgets(
        team.db, user_id=max_user.id, changes={"daily_budget": 2, "monthly_budget": None}
    )
    over = team.member.post(f"/api/jobs/{first['id']}/new-seed")
    assert over.status_code == 403 and over.json()["error"]["code"] == "budget_exceeded"


def test_a_team_gallery_moves_with_its_authors_but_no_accounts(
    team: Team,
    tmp_path: Path,
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    database: DatabaseChoice,
    other_database: DatabaseChoice,
) -> None:
    job = make(team.member, "carried across")
    archive = tmp_path / "team.zip"
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(team.app.settings.data_dir))
    database.use_in_environment(monkeypatch)
    assert cli.main(["export", str(archive)]) == 0
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "copy"))
    other_database.use_in_environment(monkeypatch)
    assert cli.main(["import", str(archive)]) == 0

    copy = make_settings(tmp_path / "copy", emulator, database=other_database)
    db = Database.for_settings(copy)
    try:
        assert not accounts.users_exist(db), "importing never turns sign-in on"
        assert accounts.authenticate(db, name="Max", password="correct horse battery") is None
    finally:
        db.dispose()
    with serve_app(copy) as app:
        moved = app.client.get(f"/api/jobs/{job['id']}").json()
        assert moved["author"] == "Max"
        assert app.client.get(f"/api/gallery/images/{image_of(job)}").json()["author"] == "Max"


def test_the_audit_log_records_renamed_and_deleted_collections(team: Team) -> None:
    board = team.member.post("/api/collections", json={"name": "Moodboard"}).json()
    team.member.patch(f"/api/collections/{board['id']}", json={"description": "no rename"})
    team.member.patch(f"/api/collections/{board['id']}", json={"name": "Mood board"})
    other = team.other.post("/api/collections", json={"name": "Scratch"}).json()
    team.other.post(f"/collections/{other['id']}/edit", data={"name": "Scratch pad"})
    team.other.post(f"/collections/{other['id']}/delete")
    events = [
        (event["actor"], event["action"], event["detail"])
        for event in team.admin.get("/api/audit").json()
    ]
    assert ("Max", "collection_renamed", f"{board['id']}: Moodboard → Mood board") in events
    assert ("Zoe", "collection_renamed", f"{other['id']}: Scratch → Scratch pad") in events
    assert ("Zoe", "collection_deleted", f"{other['id']}: Scratch pad") in events
    assert len([e for e in events if e[1] == "collection_renamed"]) == 2, "a description is not"

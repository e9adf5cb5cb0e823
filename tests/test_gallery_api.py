"""The gallery through its JSON API: search and filters, paging, favourites, collections,
trash, compare, reuse, downloads with parameters, zips and usage, against the emulator."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from app.core.clock import calendar_at
from app.domain.presets import PRESETS_BY_SLUG
from app.features.gallery import listing as gallery
from app.features.gallery import lookups, trash
from app.features.gallery.listing import GalleryFilters
from app.storage.blobs.choose import open_blob_store
from app.storage.db.engine import Database
from app.storage.db.tables import utcnow
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.clock import FIXED_DAY
from tests.support.databases import DatabaseChoice
from tests.support.emulators import TEST_KEY, RunningEmulator, serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.markup import one, select, text, texts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.both_databases


@dataclass
class Made:
    """The jobs the module's gallery starts with, by a short name."""

    jobs: dict[str, dict[str, Any]]

    def image(self, name: str, index: int = 0) -> int:
        image_id: int = self.jobs[name]["images"][index]["id"]
        return image_id


@pytest.fixture(scope="module", autouse=True)
def _fixed_calendar() -> Iterator[None]:
    """The module's gallery is made, searched by today and counted by day on FIXED_DAY: a run
    that crossed midnight once found today's jobs on yesterday."""
    with calendar_at(FIXED_DAY):
        yield


@pytest.fixture(scope="module")
def shared_emulator(module_database: DatabaseChoice) -> Iterator[RunningEmulator]:
    # One per database: tests count what the app sent upstream.
    with serve_emulator(job_seconds=0.1) as running:
        yield running


@pytest.fixture(scope="module")
def shared_app(
    tmp_path_factory: pytest.TempPathFactory,
    shared_emulator: RunningEmulator,
    module_database: DatabaseChoice,
) -> Iterator[RunningApp]:
    data_dir = tmp_path_factory.mktemp("gallery") / "data"
    settings = make_settings(data_dir, shared_emulator, database=module_database)
    with serve_app(settings) as running:
        yield running


FOOD = PRESETS_BY_SLUG["food-overhead"]
BODIES: dict[str, dict[str, Any]] = {
    "food": {**FOOD.params().upstream_body(), "preset": FOOD.slug},
    "dawn": {
        "prompt": "a lighthouse at dawn, watercolour",
        "image_size": "landscape_16_9",
        "seed": 11,
        "num_images": 2,
    },
    "night": {
        "prompt": "a lighthouse at night, oil painting",
        "image_size": "square_hd",
        "seed": 12,
        "num_images": 1,
    },
    "bicycle": {
        "prompt": "red bicycle against a blue wall, café terrace",
        "image_size": "custom",
        "customWidth": 2560,
        "customHeight": 1600,
        "seed": 5,
        "num_images": 1,
    },
}


@pytest.fixture(scope="module")
def made(shared_app: RunningApp) -> Made:
    client = shared_app.client
    ids = {}
    for name, body in BODIES.items():
        answer = client.post("/api/jobs", json=body)
        assert answer.status_code == 202, answer.text
        ids[name] = answer.json()["id"]
    failed = client.post("/api/jobs", json={"prompt": "this one breaks [[fail]]"})
    ids["failed"] = failed.json()["id"]
    jobs = {name: wait_for_job(client, job_id) for name, job_id in ids.items()}
    assert jobs["failed"]["status"] == "failed"
    assert all(jobs[name]["status"] == "completed" for name in BODIES)
    return Made(jobs)


def search(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/api/gallery", params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def every_page(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """All items, following next_cursor; the pages must not overlap."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get(
            "/api/gallery", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200, page.text
        items.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def ids_of(items: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for item in items]


# --- Search, filters, paging -------------------------------------------------------------


def test_search_finds_prompt_words_phrases_and_prefixes(shared_app: RunningApp, made: Made) -> None:
    client = shared_app.client
    lighthouses = search(client, q="lighthouse")
    assert ids_of(lighthouses) == [made.image("night"), made.image("dawn"), made.image("dawn", 1)]
    assert search(client, q="lighth") == lighthouses, "a bare word matches as a prefix"
    assert ids_of(search(client, q='"at dawn"')) == [made.image("dawn"), made.image("dawn", 1)]
    assert search(client, q='"dawn at"') == []
    assert ids_of(search(client, q="LIGHTHOUSE oil")) == [made.image("night")]
    # Diacritics are folded: "cafe" finds "café".
    assert ids_of(search(client, q="cafe")) == [made.image("bicycle")]
    # FTS syntax typed by a user is just text, never an error.
    assert search(client, q='NEAR(" -) OR *') == []


# Every route a search reaches, and queries as a fuzzer or a pasted log line sends them: NUL
# (SQLite reads a string up to it, PostgreSQL refuses it in text), other control characters,
# bytes that are not UTF-8, an overlong NUL and a lone surrogate half.
SEARCH_ROUTES = (
    "/api/gallery",
    "/api/gallery/jobs",
    "/api/zip",
    "/gallery",
    "/gallery/page",
    "/playground/references",
)
RAW_SEARCHES = (
    "a%00",
    "%00",
    "lighthouse%00",
    "%22at%00dawn%22",
    "%00%22",
    "a%00b%00c",
    "%01%08%09%0A%0D%1B%5B31m%7F",
    "dawn%C2%85%E2%80%A8",
    "%FF%FE%00",
    "%C0%80",
    "%ED%A0%80light",
    "%00" * 500,
)


def test_any_bytes_in_a_search_get_an_answer_never_a_server_error(
    shared_app: RunningApp, made: Made
) -> None:
    client = shared_app.client
    for route in SEARCH_ROUTES:
        for raw in RAW_SEARCHES:
            answer = client.get(f"{route}?q={raw}")
            assert answer.status_code < 500, (route, raw, answer.text[:300])
    # A control character parts words as a space or a comma does, in the prompts as typed.
    lighthouses = search(client, q="lighthouse")
    assert lighthouses
    assert search(client, q="lighthouse\x00") == lighthouses
    assert search(client, q="\x00lighthouse\x1b") == lighthouses
    assert ids_of(search(client, q='"at\x00dawn"')) == [made.image("dawn"), made.image("dawn", 1)]
    assert search(client, q="\x00\x01\x7f") == search(client), "no words: no search"


def test_the_like_fallback_finds_what_full_text_search_finds(
    shared_app: RunningApp, made: Made
) -> None:
    db = Database.for_settings(shared_app.settings)
    try:
        for q in ("lighthouse", "LIGHTHOUSE oil", '"at dawn"', "red wall", "nothing-like-this"):
            filters = GalleryFilters(q=q)
            fts = gallery.search_images(db, filters=filters, full_text=True)
            like = gallery.search_images(db, filters=filters, full_text=False)
            assert [e.image_id for e in like.items] == [e.image_id for e in fts.items], q
        jobs_fts, _ = gallery.search_jobs(db, filters=GalleryFilters(q="breaks"), full_text=True)
        jobs_like, _ = gallery.search_jobs(db, filters=GalleryFilters(q="breaks"), full_text=False)
        assert (
            [i.job.id for i in jobs_fts]
            == [i.job.id for i in jobs_like]
            == [made.jobs["failed"]["id"]]
        )
    finally:
        db.dispose()


def test_filters_narrow_the_gallery(shared_app: RunningApp, made: Made) -> None:
    client = shared_app.client
    assert ids_of(search(client, preset="food-overhead")) == [made.image("food")]
    assert ids_of(search(client, image_size="custom")) == [made.image("bicycle")]
    assert ids_of(search(client, image_size="square_hd", q="lighthouse")) == [made.image("night")]
    assert len(search(client, model="seedream-4")) >= 5
    assert search(client, model="another-model") == []
    today = FIXED_DAY.date()
    assert len(search(client, since=today.isoformat(), until=today.isoformat())) >= 5
    assert search(client, until=(today - timedelta(days=1)).isoformat()) == []
    assert search(client, since=(today + timedelta(days=1)).isoformat()) == []
    # The form sends empty fields; they mean "any".
    assert len(search(client, preset="", image_size="", status="", q="", collection="")) >= 5


def test_failed_jobs_are_found_by_status(shared_app: RunningApp, made: Made) -> None:
    answer = shared_app.client.get("/api/gallery/jobs", params={"status": "failed"})
    assert answer.status_code == 200
    assert [job["id"] for job in answer.json()["items"]] == [made.jobs["failed"]["id"]]
    assert answer.json()["items"][0]["error"]
    done = shared_app.client.get("/api/gallery/jobs", params={"status": "completed", "q": "dawn"})
    assert [job["id"] for job in done.json()["items"]] == [made.jobs["dawn"]["id"]]


def test_bad_filters_are_refused_naming_the_field(shared_app: RunningApp) -> None:
    client = shared_app.client
    for params, field in (
        ({"image_size": "huge"}, "image_size"),
        ({"status": "done"}, "status"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-02-02", "until": "2026-02-01"}, "until"),
        ({"collection": "boards"}, "collection"),
        ({"cursor": "12"}, "cursor"),
        # Numbers past what the database's columns hold: never a cursor it handed out.
        ({"cursor": "5.99999999999"}, "cursor"),
        ({"cursor": f"{2**63}.0"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"q": "x" * 501}, "q"),
        # No preset or model is called so; PostgreSQL would refuse the NUL in a query.
        ({"preset": "food\x00"}, "preset"),
        ({"model": "seedream-4\x00"}, "model"),
        ({"model": "seedream-4\n"}, "model"),
    ):
        answer = client.get("/api/gallery", params=params)
        assert answer.status_code == 422, params
        assert field in answer.json()["error"]["fields"], answer.json()


def test_pages_follow_a_cursor_without_gaps_or_repeats(shared_app: RunningApp, made: Made) -> None:
    client = shared_app.client
    everything = search(client, limit=100)
    assert len(everything) >= 5
    # Newest job first, then the job's images in order.
    keys = [(item["job_id"], -item["index"]) for item in everything]
    assert keys == sorted(keys, reverse=True)
    for limit in (1, 2, 3):
        assert ids_of(every_page(client, limit=limit)) == ids_of(everything)
    first = client.get("/api/gallery", params={"limit": 2}).json()
    assert first["next_cursor"] and "." in first["next_cursor"]


def test_the_gallery_page_keeps_filters_in_the_url(shared_app: RunningApp, made: Made) -> None:
    client = shared_app.client
    page = client.get("/gallery", params={"q": "lighthouse", "limit": 1}).text
    assert [img.get("src") for img in select(page, ".gallery-item img")] == [
        f"/api/images/{made.image('night')}/thumbnail"
    ]
    # The next page is fetched when the marker scrolls into view, with the filters kept.
    marker = one(page, ".gallery-more")
    assert marker.get("hx-trigger", "").startswith("revealed")
    assert marker.get("hx-get", "").startswith("/gallery/page?q=lighthouse&limit=1&cursor=")
    more = client.get(
        "/gallery/page",
        params={"q": "lighthouse", "limit": 1, "cursor": f"{made.jobs['night']['id']}.0"},
    )
    assert f"/api/images/{made.image('dawn')}/thumbnail" in [
        img.get("src") for img in select(more.text, ".gallery-item img")
    ]
    assert "<html" not in more.text, "a fragment, not a page"
    failed = client.get("/gallery", params={"status": "failed"}).text
    assert f"Job #{made.jobs['failed']['id']}" in failed


# --- One image ---------------------------------------------------------------------------


def test_an_image_shows_every_parameter_and_its_run(shared_app: RunningApp, made: Made) -> None:
    image_id = made.image("bicycle")
    detail = shared_app.client.get(f"/api/gallery/images/{image_id}").json()
    job = made.jobs["bicycle"]
    assert detail["job"]["parameters"] == {
        "prompt": BODIES["bicycle"]["prompt"],
        "image_size": "custom",
        "customWidth": 2560,
        "customHeight": 1600,
        "seed": 5,
        "num_images": 1,
    }
    assert (detail["width"], detail["height"]) == (2560, 1600)
    assert detail["upstream_job_id"] == job["upstream_job_id"]
    assert detail["job"]["credit_cost"] == 1
    assert detail["remix_url"] == f"/?remix={job['id']}"
    assert detail["reproduce"]["body"] == BODIES["bicycle"]
    lightbox = shared_app.client.get(f"/gallery/images/{image_id}/lightbox").text
    assert job["upstream_job_id"] in lightbox
    assert one(lightbox, "a[data-remix]").get("href", "").startswith(f"/?remix={job['id']}&")
    assert shared_app.client.get("/api/gallery/images/999999").status_code == 404


def test_favourites_are_starred_listed_and_unstarred(shared_app: RunningApp, made: Made) -> None:
    client = shared_app.client
    night, dawn = made.image("night"), made.image("dawn", 1)
    assert client.put(f"/api/gallery/images/{night}/favourite").json()["favourite"] is True
    assert client.post("/api/gallery/favourites", json={"image_ids": [dawn]}).json() == {"count": 1}
    assert ids_of(search(client, favourite="true")) == [night, dawn]
    assert ids_of(search(client, favourite=1, q="night")) == [night]
    assert client.delete(f"/api/gallery/images/{night}/favourite").json()["favourite"] is False
    client.post("/api/gallery/favourites", json={"image_ids": [dawn], "favourite": False})
    assert search(client, favourite=1) == []
    assert client.put("/api/gallery/images/999999/favourite").status_code == 404


def test_collections_hold_images_everyone_sees(shared_app: RunningApp, made: Made) -> None:
    client = shared_app.client
    created = client.post(
        "/api/collections", json={"name": "  Lighthouses  ", "description": "coast"}
    )
    assert created.status_code == 201, created.text
    board = created.json()
    assert board["name"] == "Lighthouses"
    duplicate = client.post("/api/collections", json={"name": "Lighthouses"})
    assert duplicate.status_code == 409 and "name" in duplicate.json()["error"]["fields"]
    assert client.post("/api/collections", json={"name": "   "}).status_code == 422

    images = [made.image("dawn"), made.image("night")]
    add = client.post(f"/api/collections/{board['id']}/images", json={"image_ids": images})
    assert add.json() == {"count": 2}
    again = client.post(f"/api/collections/{board['id']}/images", json={"image_ids": images})
    assert again.json() == {"count": 0}, "adding twice is harmless"
    missing = client.post(f"/api/collections/{board['id']}/images", json={"image_ids": [999999]})
    assert missing.status_code == 404 and "There is no image" in missing.json()["error"]["message"]

    listed = {c["name"]: c for c in client.get("/api/collections").json()}
    assert listed["Lighthouses"]["image_count"] == 2
    assert listed["Lighthouses"]["cover_thumbnail_url"] == f"/api/images/{max(images)}/thumbnail"
    assert ids_of(search(client, collection=board["id"])) == [
        made.image("night"),
        made.image("dawn"),
    ]
    detail = client.get(f"/api/gallery/images/{made.image('dawn')}").json()
    assert detail["collections"] == [{"id": board["id"], "name": "Lighthouses"}]

    renamed = client.patch(f"/api/collections/{board['id']}", json={"name": "Coast"})
    assert renamed.json()["name"] == "Coast"
    removed = client.delete(f"/api/collections/{board['id']}/images/{made.image('night')}")
    assert removed.json() == {"count": 1}
    assert ids_of(search(client, collection=board["id"])) == [made.image("dawn")]

    assert client.delete(f"/api/collections/{board['id']}").status_code == 204
    assert client.get(f"/api/collections/{board['id']}").status_code == 404
    assert client.get(f"/api/images/{made.image('dawn')}").status_code == 200, "images stay"


# --- Trash -------------------------------------------------------------------------------


def test_trash_hides_restores_and_purges(shared_app: RunningApp) -> None:
    client = shared_app.client
    job = wait_for_job(
        client,
        client.post("/api/jobs", json={"prompt": "to be thrown away", "num_images": 2}).json()[
            "id"
        ],
    )
    kept, thrown = (image["id"] for image in job["images"])
    assert client.post("/api/trash", json={"image_ids": [thrown]}).json() == {"count": 1}
    assert ids_of(search(client, q="thrown")) == [kept]
    assert [i["id"] for i in client.get(f"/api/jobs/{job['id']}").json()["images"]] == [
        kept,
        thrown,
    ]
    assert all(
        thrown not in [i["id"] for i in j["images"]]
        for j in client.get("/api/jobs").json()["items"]
    )
    in_trash = client.get("/api/trash").json()["items"]
    assert ids_of(in_trash) == [thrown]
    days = shared_app.settings.trash_days
    deleted = in_trash[0]["deleted_at"]
    assert in_trash[0]["purge_at"] > deleted and days == 30

    assert client.post("/api/trash/restore", json={"image_ids": [thrown]}).json() == {"count": 1}
    assert ids_of(search(client, q="thrown")) == [kept, thrown]
    assert client.get("/api/trash").json()["items"] == []

    # Purging needs the image in the trash first, then it is gone with its bytes.
    assert client.post("/api/trash/purge", json={"image_ids": [thrown]}).json() == {"count": 0}
    client.post("/api/trash", json={"image_ids": [thrown]})
    assert client.post("/api/trash/purge", json={"image_ids": [thrown]}).json() == {"count": 1}
    assert client.get(f"/api/images/{thrown}").status_code == 404
    assert client.get(f"/api/images/{thrown}/thumbnail").status_code == 404
    assert client.get(f"/api/jobs/{job['id']}").json()["credit_cost"] == 2, "the cost is kept"


def test_a_server_purges_the_trash_on_its_own(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """With PLAYGROUND_TRASH_DAYS=0 nothing waits: a restart purges what is in the trash."""
    settings = make_settings(tmp_path / "data", emulator, database=database, trash_days=0)
    with serve_app(settings) as app:
        job = wait_for_job(
            app.client, app.client.post("/api/jobs", json={"prompt": "gone"}).json()["id"]
        )
        image_id = job["images"][0]["id"]
        app.client.post("/api/trash", json={"image_ids": [image_id]})
    with serve_app(settings) as app:
        wait_until(
            lambda: app.client.get(f"/api/images/{image_id}").status_code == 404,
            what="the trash purge at start-up",
        )
        assert app.client.get(f"/api/jobs/{job['id']}").json()["images"] == []


def test_images_are_purged_after_the_configured_days(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    settings = make_settings(tmp_path / "data", emulator, database=database, trash_days=7)
    with serve_app(settings) as app:
        job = wait_for_job(
            app.client, app.client.post("/api/jobs", json={"prompt": "old"}).json()["id"]
        )
    image = job["images"][0]
    db = Database.for_settings(settings)
    blobs = open_blob_store(settings, database_url=db.url)
    try:
        now = utcnow()
        trash.move_to_trash(db, image_ids=[image["id"]], now=now)
        assert trash.purge_expired(db, blobs, days=7, now=now + timedelta(days=6)).images == 0
        result = trash.purge_expired(db, blobs, days=7, now=now + timedelta(days=7))
        assert (result.images, result.blobs) == (1, 1)
        assert not blobs.contains(image["sha256"])
        assert blobs.read_thumbnail(image["sha256"]) is None, "its thumbnail went with it"
        assert lookups.get_entry(db, image_id=image["id"]) is None
    finally:
        blobs.close()
        db.dispose()


# --- Compare and reuse -------------------------------------------------------------------


def test_compare_marks_the_parameters_that_differ(shared_app: RunningApp, made: Made) -> None:
    ids = [made.image("dawn"), made.image("dawn", 1), made.image("night")]
    answer = shared_app.client.get("/api/compare", params={"ids": ids}).json()
    assert ids_of(answer["images"]) == ids
    rows = {row["name"]: row for row in answer["rows"]}
    assert rows["prompt"]["differs"] and rows["seed"]["differs"] and rows["image_size"]["differs"]
    assert rows["model"]["differs"] is False
    same_job = shared_app.client.get("/api/compare", params={"ids": ids[:2]}).json()
    assert not any(row["differs"] for row in same_job["rows"])
    page = shared_app.client.get("/compare", params={"ids": ids}).text
    assert one(page, 'tr[data-param="seed"]').get("class") == "differs"
    assert "night," in texts(page, ".compare-prompt mark")
    refused = shared_app.client.get("/api/compare", params={"ids": [ids[0]]})
    assert refused.status_code == 422 and "ids" in refused.json()["error"]["fields"]


def test_remix_fills_the_playground_with_the_parameters(shared_app: RunningApp, made: Made) -> None:
    job = made.jobs["bicycle"]
    page = shared_app.client.get("/", params={"remix": job["id"]}).text
    assert text(one(page, "textarea#prompt")) == BODIES["bicycle"]["prompt"]
    for field, value in (("customWidth", "2560"), ("customHeight", "1600"), ("seed", "5")):
        assert one(page, f"input#{field}").get("value") == value, field
    assert [r.get("value") for r in select(page, "input[name=image_size][checked]")] == ["custom"]
    assert shared_app.client.get("/", params={"remix": 999999}).status_code == 404
    food = shared_app.client.get("/", params={"remix": made.jobs["food"]["id"]}).text
    assert one(food, "#generate-form input[name=preset]").get("value") == "food-overhead"


def test_same_prompt_new_seed_submits_at_once(
    shared_app: RunningApp, shared_emulator: RunningEmulator, made: Made
) -> None:
    old = made.jobs["night"]
    answer = shared_app.client.post(f"/api/jobs/{old['id']}/new-seed")
    assert answer.status_code == 202, answer.text
    new = wait_for_job(shared_app.client, answer.json()["id"])
    assert new["status"] == "completed"
    assert new["parameters"]["prompt"] == old["parameters"]["prompt"]
    assert new["parameters"]["image_size"] == old["parameters"]["image_size"]
    assert new["parameters"]["seed"] not in (None, old["parameters"]["seed"])
    sent = [
        r.body
        for r in shared_emulator.emulator.requests_to("run")
        if r.body["prompt"] == old["parameters"]["prompt"]
    ]
    assert sent[-1]["seed"] == new["parameters"]["seed"], "the seed sent is the seed recorded"
    # A repeated request (a double click, a retry) is one job, paid once.
    runs = len(shared_emulator.emulator.requests_to("run"))
    first = shared_app.client.post(
        f"/api/jobs/{old['id']}/new-seed", headers={"Idempotency-Key": "k1"}
    )
    again = shared_app.client.post(
        f"/api/jobs/{old['id']}/new-seed", headers={"Idempotency-Key": "k1"}
    )
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    form = {"token": "tok-1"}
    pages = [
        shared_app.client.post(f"/jobs/{old['id']}/new-seed", data=form, follow_redirects=False)
        for _ in range(2)
    ]
    assert [p.status_code for p in pages] == [303, 303]
    assert (
        pages[0].headers["location"]
        == pages[1].headers["location"]
        != f"/jobs/{first.json()['id']}"
    )
    wait_for_job(shared_app.client, first.json()["id"])
    wait_for_job(shared_app.client, int(pages[0].headers["location"].rsplit("/", 1)[1]))
    assert len(shared_emulator.emulator.requests_to("run")) == runs + 2


def test_the_request_is_given_as_curl_and_python_without_the_key(
    shared_app: RunningApp, shared_emulator: RunningEmulator, made: Made
) -> None:
    job = made.jobs["dawn"]
    answer = shared_app.client.get(f"/api/jobs/{job['id']}/request").json()
    assert TEST_KEY not in json.dumps(answer)
    assert answer["url"] == f"{shared_emulator.base_url}/models/seedream-4/run"
    assert answer["body"] == BODIES["dawn"]
    words = shlex.split(answer["curl"].replace("\\\n", " "))
    assert json.loads(words[words.index("-d") + 1]) == BODIES["dawn"]
    assert "Authorization: Bearer $PIXELDOJO_API_KEY" in words
    assert "os.environ['PIXELDOJO_API_KEY']" in answer["python"]
    assert "process.env.PIXELDOJO_API_KEY" in answer["javascript"]
    page = shared_app.client.get(f"/jobs/{job['id']}").text
    assert "Copy as curl" in page and "$PIXELDOJO_API_KEY" in page and TEST_KEY not in page

    # Both snippets really work: run them against the emulator with the key in the environment.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and key != "PIXELDOJO_API_KEY"
    }
    env["PIXELDOJO_API_KEY"] = TEST_KEY
    before = len(shared_emulator.emulator.requests_to("run"))
    script = subprocess.run(
        [sys.executable, "-c", answer["python"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert script.returncode == 0, script.stderr
    assert ast.literal_eval(script.stdout.strip())["jobId"].startswith("job_")
    if shutil.which("curl"):
        curl = subprocess.run(
            ["sh", "-c", answer["curl"]], env=env, capture_output=True, text=True, timeout=30
        )
        assert curl.returncode == 0, curl.stderr
        assert json.loads(curl.stdout)["status"] == "pending"
    runs = shared_emulator.emulator.requests_to("run")[before:]
    assert runs and all(r.body == BODIES["dawn"] for r in runs)
    assert all(r.authorization == f"Bearer {TEST_KEY}" for r in runs)


# --- Taking images away ------------------------------------------------------------------


def test_a_downloaded_png_carries_its_parameters(shared_app: RunningApp, made: Made) -> None:
    client = shared_app.client
    image = made.jobs["dawn"]["images"][1]
    download = client.get(f"/api/images/{image['id']}/download")
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
    name = f"seedream-{made.jobs['dawn']['id']}-2.png"
    assert download.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert int(download.headers["content-length"]) == len(download.content)
    with Image.open(io.BytesIO(download.content)) as png:
        png.load()
        text = dict(png.text)  # type: ignore[attr-defined]
        pixels = png.tobytes()
    assert text["parameters"].startswith(
        "a lighthouse at dawn, watercolour\n"
        "Steps: 1, Sampler: Seedream, CFG scale: 1, Seed: 11, Size: 2560x1440"
    )
    assert "Model: seedream-4" in text["parameters"] and "Image: 2 of 2" in text["parameters"]
    record = json.loads(text["seedream"])
    assert record["parameters"]["seed"] == 11
    assert record["job"]["upstream_job_id"] == made.jobs["dawn"]["upstream_job_id"]
    assert record["request"]["body"] == BODIES["dawn"]
    assert record["image"]["sha256"] == image["sha256"]
    # The pixels are exactly the stored image's.
    stored = client.get(image["url"]).content
    assert hashlib.sha256(stored).hexdigest() == image["sha256"]
    with Image.open(io.BytesIO(stored)) as original:
        assert original.tobytes() == pixels
    sidecar = client.get(f"/api/images/{image['id']}/sidecar")
    assert sidecar.headers["content-disposition"].endswith('.json"')
    assert sidecar.json() == record
    # A prompt beyond Latin-1 travels as UTF-8 (iTXt).
    job = wait_for_job(
        client, client.post("/api/jobs", json={"prompt": "灯台 at dawn ✓"}).json()["id"]
    )
    unicode_png = client.get(f"/api/images/{job['images'][0]['id']}/download").content
    with Image.open(io.BytesIO(unicode_png)) as png:
        assert png.text["parameters"].startswith("灯台 at dawn ✓\n")  # type: ignore[attr-defined]


def read_zip(content: bytes) -> tuple[zipfile.ZipFile, dict[str, Any]]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None
    return archive, json.loads(archive.read("manifest.json"))


def test_a_selection_downloads_as_a_zip_with_a_manifest(shared_app: RunningApp, made: Made) -> None:
    ids = [made.image("night"), made.image("bicycle")]
    answer = shared_app.client.get("/api/zip", params={"ids": ids})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    assert 'filename="seedream-selection.zip"' in answer.headers["content-disposition"]
    archive, manifest = read_zip(answer.content)
    files = [entry["file"] for entry in manifest["images"]]
    night, bicycle = made.jobs["night"]["id"], made.jobs["bicycle"]["id"]
    assert files == [f"seedream-{night}-1.png", f"seedream-{bicycle}-1.png"]
    assert sorted(archive.namelist()) == sorted(
        [*files, f"seedream-{night}-1.json", f"seedream-{bicycle}-1.json", "manifest.json"]
    )
    assert manifest["selection"] == {"image_ids": ids}
    with Image.open(io.BytesIO(archive.read(files[1]))) as png:
        assert png.text["parameters"].startswith("red bicycle")  # type: ignore[attr-defined]
    assert json.loads(archive.read(f"seedream-{bicycle}-1.json"))["parameters"]["seed"] == 5


def test_a_search_and_a_collection_download_as_zips(shared_app: RunningApp, made: Made) -> None:
    client = shared_app.client
    found = client.get("/api/zip", params={"q": "lighthouse", "image_size": "landscape_16_9"})
    assert 'filename="seedream-search.zip"' in found.headers["content-disposition"]
    _, manifest = read_zip(found.content)
    assert [entry["image"]["id"] for entry in manifest["images"]] == [
        made.image("dawn"),
        made.image("dawn", 1),
    ]
    assert manifest["selection"]["filters"] == {"q": "lighthouse", "image_size": "landscape_16_9"}

    board = client.post("/api/collections", json={"name": "Zip me"}).json()
    client.post(f"/api/collections/{board['id']}/images", json={"image_ids": [made.image("food")]})
    zipped = client.get("/api/zip", params={"collection": board["id"]})
    assert 'filename="seedream-zip-me.zip"' in zipped.headers["content-disposition"]
    _, manifest = read_zip(zipped.content)
    assert [entry["image"]["id"] for entry in manifest["images"]] == [made.image("food")]

    empty = client.get("/api/zip", params={"q": "no such thing anywhere"})
    assert empty.status_code == 404 and "No images match" in empty.json()["error"]["message"]
    unknown = client.get("/api/zip", params={"ids": [999999]})
    assert unknown.status_code == 404 and "999999" in unknown.json()["error"]["message"]


# --- Usage -------------------------------------------------------------------------------


def test_usage_counts_credits_per_day_preset_and_model(shared_app: RunningApp, made: Made) -> None:
    client = shared_app.client
    jobs = client.get("/api/gallery/jobs", params={"limit": 100}).json()["items"]
    charged = [j for j in jobs if j["status"] != "failed"]
    usage = client.get("/api/usage").json()
    today = FIXED_DAY.date().isoformat()
    assert usage["until"] == today and len(usage["days"]) == 30
    assert usage["days"][-1]["day"] == today
    assert usage["total_credits"] == sum(j["credit_cost"] or 0 for j in charged)
    assert usage["days"][-1]["credits"] == usage["total_credits"]
    assert sum(day["credits"] for day in usage["days"][:-1]) == 0
    assert usage["total_jobs"] == len(jobs)
    presets = {row["key"]: row for row in usage["by_preset"]}
    assert presets["food-overhead"]["credits"] == 1 and presets["food-overhead"]["images"] == 1
    assert {row["key"] for row in usage["by_model"]} == {"seedream-4"}
    newest_reported = max(
        (j for j in jobs if j["credits_remaining"] is not None), key=lambda j: j["id"]
    )
    assert usage["balance"]["credits_remaining"] == newest_reported["credits_remaining"]
    assert usage["balance"]["job_id"] == newest_reported["id"]
    page = client.get("/usage").text
    assert len(select(page, f'svg.bar-chart rect[data-day="{today}"]')) == 1
    # The page names a preset as people know it, and links to its images by its slug.
    assert texts(page, 'a[href="/gallery?preset=food-overhead"]') == ["Food overhead"]
    assert (
        client.get("/api/usage", params={"since": "2020-01-01", "until": "2026-01-01"}).status_code
        == 422
    )


def test_reading_the_trash_never_deletes(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """Only the periodic purge deletes: an image past its days is no longer listed or
    restorable, but GET /trash and GET /api/trash leave it for the purge."""
    settings = make_settings(tmp_path / "data", emulator, database=database, trash_days=7)
    with serve_app(settings) as app:
        job = wait_for_job(
            app.client, app.client.post("/api/jobs", json={"prompt": "expired"}).json()["id"]
        )
        image_id = job["images"][0]["id"]
        db = Database.for_settings(settings)
        trash.move_to_trash(db, image_ids=[image_id], now=utcnow() - timedelta(days=8))
        assert app.client.get("/api/trash").json()["items"] == []
        assert f"/api/images/{image_id}/thumbnail" not in app.client.get("/trash").text
        assert app.client.get(f"/api/images/{image_id}").status_code == 200, "still there"
        restored = app.client.post("/api/trash/restore", json={"image_ids": [image_id]})
        assert restored.json() == {"count": 0}, "past its days: not restorable"
        blobs = open_blob_store(settings, database_url=db.url)
        assert trash.purge_expired(db, blobs, days=7).images == 1, "the purge deletes it"
        assert app.client.get(f"/api/images/{image_id}").status_code == 404
        blobs.close()
        db.dispose()


def test_filters_are_read_once_and_each_error_names_its_field(
    shared_app: RunningApp, made: Made
) -> None:
    client = shared_app.client
    for favourite in ("1", "true", "on", "yes"):
        assert client.get(f"/api/gallery?favourite={favourite}").status_code == 200
    for query, field in (
        ("favourite=maybe", "favourite"),
        ("since=yesterday", "since"),
        ("since=2026-02-02&until=2026-02-01", "until"),
        ("collection=-1", "collection"),
        ("user=me", "user"),
        ("status=sleeping", "status"),
        ("image_size=huge", "image_size"),
        (f"q={'x' * 501}", "q"),
    ):
        answer = client.get(f"/api/gallery?{query}")
        assert answer.status_code == 422, query
        assert field in answer.json()["error"]["fields"], (query, answer.json())
    described = {
        p["name"]
        for p in client.get("/openapi.json").json()["paths"]["/api/gallery"]["get"]["parameters"]
    }
    assert {"q", "preset", "favourite", "until", "user", "cursor", "limit"} <= described

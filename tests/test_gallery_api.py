"""The gallery through its JSON API: search and filters, paging, one image and its run,
favourites, collections and usage, against the emulator (the trash: tests/test_gallery_trash.py;
compare, reuse and downloads: tests/test_gallery_reuse.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from app.core.clock import calendar_at
from app.features.gallery import listing as gallery
from app.features.gallery.listing import GalleryFilters
from app.storage.db.engine import Database
from tests.support.apps import RunningApp
from tests.support.clock import FIXED_DAY
from tests.support.gallery_made import BODIES, Made, every_page, ids_of, search
from tests.support.markup import one, select, texts

pytestmark = pytest.mark.both_databases


@pytest.fixture(scope="module", autouse=True)
def _fixed_calendar() -> Iterator[None]:
    """The module's gallery is made, searched by today and counted by day on FIXED_DAY: a run
    that crossed midnight once found today's jobs on yesterday."""
    with calendar_at(FIXED_DAY):
        yield


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

"""HTTP as generic tools expect it: HEAD on every GET, byte ranges and conditional requests on
images, downloads and thumbnails (from each blob store), RFC 9457 problems for API errors,
400 and 415 for a body that is not JSON, `WWW-Authenticate` for a bad token, and
`Link: rel="next"` on paginated listings."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.requests import Request

from app.core.config import Settings
from app.features.people import accounts
from app.storage.db.engine import Database
from app.web.conditional import ByteRange, Unsatisfiable, requested_range, slice_chunks
from app.web.factory import create_app
from tests.support.apps import SAME_ORIGIN, in_process, make_settings
from tests.support.asgi import finished_job, running
from tests.support.emulators import RunningEmulator
from tests.support.jobs import wait_for_job
from tests.support.stores import STORES, store_settings

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code"}


def assert_problem(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body.keys() >= PROBLEM_MEMBERS
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    # Scripts written against the earlier shape still find the code where it was.
    assert body["error"]["code"] == code
    return body


def request_with(headers: dict[str, str]) -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


# --- Ranges, parsed ------------------------------------------------------------------------

ETAG = '"abc"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", ByteRange(0, 9)),
        ("bytes=90-", ByteRange(90, 99)),
        ("bytes=-10", ByteRange(90, 99)),
        ("bytes=-500", ByteRange(0, 99)),
        ("bytes=95-500", ByteRange(95, 99)),
        ("bytes=0-9,20-29", None),  # several ranges: answered whole
        ("items=0-9", None),
        ("bytes=9-0", None),
        ("bytes=a-9", None),
        ("bytes=-", None),
    ],
)
def test_a_range_header_is_read_as_rfc_9110_says(header: str, expected: ByteRange | None) -> None:
    assert requested_range(request_with({"Range": header}), ETAG, 100) == expected


def test_a_range_past_the_end_is_unsatisfiable_and_a_stale_if_range_asks_for_everything() -> None:
    with pytest.raises(Unsatisfiable):
        requested_range(request_with({"Range": "bytes=100-"}), ETAG, 100)
    stale = {"Range": "bytes=0-9", "If-Range": '"other"'}
    assert requested_range(request_with(stale), ETAG, 100) is None
    weak = {"Range": "bytes=0-9", "If-Range": f"W/{ETAG}"}
    assert requested_range(request_with(weak), ETAG, 100) is None
    current = {"Range": "bytes=0-9", "If-Range": ETAG}
    assert requested_range(request_with(current), ETAG, 100) == ByteRange(0, 9)


def test_a_slice_of_chunks_is_exactly_the_range_and_reads_no_further() -> None:
    data = bytes(range(100))
    read: list[int] = []

    def chunks() -> Any:
        for start in range(0, 100, 7):
            read.append(start)
            yield data[start : start + 7]

    assert b"".join(slice_chunks(chunks(), ByteRange(10, 30))) == data[10:31]
    assert read[-1] == 28, "stopped at the chunk holding the range's last byte"
    assert b"".join(slice_chunks([data], ByteRange(99, 99))) == data[99:]


# --- Images, downloads and thumbnails from each store ---------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", STORES)
async def test_images_answer_head_ranges_and_conditional_requests_from_each_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator, **store_settings(kind, request))
    async with running(settings) as (_, client):
        answer = await client.post("/api/jobs", json={"prompt": "a wren"})
        job = await finished_job(client, answer.json()["id"])
        image = job["images"][0]
        for url in (image["url"], f"{image['url']}/download", image["thumbnail_url"]):
            whole = await client.get(url)
            assert whole.status_code == 200, url
            assert whole.headers["accept-ranges"] == "bytes"
            etag = whole.headers["etag"]
            data = whole.content
            size = len(data)
            assert int(whole.headers["content-length"]) == size

            head = await client.head(url)
            assert head.status_code == 200
            assert head.content == b""
            assert head.headers["content-length"] == str(size)
            assert head.headers["etag"] == etag

            part = await client.get(url, headers={"Range": "bytes=10-99"})
            assert part.status_code == 206, url
            assert part.content == data[10:100]
            assert part.headers["content-range"] == f"bytes 10-99/{size}"
            assert part.headers["content-length"] == "90"
            tail = await client.get(url, headers={"Range": "bytes=-16"})
            assert tail.status_code == 206 and tail.content == data[-16:]
            resumed = await client.get(url, headers={"Range": "bytes=100-", "If-Range": etag})
            assert resumed.status_code == 206 and resumed.content == data[100:]
            changed = await client.get(url, headers={"Range": "bytes=100-", "If-Range": '"x"'})
            assert changed.status_code == 200 and changed.content == data

            beyond = await client.get(url, headers={"Range": f"bytes={size}-"})
            assert beyond.status_code == 416
            assert beyond.headers["content-range"] == f"bytes */{size}"

            for match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
                cached = await client.get(url, headers={"If-None-Match": match})
                assert cached.status_code == 304, (url, match)
                assert cached.content == b""
            stale = await client.get(url, headers={"If-None-Match": '"other", W/"else"'})
            assert stale.status_code == 200 and stale.content == data
        # The image's tag is its digest; the download's names the metadata spliced in too.
        first = await client.get(image["url"])
        assert first.headers["etag"] == f'"{image["sha256"]}"'
        assert hashlib.sha256(first.content).hexdigest() == image["sha256"]


# --- HEAD elsewhere, errors, links -----------------------------------------------------------


def test_every_get_route_answers_head_with_its_headers_and_no_body(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    with in_process(settings) as client:
        for path in ("/healthz", "/api/jobs", "/api/gallery", "/", "/gallery", "/openapi.json"):
            got = client.get(path)
            head = client.request("HEAD", path)
            assert head.status_code == got.status_code == 200, path
            assert head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"], path
        missing = client.request("HEAD", "/api/jobs/999")
        assert missing.status_code == 404 and missing.content == b""
        # HEAD is not a way round a route's methods.
        assert client.request("HEAD", "/api/jobs/check").status_code == 405


@pytest.mark.anyio
async def test_a_streams_head_stops_the_stream_at_once(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    async with running(settings) as (app, client):
        job_id = (await client.post("/api/jobs", json={"prompt": "a newt"})).json()["id"]
        stream = await client.head(f"/api/events?ids={job_id}")
        assert stream.status_code == 200 and stream.content == b""
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = app.state.services.events
        with anyio.fail_after(30):
            while events.listener_count and not await job_finished(client, job_id):
                await anyio.sleep(0.01)
        # The stream stopped watching while the job ran: not left to run to its end.
        assert events.listener_count == 0
        assert not await job_finished(client, job_id)


async def job_finished(client: httpx.AsyncClient, job_id: int) -> bool:
    return bool((await client.get(f"/api/jobs/{job_id}")).json()["finished"])


def test_api_errors_are_problem_details_keeping_their_code(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    with in_process(settings) as client:
        assert_problem(client.get("/api/jobs/999"), 404, "not_found")
        assert_problem(client.get("/api/nowhere"), 404, "not_found")
        invalid = assert_problem(
            client.post("/api/jobs", json={"prompt": "a gull", "num_images": 99}),
            422,
            "invalid_parameters",
        )
        assert "num_images" in invalid["fields"]
        assert "num_images" in invalid["error"]["fields"]


def test_malformed_json_is_400_and_another_content_type_is_415_costing_nothing(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    with in_process(settings) as client:
        malformed = client.post(
            "/api/jobs",
            content=b'{"prompt": "a gull",',
            headers={"Content-Type": "application/json"},
        )
        body = assert_problem(malformed, 400, "malformed_json")
        assert "10" not in (body.get("fields") or {})
        as_text = client.post(
            "/api/jobs", content=b'{"prompt": "a gull"}', headers={"Content-Type": "text/plain"}
        )
        assert_problem(as_text, 415, "unsupported_media_type")
        as_form = client.post("/api/collections", data={"name": "Keepers"})
        assert_problem(as_form, 415, "unsupported_media_type")
        # Still JSON by its suffix: read as JSON.
        suffixed = client.post(
            "/api/collections",
            content=b'{"name": "Keepers"}',
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert suffixed.status_code == 201
        assert client.get("/api/jobs").json()["items"] == [], "nothing was submitted"
    assert emulator.emulator.served_images == {}


@pytest.mark.both_databases
def test_paginated_listings_link_to_their_next_page(settings: Settings) -> None:
    with in_process(settings) as client:
        submitted = [
            client.post("/api/jobs", json={"prompt": prompt}).json()["id"]
            for prompt in ("a fox", "a hare", "a stoat")
        ]
        for job_id in submitted:
            wait_for_job(client, job_id)
        for path in ("/api/jobs?limit=2", "/api/gallery?limit=2&q=a", "/api/gallery/jobs?limit=2"):
            first = client.get(path)
            assert first.status_code == 200, path
            link = first.headers["link"]
            target, _, relation = link.partition(">; ")
            assert relation == 'rel="next"', link
            url = httpx.URL(target.removeprefix("<"))
            assert url.params["cursor"] == str(first.json()["next_cursor"]), link
            assert url.params["limit"] == "2"
            second = client.get(str(url))
            assert second.json()["items"], path
            assert {item["id"] for item in second.json()["items"]}.isdisjoint(
                item["id"] for item in first.json()["items"]
            )
            last = client.get(f"{path.split('?')[0]}?limit=100")
            assert "link" not in last.headers, path


@pytest.mark.anyio
async def test_a_bad_token_is_refused_with_www_authenticate(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    db = Database.at_path(settings.database_path)
    db.migrate()
    accounts.create_user(db, name="Ada", password="a long enough password", is_admin=True)
    db.dispose()
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", headers=SAME_ORIGIN
        ) as client,
    ):
        bad = await client.get("/api/jobs", headers={"Authorization": "Bearer sp_wrong"})
        assert_problem(bad, 401, "invalid_token")
        assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        anonymous = await client.get("/api/jobs")
        assert_problem(anonymous, 401, "sign_in_required")
        assert anonymous.headers["www-authenticate"] == "Bearer"

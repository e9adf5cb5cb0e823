"""Static files go out compressed and cacheable: each page names them by their content, an
answer to such an address is kept for a year, and text is gzipped for browsers that take it."""

from __future__ import annotations

import gzip
import re

import httpx

from app.core.resources import STATIC_DIR
from tests.support.apps import RunningApp

ASSET = re.compile(r'(?:href|src)="(/static/[^"?]+)\?v=([0-9a-f]{12})"')


def page_assets(app: RunningApp, path: str) -> dict[str, str]:
    """The static files a page links to: path → the content hash in its address."""
    return dict(ASSET.findall(app.client.get(path).text))


def test_every_page_names_its_static_files_by_their_content(app: RunningApp) -> None:
    linked: dict[str, str] = {}
    for page in ("/", "/gallery", "/grids/new"):
        linked.update(page_assets(app, page))
    for name in ("app.css", "toasts.js", "form.js", "gallery.css", "grids.js"):
        assert f"/static/{name}" in linked, name
    for path, digest in linked.items():
        answer = app.client.get(f"{path}?v={digest}", headers={"Accept-Encoding": "identity"})
        assert answer.status_code == 200, path
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable", path
        # The address changes with the content: the hash is the file's own.
        assert answer.content == (STATIC_DIR / path.removeprefix("/static/")).read_bytes(), path
        assert answer.headers["etag"] == f'"{digest}"'


def test_an_address_without_the_current_hash_is_revalidated_never_kept_stale(
    app: RunningApp,
) -> None:
    for query in ("", "?v=000000000000"):
        answer = app.client.get(f"/static/app.css{query}")
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-cache"
        again = app.client.get(
            f"/static/app.css{query}", headers={"If-None-Match": answer.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
    assert app.client.get("/static/no-such-file.css").status_code == 404


def test_text_files_are_gzipped_for_browsers_that_take_it(app: RunningApp) -> None:
    digest = page_assets(app, "/")["/static/form.js"]
    url = f"/static/form.js?v={digest}"
    original = (STATIC_DIR / "form.js").read_bytes()
    # httpx would decode it; read the bytes as they travel.
    with httpx.Client(base_url=app.url) as raw:
        packed = raw.get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.headers["vary"] == "Accept-Encoding"
        assert packed.headers["content-type"].startswith("text/javascript")
        assert int(packed.headers["content-length"]) < len(original) / 2
        with raw.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as streamed:
            assert gzip.decompress(b"".join(streamed.iter_raw())) == original
        plain = raw.get(url, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == original
        refused = raw.get(url, headers={"Accept-Encoding": "gzip;q=0, identity"})
        assert "content-encoding" not in refused.headers


def test_the_live_stream_and_small_answers_are_sent_as_they_are(app: RunningApp) -> None:
    """The live stream must reach the page message by message, so it is never compressed;
    pages and JSON are (tests/test_compression.py), small answers are not worth it."""
    with httpx.Client(base_url=app.url, headers={"Accept-Encoding": "gzip"}, timeout=30) as raw:
        assert "content-encoding" not in raw.get("/healthz").headers
        assert raw.get("/").headers["content-encoding"] == "gzip"
        with raw.stream("GET", "/events/jobs", params={"ids": "1"}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in stream.headers

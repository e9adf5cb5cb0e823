"""Pages and JSON answers are gzipped for clients that take gzip; images, streams and small
answers are not; and the form token a compressed page carries is masked afresh in each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core import signing
from app.web.compression import MINIMUM_SIZE, accepts_gzip
from tests.support.apps import in_process, make_settings
from tests.support.markup import one

GZIP = {"Accept-Encoding": "gzip, deflate, br"}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, br", False),
        ("gzip;q=nonsense", False),
        ("identity", False),
        ("", False),
        ("xgzip", False),
        ("*;q=0, gzip", True),
        ("gzip;q=0, *", False),
    ],
)
def test_which_clients_take_gzip(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_pages_and_json_are_compressed_only_for_clients_that_take_gzip(tmp_path: Path) -> None:
    with in_process(make_settings(tmp_path / "data", None)) as client:
        page = client.get("/", headers=GZIP)
        assert page.status_code == 200
        assert page.headers["content-encoding"] == "gzip"
        assert "Accept-Encoding" in page.headers["vary"]
        # The page a browser decodes is the whole page, and the wire carried a fraction of it.
        assert one(page.text, "form#generate-form") is not None
        assert int(page.headers["content-length"]) < len(page.content) / 3

        presets = client.get("/api/presets", headers=GZIP)
        plain = client.get("/api/presets", headers={"Accept-Encoding": "identity"})
        assert presets.headers["content-encoding"] == "gzip"
        assert "content-encoding" not in plain.headers
        assert "Accept-Encoding" in plain.headers["vary"]
        assert presets.json() == plain.json()
        assert int(plain.headers["content-length"]) == len(plain.content) >= MINIMUM_SIZE

        refused = client.get("/", headers={"Accept-Encoding": "gzip;q=0"})
        assert "content-encoding" not in refused.headers

        # Small answers are not worth it; static files come compressed once, at start-up.
        small = client.get("/healthz", headers=GZIP)
        assert "content-encoding" not in small.headers
        script = one(page.text, "script[src*='vendor/htmx-2']").get("src")
        assert script is not None
        static = client.get(script, headers=GZIP)
        assert static.headers["content-encoding"] == "gzip"
        assert b"htmx" in static.content[:2000]


def test_each_page_masks_its_form_token_afresh_and_every_mask_is_accepted(tmp_path: Path) -> None:
    # No Origin and no Sec-Fetch-Site: an old browser, whose forms are checked by their token.
    with in_process(make_settings(tmp_path / "data", None), headers={}) as client:
        tokens = [
            json.loads(
                one(client.get("/", headers=GZIP).text, "body").get("hx-headers") or "{}"
            ).get("X-CSRF-Token")
            for _ in range(2)
        ]
        first, second = tokens
        assert first and second and first != second
        assert first.startswith(signing.MASK_PREFIX) and second.startswith(signing.MASK_PREFIX)
        # A form sent without Origin or Sec-Fetch-Site (an old browser) is checked by its
        # token: each page's passes the check (404: no such image), a changed one does not.
        for token in (first, second):
            passed = client.post(
                "/gallery/images/999999/favourite", data={"csrf_token": token, "favourite": "true"}
            )
            assert passed.status_code == 404
        tampered = first[:-2] + ("A" if first[-2] != "A" else "B") + first[-1]
        refused = client.post(
            "/gallery/images/999999/favourite", data={"csrf_token": tampered, "favourite": "true"}
        )
        assert refused.status_code == 403


def test_masking_round_trips_and_never_repeats() -> None:
    token = signing.Signer(b"k" * 32).sign(signing.CSRF, "a-session")
    masks = {signing.mask_token(token) for _ in range(50)}
    assert len(masks) == 50
    assert all(signing.unmask_token(mask) == token for mask in masks)
    # Anything that is not a mask comes back as it was, for the signature check to refuse.
    for odd in ("", "m.", "m.!!", "m.QUJD", token):
        assert signing.unmask_token(odd) == odd

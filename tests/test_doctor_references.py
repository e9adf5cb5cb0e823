"""`doctor --run` on a model that takes reference images says which way PixelDojo takes them:
`data:` URIs (the default) or signed links to the app (with PLAYGROUND_PUBLIC_URL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.loopback import LoopbackServer
from app.emulator.catalogue import SEEDREAM_EDIT
from app.web.factory import create_app
from tests.support.apps import make_settings
from tests.support.doctor import assert_fits_80_columns, doctor
from tests.support.emulators import RunningEmulator, serve_emulator


def test_an_edit_model_with_data_uris_accepted(
    emulator: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = doctor(
        monkeypatch, capsys, emulator.base_url, tmp_path / "data", "--run", "--model", SEEDREAM_EDIT
    )
    assert code == 0, out
    assert_fits_80_columns(out)
    assert "takes reference images in image_urls (1 to 10)" in out.replace("\n", " ")
    assert "  ok    references" in out
    assert "as data: URIs, the way the app sends them" in " ".join(out.split())
    (run,) = emulator.emulator.requests_to("run")
    assert run.body["image_urls"][0].startswith("data:image/png;base64,")
    (received,) = emulator.emulator.received_references
    assert (received.width, received.height, received.sent_as) == (800, 600, "data")


def test_data_uris_refused_and_no_public_url_blocks_with_the_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_emulator(accept_data_uris=False) as upstream:
        code, out = doctor(
            monkeypatch,
            capsys,
            upstream.base_url,
            tmp_path / "data",
            "--run",
            "--json",
            "--model",
            SEEDREAM_EDIT,
        )
        assert upstream.emulator.jobs == {}, "nothing was made, nothing spent"
    report = json.loads(out)
    assert code == 1
    assert report["run"]["references"] == {
        "data: URI": "refused: Invalid parameter image_urls[0]: data: URIs are not accepted; "
        "send a URL"
    }
    assert "set PLAYGROUND_PUBLIC_URL" in report["blocked"]


def test_with_a_public_url_doctor_tries_a_signed_link_the_app_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_emulator(accept_data_uris=False) as upstream:
        settings = make_settings(tmp_path / "data", upstream)
        app = create_app(settings)
        with LoopbackServer(app) as server:
            # The app runs on the same data dir: it serves the picture doctor keeps there.
            code, out = doctor(
                monkeypatch,
                capsys,
                upstream.base_url,
                tmp_path / "data",
                "--run",
                "--json",
                "--model",
                SEEDREAM_EDIT,
                PLAYGROUND_PUBLIC_URL=server.url,
            )
            report = json.loads(out)
            assert code == 0, report
            assert report["run"]["references"] == {"signed link": "accepted"}
            (received,) = upstream.emulator.received_references
            assert (received.width, received.height, received.sent_as) == (800, 600, "url")
            (check,) = [check for check in report["checks"] if check["name"] == "references"]
            assert check["status"] == "ok"
            assert "signed links to this app" in check["summary"]

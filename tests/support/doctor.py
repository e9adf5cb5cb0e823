"""`seedream-playground doctor` run in this process against a base URL, for every test that
reads what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli.main import main
from tests.support.emulators import TEST_KEY


def doctor(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base_url: str,
    data_dir: Path,
    *args: str,
    key: str = TEST_KEY,
    **env: str,
) -> tuple[int, str]:
    monkeypatch.setenv("PIXELDOJO_API_KEY", key)
    monkeypatch.setenv("PIXELDOJO_BASE_URL", base_url)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PLAYGROUND_POLL_INITIAL_SECONDS", "0.1")
    monkeypatch.setenv("PIXELDOJO_RATE_LIMIT_PER_MINUTE", "0")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["doctor", *args])
    out, err = capsys.readouterr()
    assert key not in out + err, "the key is never printed"
    return code, out


def assert_fits_80_columns(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= 80, line

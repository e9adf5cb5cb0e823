"""The first ten minutes: one data dir per person whatever the folder, every command saying
which it uses, addresses a teammate can open, defaults in --help, the request log in demo
mode, and Ctrl+C on an idle server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.cli import main as cli
from app.cli import serve as serving
from app.core.config import Settings, is_loopback_host
from tests.support.waiting import wait_until


@pytest.fixture
def home_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A per-user data folder of the test's own (platformdirs follows XDG_DATA_HOME)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "seedream-playground"


def test_the_default_data_dir_is_the_persons_own_from_any_folder(
    home_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        seen.append(Settings(_env_file=None).data_dir)
    assert seen == [home_data, home_data]
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "mine"))
    assert Settings(_env_file=None).data_dir == tmp_path / "mine", "the setting still wins"


def test_every_command_says_which_data_dir_it_uses(
    home_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    monkeypatch.setattr("sys.stdin", _Lines("a long enough password\n"))
    assert cli.main(["users", "add", "ada", "--password-stdin"]) == 0
    assert f"Data dir: {home_data} (default)" in capsys.readouterr().err
    # From another folder: the same playground, not a second, empty one.
    monkeypatch.chdir(tmp_path / "b")
    assert cli.main(["users", "list"]) == 0
    listed = capsys.readouterr()
    assert f"Data dir: {home_data} (default)" in listed.err
    assert listed.out.startswith("ada\tadmin")
    assert cli.main(["export", str(tmp_path / "gallery.zip")]) == 0
    assert f"Data dir: {home_data}" in capsys.readouterr().err

    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "other"))
    assert cli.main(["users", "list"]) == 0
    listed = capsys.readouterr()
    assert f"Data dir: {tmp_path / 'other'} (PLAYGROUND_DATA_DIR)" in listed.err
    assert listed.out == ""
    assert not (tmp_path / "a" / "data").exists() and not (tmp_path / "b" / "data").exists()


class _Lines:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines(keepends=True)

    def readline(self) -> str:
        return self.lines.pop(0) if self.lines else ""

    def isatty(self) -> bool:
        return False


def test_serve_help_shows_its_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "[default: 127.0.0.1]" in text
    assert "[default: 8000;" in text
    assert "[default: info]" in text


def test_listening_on_every_address_names_the_machines_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = serving.reachable_addresses()
    assert all(not is_loopback_host(address) for address in found)
    assert all(address.count(".") == 3 for address in found)
    monkeypatch.setattr(serving, "reachable_addresses", lambda: ["192.168.1.20", "10.0.0.7"])
    assert serving.open_urls("0.0.0.0", 8000) == [
        "http://127.0.0.1:8000/",
        "http://192.168.1.20:8000/",
        "http://10.0.0.7:8000/",
    ]
    assert serving.open_urls("127.0.0.1", 8001) == ["http://127.0.0.1:8001/"]
    assert serving.open_urls("::1", 8001) == ["http://[::1]:8001/"]


@pytest.mark.slow
def test_a_demo_server_logs_its_requests_and_stops_at_once_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXELDOJO_", "PLAYGROUND_"))}
    env["PLAYGROUND_DATA_DIR"] = str(tmp_path / "data")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(base + "/healthz"), timeout=60, what="the server to start")
        assert httpx.get(base + "/").status_code == 200
        asked = time.monotonic()
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
        took = time.monotonic() - asked
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, output
    # Demo mode logs each request as the real mode does (its emulator's own calls stay out).
    assert '"GET / HTTP/1.1" 200' in output
    assert "/api/v1/" not in output
    assert f"Data dir: {tmp_path / 'data'} (PLAYGROUND_DATA_DIR)" in output
    assert "Application shutdown complete" in output
    # Measured, not asserted (the machine may be busy): printed for whoever reads the log.
    print(f"Ctrl+C to exit: {took:.2f} s")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

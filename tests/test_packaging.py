"""`pip install .` gives a working app that runs from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("seedream_playground-*.whl")
    return built


def test_the_wheel_ships_templates_static_files_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "app/web/templates/base.html",
        "app/web/templates/partials/_job_card.html",
        "app/web/static/app.css",
        "app/web/static/vendor/htmx-2.0.11.min.js",
        "app/web/static/schemas/image-record.schema.json",
        "app/web/static/schemas/gallery-export.schema.json",
        "app/storage/db/migrations/env.py",
        "app/storage/db/migrations/versions/0001_jobs_and_images.py",
    ):
        assert expected in names, expected
    assert not any(name.startswith(("tests/", "data/")) for name in names)


def test_the_installed_app_serves_pages_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIXELDOJO_", "PLAYGROUND_"))
    }
    env["PYTHONPATH"] = str(target)
    env["PLAYGROUND_DEMO_JOB_SECONDS"] = "0.2"
    # The per-user data folder (platformdirs), kept inside the test.
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    probe = subprocess.run(
        [sys.executable, "-c", "import app.core.resources as r; print(r.TEMPLATES_DIR)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip().startswith(str(target)), "the installed copy was not the one used"

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(base + "/healthz"), timeout=30, what="the server to start")
        page = httpx.get(base + "/")
        assert page.status_code == 200
        assert "Demo mode" in page.text
        assert httpx.get(base + "/static/vendor/htmx-2.0.11.min.js").status_code == 200
        job = httpx.post(base + "/api/jobs", json={"prompt": "from an installed wheel"}).json()

        def completed() -> bool:
            status: str = httpx.get(f"{base}/api/jobs/{job['id']}").json()["status"]
            return status == "completed"

        wait_until(completed, timeout=30, what="the demo job")
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert server.returncode in (0, -15), output
    assert "Application startup complete" in output
    assert "Finished server process" in output
    data_dir = tmp_path / "xdg" / "seedream-playground"
    assert (data_dir / "playground.db").is_file(), "the data dir is the person's own"
    assert not (elsewhere / "data").exists(), "nothing is written where the command runs"
    assert f"Data dir: {data_dir} (default)" in output


def _answers(url: str) -> bool:
    try:
        return bool(httpx.get(url).status_code == 200)
    except httpx.TransportError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

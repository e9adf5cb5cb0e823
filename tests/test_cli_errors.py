"""Every error a person can cause on the command line ends in one line and a non-zero exit,
never a traceback (--debug shows one), and costs nothing: a folder that cannot take the
images, a missing folder, a wrong server, a server that is not a playground, a busy
port, a quote never closed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.core.loopback import LoopbackServer
from tests.support.apps import RunningApp
from tests.support.cli import cli_env, one_line_error, run_cli
from tests.support.emulators import RunningEmulator

pytestmark = pytest.mark.slow


async def _anything(request: Request) -> Response:
    if request.url.path.startswith("/api/jobs"):
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    return JSONResponse({"service": "not a playground", "path": request.url.path})


@pytest.fixture(scope="module")
def other_service() -> Iterator[str]:
    """A JSON service that is not a playground: it answers everything, as something else."""
    routes = [Route("/{path:path}", _anything, methods=["GET", "POST"])]
    with LoopbackServer(Starlette(routes=routes)) as server:
        yield server.url


def test_a_folder_that_cannot_take_the_images_is_refused_before_anything_is_sent(
    app: RunningApp, emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("not a folder")
    for out in ("afile", "afile/inside"):
        refused = run_cli("generate", "a fox", "-O", out, "--server", app.url, cwd=tmp_path)
        assert f"--out {out}" in one_line_error(refused)
    (tmp_path / "rows.csv").write_text("prompt\na fox\n")
    batch = run_cli("batch", "rows.csv", "-O", "afile", "--server", app.url, cwd=tmp_path)
    assert "--out afile: that is a file, not a folder" in one_line_error(batch)
    grid = run_cli(
        "grid", "a fox", "--x", "seed=1,2", "-y", "-O", "afile", "--server", app.url, cwd=tmp_path
    )
    assert "--out afile" in one_line_error(grid)
    assert emulator.emulator.requests_to("run") == [], "nothing was paid for"


def test_local_commands_refuse_a_missing_folder_or_file_in_one_line(tmp_path: Path) -> None:
    env = cli_env(PLAYGROUND_DATA_DIR=str(tmp_path / "data"))
    export = run_cli("export", "nowhere/gallery.zip", cwd=tmp_path, env=env)
    assert "the folder nowhere does not exist" in export.stderr.strip().splitlines()[-1]
    assert export.returncode == 1 and "Traceback" not in export.stderr
    imported = run_cli("import", "missing.zip", cwd=tmp_path, env=env)
    assert "missing.zip: there is no such file" in imported.stderr
    assert imported.returncode == 1 and "Traceback" not in imported.stderr


def test_a_wrong_server_or_one_that_is_not_a_playground_is_said_in_one_line(
    other_service: str, tmp_path: Path
) -> None:
    (tmp_path / "rows.csv").write_text("prompt\na fox\n")
    for args in (
        ("generate", "a fox"),
        ("batch", "rows.csv"),
        ("jobs", "list"),
        ("jobs", "show", "3"),
        ("presets",),
    ):
        answered = run_cli(*args, "--server", other_service, cwd=tmp_path)
        line = one_line_error(answered)
        assert "not as a Seedream Playground" in line and "--server" in line, args
    scheme = run_cli("generate", "a fox", "--server", "ftp://127.0.0.1", cwd=tmp_path)
    assert "is not a playground's address" in one_line_error(scheme)
    nowhere = run_cli("models", "--server", "127.0.0.1:9", cwd=tmp_path)
    assert "Cannot reach http://127.0.0.1:9" in one_line_error(nowhere)
    # --debug shows where an error came from.
    debug = run_cli("presets", "--server", other_service, "--debug", cwd=tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_serving_on_a_busy_port_says_so_instead_of_where_to_open(
    app: RunningApp, tmp_path: Path
) -> None:
    port = app.url.rsplit(":", 1)[1]
    env = cli_env(PLAYGROUND_DATA_DIR=str(tmp_path / "data"))
    busy = run_cli("serve", "--port", port, cwd=tmp_path, env=env)
    assert busy.returncode == 1 and "Traceback" not in busy.stderr
    line = busy.stderr.strip().splitlines()[-1]
    assert f"Port {port} on 127.0.0.1 is in use" in line and "--port" in line
    assert "Open http" not in busy.stderr


def test_a_quote_never_closed_is_named_by_line(app: RunningApp, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text('prompt,seed\na fox,1\n"a cat, 2\na dog,3\n')
    refused = run_cli("batch", "rows.csv", "--server", app.url, cwd=tmp_path)
    line = one_line_error(refused)
    assert "rows.csv, line 3" in line and "quote" in line


def test_a_command_used_wrongly_is_one_line_and_no_command_is_the_help(tmp_path: Path) -> None:
    wrong = run_cli("generate", "a fox", "--num-images", "two", cwd=tmp_path)
    line = one_line_error(wrong, code=2)
    assert "--num-images" in line and "--help" in line
    bare = run_cli(cwd=tmp_path)
    assert bare.returncode == 0
    assert "Usage: seedream-playground" in bare.stdout and "generate" in bare.stdout


def test_errors_speak_the_command_line_s_words(
    app: RunningApp, emulator: RunningEmulator, tmp_path: Path
) -> None:
    small = run_cli("generate", "a fox", "-s", "100x100", "--server", app.url, cwd=tmp_path)
    line = one_line_error(small)
    assert "Invalid parameters: --size: must be between 900 and 4,096" in line
    assert "customWidth" not in line and "customHeight" not in line
    nobody = run_cli("generate", "a fox", "-m", "no-such-model", "--server", app.url, cwd=tmp_path)
    line = one_line_error(nobody)
    assert "`seedream-playground models` lists those it has" in line
    assert "/api/" not in line
    assert emulator.emulator.requests_to("run") == []

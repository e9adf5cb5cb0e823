"""`generate`, `batch` and `grid` as a person runs them: separate processes talking to a
real server over loopback, which talks to the emulator, where submissions are counted."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.features.people import accounts
from app.storage.db.engine import Database
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.emulators import RunningEmulator, serve_emulator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def cli_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIXELDOJO_", "PLAYGROUND_"))
    }
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env=env or cli_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
    )


def one_line_error(
    result: subprocess.CompletedProcess[str], *, after_progress: bool = False
) -> str:
    """The error: one line, last on standard error (after progress lines, if any), exit 1."""
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    if not after_progress:
        assert len(lines) == 1, result.stderr
    assert lines[-1].startswith("seedream-playground "), result.stderr
    return lines[-1]


# --- generate ------------------------------------------------------------------------


def test_generate_writes_the_stored_images_with_their_parameters_as_downloads_do(
    app: RunningApp, tmp_path: Path
) -> None:
    result = run_cli(
        "generate", "a red fox in fresh snow", "--num-images", "2", "--seed", "77",
        "--size", "landscape_16_9", "--server", app.url, "--out", "made", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    job, files = made["job"], [Path(name) for name in made["files"]]
    assert job["status"] == "completed" and len(files) == 2
    for image, written in zip(job["images"], files, strict=True):
        path = tmp_path / written
        assert path.parent == tmp_path / "made"
        download = app.client.get(f"/api/images/{image['id']}/download").content
        assert path.read_bytes() == download, "exactly the gallery's download"
        stored = Image.open(io.BytesIO(app.client.get(f"/api/images/{image['id']}").content))
        with Image.open(path) as picture:
            assert picture.tobytes() == stored.tobytes(), "pixel for pixel what the server stored"
            record = json.loads(picture.text["seedream"])  # type: ignore[attr-defined]
            assert "Seed: 77" in picture.text["parameters"]  # type: ignore[attr-defined]
        assert record["parameters"]["prompt"] == "a red fox in fresh snow"
        assert record["parameters"]["seed"] == 77
        assert record["job"]["id"] == job["id"]


def test_generate_errors_are_one_line_with_a_non_zero_exit(
    app: RunningApp, emulator: RunningEmulator, tmp_path: Path
) -> None:
    invalid = run_cli(
        "generate", "a fox", "--seed", "99999999999", "--server", app.url, cwd=tmp_path
    )
    assert "seed" in one_line_error(invalid)
    unknown = run_cli("generate", "--preset", "noir", "--server", app.url, cwd=tmp_path)
    assert "no preset 'noir'" in one_line_error(unknown)
    nowhere = run_cli("generate", "a fox", "--server", "http://127.0.0.1:9", cwd=tmp_path)
    assert "Cannot reach http://127.0.0.1:9" in one_line_error(nowhere)
    failed = run_cli("generate", "a storm [[fail]]", "--server", app.url, "--json", cwd=tmp_path)
    assert "failed" in one_line_error(failed, after_progress=True).lower()
    assert json.loads(failed.stdout)["error"]["message"]
    assert len(emulator.emulator.requests_to("run")) == 1, "only the valid one was sent"


def test_a_server_with_sign_in_takes_a_token_from_the_environment(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    db = Database.at_path(settings.database_path)
    db.migrate()
    ada = accounts.create_user(db, name="Ada", password="correct horse battery")
    assert ada.id is not None
    token = accounts.create_api_token(db, user_id=ada.id, name="laptop").secret
    db.dispose()
    with serve_app(settings) as app:
        refused = run_cli("generate", "a fox", "--server", app.url, cwd=tmp_path)
        assert "PLAYGROUND_TOKEN" in one_line_error(refused)
        wrong = run_cli(
            "generate", "a fox", "--server", app.url, cwd=tmp_path,
            env=cli_env(PLAYGROUND_TOKEN="sp_not_a_token"),
        )  # fmt: skip
        assert "not valid" in one_line_error(wrong)
        made = run_cli(
            "generate", "a fox", "--server", app.url, "--json", cwd=tmp_path,
            env=cli_env(PLAYGROUND_TOKEN=token),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["job"]["author"] == "Ada"


# --- batch ---------------------------------------------------------------------------


@pytest.fixture
def slow_jobs(tmp_path: Path) -> Iterator[tuple[RunningEmulator, RunningApp]]:
    """Jobs that take a moment, so a batch can be stopped half-way."""
    with (
        serve_emulator(job_seconds=0.8) as emulator,
        serve_app(make_settings(tmp_path / "data", emulator)) as app,
    ):
        yield emulator, app


@pytest.fixture
def ctrl_c_reaches_children() -> Iterator[None]:
    """A suite started in the background by a script runs with Ctrl-C ignored, and its
    children inherit that: a batch could not be stopped as a person at a terminal stops
    it. A handler (not "ignore") is reset to the default in a child."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def start_batch(app: RunningApp, folder: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "batch", "rows.csv", "--server", app.url,
         "--out", "out", "--concurrency", "2", *extra],
        cwd=folder, env=cli_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def results(folder: Path) -> list[dict[str, str]]:
    path = folder / "out" / "rows.results.csv"
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_an_interrupted_batch_resumes_and_pays_once_per_row(
    slow_jobs: tuple[RunningEmulator, RunningApp], tmp_path: Path, ctrl_c_reaches_children: None
) -> None:
    emulator, app = slow_jobs
    sent = emulator.emulator.requests_to
    rows = [("a lighthouse", "square", "")] * 3 + [
        (f"a lighthouse, study {n}", "landscape_16_9", str(n)) for n in range(9)
    ]
    with (tmp_path / "rows.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["prompt", "size", "seed"])
        writer.writerows(rows)

    # Ctrl-C after a few rows: what was sent goes on at the server.
    first = start_batch(app, tmp_path)
    wait_until(lambda: len(sent("run")) >= 3, timeout=30, what="three rows sent")
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=30)
    assert first.returncode == 130, stderr
    assert "Run the same command again" in stderr
    assert "Traceback" not in stderr
    # A crash: killed outright, a few rows later.
    before = len(sent("run"))
    assert before < 12
    second = start_batch(app, tmp_path)
    wait_until(lambda: len(sent("run")) >= before + 2, timeout=30, what="two more rows sent")
    second.kill()
    second.communicate(timeout=30)
    assert 0 < len(sent("run")) < 12

    third = start_batch(app, tmp_path)
    stdout, stderr = third.communicate(timeout=60)
    assert third.returncode == 0, stderr
    lines = results(tmp_path)
    assert [line["status"] for line in lines] == ["completed"] * 12
    assert [int(line["row"]) for line in lines] == list(range(1, 13))
    for line in lines:
        assert (tmp_path / "out" / line["files"]).is_file()
    # Exactly one upstream submission per row, whatever happened in between.
    bodies = [request.body for request in sent("run")]
    assert len(bodies) == 12
    assert len({json.dumps(body, sort_keys=True) for body in bodies}) == 12
    # The three identical rows are three jobs, each with a seed of its own, recorded.
    seeds = {line["seed"] for line in lines[:3]}
    assert len(seeds) == 3 and "" not in seeds

    again = start_batch(app, tmp_path, "--json")
    stdout, _ = again.communicate(timeout=60)
    assert json.loads(stdout)["done_before"] == 12
    assert len(sent("run")) == 12


def test_a_batch_with_a_bad_row_sends_nothing(
    app: RunningApp, emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "rows.jsonl").write_text(
        '{"prompt": "a fox"}\n{"prompt": "a cat", "num_images": 9}\n', encoding="utf-8"
    )
    refused = run_cli("batch", "rows.jsonl", "--server", app.url, cwd=tmp_path)
    assert "row 2: num_images" in one_line_error(refused)
    (tmp_path / "rows.csv").write_text("prompt,colour\na fox,red\n", encoding="utf-8")
    unknown = run_cli("batch", "rows.csv", "--server", app.url, cwd=tmp_path)
    assert "column 'colour' is not a parameter" in one_line_error(unknown)
    assert emulator.emulator.requests_to("run") == []


# --- grid ----------------------------------------------------------------------------


GRID_ARGS = (
    "a lighthouse at dawn",
    "--x",
    "preset=cyberpunk-street,food-overhead",
    "--y",
    "seed=1,2,3",
)


def test_grid_prints_its_plan_asks_first_and_saves_the_contact_sheet(
    app: RunningApp, emulator: RunningEmulator, tmp_path: Path
) -> None:
    unasked = run_cli("grid", *GRID_ARGS, "--server", app.url, cwd=tmp_path)
    assert "pass --yes" in unasked.stderr.strip().splitlines()[-1]
    assert unasked.returncode == 1
    assert "6 jobs, 6 images, 6 credits" in unasked.stderr
    assert "Every cell draws the prompt “a lighthouse at dawn”" in unasked.stderr
    assert emulator.emulator.requests_to("run") == [], "nothing without a yes"

    made = run_cli("grid", *GRID_ARGS, "--yes", "--json", "--server", app.url, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    document: dict[str, Any] = json.loads(made.stdout)
    grid = document["grid"]
    assert grid["finished"] and [cell["status"] for cell in grid["cells"]] == ["completed"] * 6
    with Image.open(tmp_path / document["contact_sheet"]) as sheet:
        assert sheet.format == "PNG" and sheet.width >= 512
    # The same command again is the same grid, not a second one.
    again = run_cli("grid", *GRID_ARGS, "--yes", "--json", "--server", app.url, cwd=tmp_path)
    assert json.loads(again.stdout)["grid"]["id"] == grid["id"]
    assert len(emulator.emulator.requests_to("run")) == 6

"""`generate` as a person runs it, against a real server and the emulator: paid once however
often it is run (Ctrl-C included), a live schema without auto_2K, a clock that ticks on a
terminal and nothing of it elsewhere, prompts from standard input, any field of the live
schema, and reference images from a file."""

from __future__ import annotations

import io
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.domain.parameters import IMAGE_SIZES
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.cli import one_line_error, run_cli, run_on_terminal, start_cli
from tests.support.emulators import RunningEmulator, serve_emulator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def ctrl_c_reaches_children() -> Iterator[None]:
    """A suite started in the background runs with Ctrl-C ignored, and its children inherit
    that; a handler (not "ignore") is reset to the default in a child."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[tuple[RunningEmulator, RunningApp]]:
    """Jobs that take a few seconds: long enough to stop one, and to watch a clock."""
    with (
        serve_emulator(job_seconds=3.5) as emulator,
        serve_app(make_settings(tmp_path / "data", emulator)) as app,
    ):
        yield emulator, app


def test_generate_stopped_after_submitting_and_run_again_pays_once(
    slow: tuple[RunningEmulator, RunningApp], tmp_path: Path, ctrl_c_reaches_children: None
) -> None:
    emulator, app = slow
    runs = emulator.emulator.requests_to
    args = ("generate", "a lighthouse at dawn", "--server", app.url, "-O", "shots")
    first = start_cli(*args, cwd=tmp_path)
    wait_until(lambda: len(runs("run")) == 1, timeout=60, what="the job to be sent")
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=30)
    assert first.returncode == 130, stderr
    assert "Traceback" not in stderr
    # The job goes on at the server; said by its id once its answer had come back.
    assert re.search(r"interrupted\. (Job \d+ goes on at the server|Run the same command)", stderr)
    assert "same command again" in stderr.lower()
    (job,) = app.client.get("/api/jobs").json()["items"]
    job_id = job["id"]

    again = run_cli(*args, "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    made = json.loads(again.stdout)
    assert made["job"]["id"] == job_id and made["carried_on"] is True
    assert f"Carrying on with job {job_id}" in again.stderr
    assert [Path(name).parent for name in made["files"]] == [Path("shots")]
    assert (tmp_path / made["files"][0]).is_file()
    assert len(runs("run")) == 1, "exactly one upstream run"

    # Once more, finished: the same job, its images written again; still one run.
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    assert len(runs("run")) == 1
    # --new asks for another.
    other = run_cli(*args, "--new", "--json", "-q", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["job"]["id"] != job_id
    assert len(runs("run")) == 2
    assert other.stderr == "", "-q: nothing but errors"


def test_the_clock_ticks_on_a_terminal_and_nothing_shows_elsewhere(
    slow: tuple[RunningEmulator, RunningApp], tmp_path: Path
) -> None:
    _, app = slow
    seen = run_on_terminal("generate", "a clock tower", "--server", app.url, cwd=tmp_path)
    assert seen.returncode == 0, seen.text
    clocks = re.findall(r"Generating · (\d+):(\d\d)", seen.text)
    values = sorted({int(minutes) * 60 + int(seconds) for minutes, seconds in clocks})
    # A 3.5 s job: the clock shows 0:00, 0:01, 0:02 (and on), redrawn in place.
    assert values[:3] == [0, 1, 2], seen.text
    assert "\r\x1b[2K" in seen.text
    assert seen.stdout.strip().endswith(".png")

    piped = run_cli("generate", "a clock tower at night", "--server", app.url, cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stderr and "·" not in piped.stderr, "no progress off a terminal"
    assert piped.stderr.splitlines()[-1] == "Made 1 image"


def test_a_live_schema_without_auto_2k_lets_a_prompt_alone_run(tmp_path: Path) -> None:
    allowed = [size for size in IMAGE_SIZES if size not in ("auto_2K", "auto_4K")]
    with (
        serve_emulator(schema_overrides={"image_size": {"enum": allowed}}) as emulator,
        serve_app(make_settings(tmp_path / "data", emulator)) as app,
    ):
        made = run_cli("generate", "a cat", "--server", app.url, "--json", cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        (run,) = emulator.emulator.requests_to("run")
    assert run.body["image_size"] == allowed[0]
    assert json.loads(made.stdout)["job"]["parameters"]["image_size"] == allowed[0]


def test_prompts_come_from_an_argument_a_dash_or_what_is_piped_in(
    app: RunningApp, emulator: RunningEmulator, tmp_path: Path
) -> None:
    dash = run_cli(
        "generate", "-", "--server", app.url, "--json", cwd=tmp_path, stdin="a fox in snow\n"
    )
    assert dash.returncode == 0, dash.stderr
    assert json.loads(dash.stdout)["job"]["parameters"]["prompt"] == "a fox in snow"
    piped = run_cli("generate", "--server", app.url, "--json", cwd=tmp_path, stdin="an owl")
    assert json.loads(piped.stdout)["job"]["parameters"]["prompt"] == "an owl"
    empty = run_cli("generate", "-", "--server", app.url, cwd=tmp_path, stdin="")
    assert "standard input was empty" in one_line_error(empty)
    assert [run.body["prompt"] for run in emulator.emulator.requests_to("run")] == [
        "a fox in snow",
        "an owl",
    ], "never the prompt '-'"


def test_any_field_of_the_live_schema_and_a_reference_file(
    app: RunningApp, emulator: RunningEmulator, tmp_path: Path
) -> None:
    flux = run_cli(
        "generate", "a heron", "-m", "flux-dev", "-o", "guidance_scale=7.5",
        "-o", "num_inference_steps=20", "-o", "enable_safety_checker=false",
        "-o", "aspect_ratio=16:9", "--server", app.url, "--json", cwd=tmp_path,
    )  # fmt: skip
    assert flux.returncode == 0, flux.stderr
    (run,) = emulator.emulator.requests_to("run")
    assert run.body["guidance_scale"] == 7.5 and run.body["num_inference_steps"] == 20
    assert run.body["enable_safety_checker"] is False and run.body["aspect_ratio"] == "16:9"
    unknown = run_cli("generate", "a heron", "-o", "colour=red", "--server", app.url, cwd=tmp_path)
    assert "-o colour: seedream-4 has no such field" in one_line_error(unknown)

    picture = tmp_path / "bottle.png"
    Image.new("RGB", (640, 480), (20, 120, 200)).save(picture)
    refused = run_cli(
        "generate", "on a beach", "-r", str(picture), "--server", app.url, cwd=tmp_path
    )
    assert "takes no reference images" in one_line_error(refused)
    edit = run_cli(
        "generate", "the bottle, on a beach", "-m", "seedream-4-edit", "-r", str(picture),
        "--server", app.url, "--json", cwd=tmp_path,
    )  # fmt: skip
    assert edit.returncode == 0, edit.stderr
    job = json.loads(edit.stdout)["job"]
    (reference,) = job["reference_images"]
    sent = app.client.get(f"/api/images/{reference['image_id']}").content
    assert Image.open(io.BytesIO(sent)).size == (640, 480)
    assert len(emulator.emulator.requests_to("run")) == 2, "nothing sent for the refusals"
    # The same file again is the same gallery image, so the same job: nothing paid again.
    again = run_cli(
        "generate", "the bottle, on a beach", "-m", "seedream-4-edit", "-r", str(picture),
        "--server", app.url, "--json", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["job"]["id"] == job["id"]
    assert len(emulator.emulator.requests_to("run")) == 2


def test_a_failed_job_says_how_to_send_another(
    app: RunningApp, emulator: RunningEmulator, tmp_path: Path
) -> None:
    args = ("generate", "a cat [[fail]]", "--server", app.url)
    failed = one_line_error(run_cli(*args, cwd=tmp_path))
    assert re.fullmatch(
        r"seedream-playground generate: Job \d+ failed: .+ \(--new sends another\)", failed
    )
    # Run again, it is the same failed job (nothing sent); --new sends another.
    assert one_line_error(run_cli(*args, cwd=tmp_path)) == failed
    assert len(emulator.emulator.requests_to("run")) == 1
    one_line_error(run_cli(*args, "--new", cwd=tmp_path))
    assert len(emulator.emulator.requests_to("run")) == 2

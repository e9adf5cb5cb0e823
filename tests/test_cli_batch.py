"""`batch` as a person runs it: a results file per input (another input's refused), text
files of one prompt a line, the counts after a crash (new, already running, done before)
that never overstate what was made and spent, and typed JSON."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.cli import one_line_error, run_cli, start_cli
from tests.support.emulators import RunningEmulator, serve_emulator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_two_files_in_one_folder_keep_their_results_apart(
    app: RunningApp, emulator: RunningEmulator, tmp_path: Path
) -> None:
    (tmp_path / "cats.csv").write_text("prompt,seed\na cat,1\na cat,2\n")
    (tmp_path / "dogs.txt").write_text("# one prompt a line\na dog\n\na dog on a log\n")
    for name in ("cats.csv", "dogs.txt"):
        made = run_cli("batch", name, "-O", "out", "--server", app.url, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
    cats = results(tmp_path / "out" / "cats.results.csv")
    dogs = results(tmp_path / "out" / "dogs.results.csv")
    assert [line["prompt"] for line in cats] == ["a cat", "a cat"]
    assert [line["prompt"] for line in dogs] == ["a dog", "a dog on a log"]
    assert {line["input"] for line in cats} == {str(tmp_path / "cats.csv")}
    assert not (tmp_path / "out" / "results.csv").exists()
    assert len(emulator.emulator.requests_to("run")) == 4

    # Another file of the same name, from elsewhere, into the same folder: refused.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "cats.csv").write_text("prompt\na tiger\n")
    refused = run_cli("batch", "elsewhere/cats.csv", "-O", "out", "--server", app.url, cwd=tmp_path)
    line = one_line_error(refused)
    assert "holds the results of" in line and str(tmp_path / "cats.csv") in line
    assert len(emulator.emulator.requests_to("run")) == 4


def test_a_blank_prompt_is_said_as_the_file_says_it(app: RunningApp, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("prompt,seed\na fox,1\n,2\n")
    refused = run_cli("batch", "rows.csv", "--server", app.url, cwd=tmp_path)
    assert one_line_error(refused).endswith("row 2: prompt: is required")


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[tuple[RunningEmulator, RunningApp]]:
    with (
        serve_emulator(job_seconds=4) as emulator,
        serve_app(make_settings(tmp_path / "data", emulator)) as app,
    ):
        yield emulator, app


def test_after_a_crash_the_counts_say_what_is_new_running_and_done(
    slow: tuple[RunningEmulator, RunningApp], tmp_path: Path
) -> None:
    emulator, app = slow
    sent = emulator.emulator.requests_to
    rows = tmp_path / "rows.csv"
    rows.write_text("prompt,seed\n" + "".join(f"study {n},{n}\n" for n in range(3)))
    args = ("batch", "rows.csv", "-O", "out", "-c", "3", "--server", app.url)
    first = start_cli(*args, cwd=tmp_path)
    lines = tmp_path / "out" / "rows.results.csv"
    wait_until(
        lambda: lines.exists() and [line["status"] for line in results(lines)] == ["submitted"] * 3,
        timeout=60,
        what="three rows sent and recorded",
    )
    first.kill()  # a crash: nothing said, nothing tidied
    first.communicate(timeout=30)

    rows.write_text(rows.read_text() + "study 3,3\n")
    again = run_cli(*args, "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "4 rows: 1 new (1 credit), 3 already running, 0 done before" in again.stderr
    document = json.loads(again.stdout)
    assert (document["made"], document["carried_on"], document["done_before"]) == (1, 3, 0)
    assert document["credits"] == 1.0, "only what this run paid for"
    assert again.stderr.count("\n") >= 1
    assert len(sent("run")) == 4, "each row paid once"
    # Typed, for scripts: numbers as numbers, files as a list.
    first_line = document["lines"][0]
    assert first_line["row"] == 1 and first_line["seed"] == 0 and first_line["cost"] == 1.0
    assert isinstance(first_line["job_id"], int) and first_line["files"][0].endswith(".png")

    done = run_cli(*args, cwd=tmp_path)
    assert "4 rows: 0 new (0 credits), 0 already running, 4 done before" in done.stderr
    assert done.stdout.startswith("0 made (0 credits), 0 carried on, 4 done before, 0 failed")

"""`seedream-playground doctor` against the emulator: a good key, a bad key, an unknown model,
an unreachable base, a schema that differs; `--run` spends exactly one 1-image job; the page
where the key's status shows says what the last check found."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from app.cli.main import main
from app.domain.parameters import IMAGE_SIZES, NAMED_SIZE_PIXELS
from app.emulator import Fault
from tests.support.apps import make_settings, serve_app
from tests.support.doctor import assert_fits_80_columns, doctor
from tests.support.emulators import TEST_KEY, RunningEmulator, serve_emulator

NARROW = {"num_images": {"maximum": 4}, "prompt": {"maxLength": 2000}}


def test_a_good_key_passes_spending_nothing(
    emulator: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = doctor(monkeypatch, capsys, emulator.base_url, tmp_path / "data")
    assert code == 0
    assert_fits_80_columns(out)
    assert "Nothing was spent" in out
    for name in ("base URL", "API key", "model", "schema", "rate limits", "clock"):
        assert f" {name} " in out, name
    assert "read; the same as the built-in rules" in out
    assert out.rstrip().endswith("The app can work with this key.")
    assert emulator.emulator.requests_to("run") == [], "spends nothing"
    assert emulator.emulator.jobs == {}


def test_a_bad_key_blocks_with_the_reason_in_one_line(
    emulator: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = doctor(monkeypatch, capsys, emulator.base_url, tmp_path / "data", key="pd_wrong")
    assert code == 1
    assert_fits_80_columns(out)
    assert "FAIL  API key" in out
    headline = out.rstrip().split("\n\n")[-1].replace("\n", " ")
    assert headline.startswith("Blocked: PixelDojo refused the API key (HTTP 401")
    assert "PIXELDOJO_API_KEY" in headline


def test_an_unknown_model_blocks(
    emulator: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = doctor(
        monkeypatch, capsys, emulator.base_url, tmp_path / "data", PLAYGROUND_MODEL="no-such-model"
    )
    assert code == 1
    assert "FAIL  model" in out
    assert "PixelDojo has no model 'no-such-model'" in out
    assert "PLAYGROUND_MODEL" in out.rstrip().split("\n\n")[-1]


def test_an_unreachable_base_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/api/v1"
    code, out = doctor(monkeypatch, capsys, closed, tmp_path / "data", "--json")
    report = json.loads(out)
    assert code == report["exit_code"] == 1
    assert report["ok"] is False
    assert report["checks"][0]["name"] == "base URL"
    assert report["checks"][0]["status"] == "FAIL"
    assert "cannot be reached" in report["blocked"]
    assert "PIXELDOJO_BASE_URL" in report["headline"]


def test_a_schema_that_differs_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_emulator(schema_overrides=NARROW) as narrowed:
        narrowed.emulator.faults.add(
            Fault("models", status=200, headers={"X-RateLimit-Limit": "60"}, body={"apiId": "x"})
        )
        code, out = doctor(monkeypatch, capsys, narrowed.base_url, tmp_path / "data")
    assert code == 0
    assert_fits_80_columns(out)
    assert "note  schema" in out
    assert "- num_images: maximum 4 (built-in: 6)" in out
    assert "- prompt: maxLength 2,000 (built-in: 4,000)" in out
    assert "x-ratelimit-limit: 60" in out.lower()
    assert "2 differences from the built-in rules" in out.rstrip().split("\n\n")[-1]


def test_json_output_is_for_scripts(
    emulator: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = doctor(monkeypatch, capsys, emulator.base_url, tmp_path / "data", "--json")
    report: dict[str, Any] = json.loads(out)
    assert code == report["exit_code"] == 0
    assert report["spent"] is False
    assert report["differences"] == []
    assert report["run"] is None
    assert abs(report["clock_skew_seconds"]) < 5
    assert {check["name"] for check in report["checks"]} >= {"base URL", "API key", "schema"}


def test_doctor_run_spends_exactly_one_one_image_job_at_the_cheapest_size(
    emulator: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = doctor(monkeypatch, capsys, emulator.base_url, tmp_path / "data", "--run")
    assert code == 0, out
    assert_fits_80_columns(out)
    (run,) = emulator.emulator.requests_to("run")
    assert len(emulator.emulator.jobs) == 1
    assert run.body["num_images"] == 1
    cheapest = min(NAMED_SIZE_PIXELS.values(), key=lambda wh: wh[0] * wh[1])
    assert NAMED_SIZE_PIXELS[run.body["image_size"]] == cheapest
    assert isinstance(run.body["seed"], int), "the test job's seed is known too"
    assert emulator.emulator.balance(TEST_KEY) == emulator.config.initial_credits - 1
    assert "One 1-image job was spent." in out
    assert "status words  pending" in out or "status words  processing" in out
    assert "completed" in out.split("status words", 1)[1].split("\n", 1)[0]
    assert "output.images[]" in out
    assert "127.0.0.1 (allowed)" in out
    assert "images expire in 24.0 h" in out
    assert "creditCost 1 for 1 image; 999 credits left" in out


def test_doctor_run_reports_a_refused_image_host_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_emulator(image_base_url="http://images.example.net") as running:
        code, out = doctor(monkeypatch, capsys, running.base_url, tmp_path / "data", "--run")
        assert len(running.emulator.jobs) == 1
    assert code == 1
    assert "'images.example.net' is not an allowed host" in out
    assert "PLAYGROUND_IMAGE_HOSTS" in out.rstrip().split("\n\n")[-1]


def test_no_key_is_nothing_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    assert main(["doctor"]) == 2
    assert "PIXELDOJO_API_KEY is unset" in capsys.readouterr().err


def test_the_page_shows_the_last_result_where_the_key_status_shows(
    emulator: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "data"
    code, _ = doctor(monkeypatch, capsys, emulator.base_url, data, key="pd_wrong")
    assert code == 1
    with serve_app(make_settings(data, emulator)) as app:
        page = app.client.get("/").text
        assert 'id="doctor-report" data-exit-code="1"' in page
        assert "Blocked: PixelDojo refused the API key" in page
        code, _ = doctor(monkeypatch, capsys, emulator.base_url, data)
        assert code == 0

        def shows_success() -> bool:
            return "The app can work with this key." in app.client.get("/").text

        from tests.support.waiting import wait_until

        wait_until(shows_success, timeout=10, what="the page to show the new report")


def test_doctor_says_whether_pixeldojo_can_call_the_app_back(
    emulator: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data_dir = tmp_path / "data"
    code, out = doctor(monkeypatch, capsys, emulator.base_url, data_dir)
    assert code == 0
    assert "note  callbacks    off (no PLAYGROUND_PUBLIC_URL): jobs are polled" in out

    # The app running at its public URL: it answers a callback address that cannot exist
    # with its own 404, and nothing reaches it but that (no key).
    with serve_app(make_settings(data_dir, emulator)) as app:
        code, out = doctor(
            monkeypatch, capsys, emulator.base_url, data_dir, PLAYGROUND_PUBLIC_URL=app.url
        )
    assert code == 0
    assert_fits_80_columns(out)
    assert f"ok    callbacks    on: {app.url} answers as this app" in out
    assert "when each job ends; no job has asked yet" in " ".join(out.split())

    # Nothing there: a warning, not a block (jobs are polled).
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    code, out = doctor(
        monkeypatch, capsys, emulator.base_url, data_dir, PLAYGROUND_PUBLIC_URL=nowhere
    )
    assert code == 0
    assert f"warn  callbacks    {nowhere} did not answer from here" in out


def test_a_base_url_without_api_v1_is_not_pixeldojo_and_the_key_is_not_checked(
    emulator: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The emulator's own host without /api/v1: everything there answers 404.
    code, out = doctor(monkeypatch, capsys, emulator.url, tmp_path / "data", key="pd_garbage")
    assert code == 1
    assert_fits_80_columns(out)
    key_line = next(line for line in out.splitlines() if " API key " in line)
    assert key_line.split()[0] == "skip", "never ok for a key it could not check"
    assert not any(line.split()[:1] == ["ok"] for line in out.splitlines() if "base URL" in line)
    headline = " ".join(out.rstrip().split("\n\n")[-1].split())
    assert "is not PixelDojo's API" in headline and "/api/v1" in headline
    assert "PLAYGROUND_MODEL" not in headline, "the model setting is not to blame"
    assert " clock " not in out, "another server's clock says nothing of PixelDojo's"


def test_an_enum_in_another_order_is_no_difference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shuffled = {"image_size": {"enum": list(reversed(IMAGE_SIZES))}}
    with serve_emulator(schema_overrides=shuffled) as running:
        code, out = doctor(monkeypatch, capsys, running.base_url, tmp_path / "data", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["differences"] == []
    assert "the same as the built-in rules" in json.dumps(report["checks"])


def test_json_differences_are_records_and_the_changed_defaults_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    allowed = ["square_hd", "portrait_16_9", "landscape_16_9"]
    with serve_emulator(schema_overrides={"image_size": {"enum": allowed}}) as running:
        code, out = doctor(monkeypatch, capsys, running.base_url, tmp_path / "data", "--json")
        _, text = doctor(monkeypatch, capsys, running.base_url, tmp_path / "data")
    report = json.loads(out)
    assert code == 0
    (enum,) = report["differences"]
    assert (enum["field"], enum["keyword"], enum["live"]) == ("image_size", "enum", allowed)
    assert enum["builtin"] == list(IMAGE_SIZES)
    assert_fits_80_columns(text)
    flat = " ".join(text.split())
    assert "note defaults the live schema changes what runs by default:" in flat
    assert "a run that names no size is made at Square HD (square_hd)" in flat
    assert "Wedding portrait runs at Portrait 9:16" in flat


@pytest.mark.slow
def test_doctor_run_shows_each_step_with_a_ticking_clock(tmp_path: Path) -> None:
    from tests.support.cli import cli_env, run_cli, run_on_terminal

    with serve_emulator(job_seconds=2.5) as running:
        env = cli_env(
            PIXELDOJO_API_KEY=TEST_KEY,
            PIXELDOJO_BASE_URL=running.base_url,
            PLAYGROUND_DATA_DIR=str(tmp_path / "data"),
            PIXELDOJO_RATE_LIMIT_PER_MINUTE="0",
        )
        seen = run_on_terminal("doctor", "--run", cwd=tmp_path, env=env)
        assert seen.returncode == 0, seen.text
        logged = run_cli("doctor", "--run", cwd=tmp_path, env=env)
    waiting = re.findall(r"Waiting for the test job \S+: \w+ · 0:(\d\d)", seen.text)
    assert len(set(waiting)) >= 2, "the clock ticks while the paid job runs"
    for step in ("Reading the model's card", "Checking the API key", "Submitting the test job"):
        assert step in seen.text, step
    # In a log: each step once, with when it began, and nothing redrawn.
    steps = [line for line in logged.stderr.splitlines() if re.match(r"  \d+:\d\d  ", line)]
    assert [line.split("  ")[2] for line in steps][:2] == [
        "Reading the model's card",
        "Checking the API key",
    ]
    assert "\r" not in logged.stderr
    assert "the test job completed in" in " ".join(logged.stdout.split())

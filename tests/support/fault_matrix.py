"""The fault matrix: every upstream fault we know of, driven through the app.

Each scenario arranges a fault in the emulator (or kills the app process at a
bad moment), submits one job, and reports what became of it: its final state
and message, how many jobs the upstream created for it (never more than one),
and whether the stored images are complete, correct and not duplicated.

Run it on its own for a one-line summary:

    .venv/bin/python -m tests.support.fault_matrix

It stays one module, long as it is: every scenario is a row that one harness runs and
judges the same way, and the matrix is read as one table, by the tests and as a script.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image as PILImage

from app.core.config import env_name
from app.emulator import Emulator, Fault
from tests.support.apps import make_settings, serve_app
from tests.support.emulators import RunningEmulator, serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.processes import AppProcess
from tests.support.waiting import wait_until


@dataclass(frozen=True)
class Expect:
    status: str
    message: str | None = None  # a phrase the job's error must contain
    submissions: int = 1  # jobs the upstream created for this one
    images: int = 0
    expires_at: bool = False  # the job must record PixelDojo's expiresAt


def _nothing(emulator: Emulator) -> None:
    return None


def _non_image_png() -> bytes:
    return b"<html><body>Access denied</body></html>"


def _pixel_bomb() -> bytes:
    """A small file that decodes to far more pixels than any model output."""
    buffer = io.BytesIO()
    PILImage.new("1", (6000, 6000)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Scenario:
    name: str
    expect: Expect
    arrange: Callable[[Emulator], None] = _nothing
    arrange_more: Callable[[Emulator], None] = _nothing
    settings: dict[str, Any] = field(default_factory=dict)
    marker: str = ""  # appended to the prompt: [[fail]], [[never]]
    num_images: int = 1
    # Kill the app with SIGKILL once it has sent a request to this route, then restart it.
    kill_during: str | None = None

    @property
    def prompt(self) -> str:
        return f"fault matrix: {self.name} {self.marker}".strip()


def _faults(*faults: Fault) -> Callable[[Emulator], None]:
    def arrange(emulator: Emulator) -> None:
        for fault in faults:
            emulator.faults.add(fault)

    return arrange


def _config(**values: Any) -> Callable[[Emulator], None]:
    def arrange(emulator: Emulator) -> None:
        for name, value in values.items():
            setattr(emulator.config, name, value)

    return arrange


# Settings that let a lost submission be given up on quickly.
QUICK_RECONCILE = {
    "request_timeout_seconds": 0.5,
    "max_submit_wait_seconds": 0,
    "reconcile_window_seconds": 1,
}

SCENARIOS: list[Scenario] = [
    Scenario("no fault", Expect("completed", images=2), num_images=2),
    Scenario("slow upstream", Expect("completed", images=1), _config(latency_seconds=0.3)),
    Scenario(
        "429 on submit, then accepted",
        Expect("completed", images=1),
        _faults(Fault("run", status=429, headers={"Retry-After": "1"})),
    ),
    Scenario(
        "429 on polls",
        Expect("completed", images=1),
        _faults(Fault("job", status=429, headers={"Retry-After": "1"}, times=2)),
    ),
    Scenario(
        "5xx burst on polls",
        Expect("completed", images=1),
        _faults(Fault("job", status=503, times=4)),
    ),
    Scenario(
        "poll answer cut off",
        Expect("completed", images=1),
        _faults(Fault("job", kind="truncate", times=2)),
    ),
    # Answers a strict parser chokes on never fail a paid job: unreadable polls are asked
    # again, odd words and formats are understood.
    Scenario(
        "poll answered 200 with an HTML error page",
        Expect("completed", images=1),
        _faults(Fault("job", kind="malformed", times=2)),
    ),
    Scenario(
        "poll answer is truncated JSON",
        Expect("completed", images=1),
        _faults(Fault("job", kind="malformed", body='{"jobId": "job_1", "stat', times=2)),
    ),
    Scenario(
        "poll answer is empty",
        Expect("completed", images=1),
        _faults(Fault("job", kind="malformed", body="", times=2)),
    ),
    Scenario(
        "poll answer has no status",
        Expect("completed", images=1),
        _faults(Fault("job", kind="edit", drop=["status"], times=2)),
    ),
    Scenario(
        "finished job says succeeded",
        Expect("completed", images=2),
        _config(completed_word="succeeded"),
        num_images=2,
    ),
    Scenario(
        "images come with a running status word",
        Expect("completed", images=1),
        _config(completed_word="processing"),
    ),
    Scenario(
        "expiresAt in Unix seconds",
        Expect("completed", images=1, expires_at=True),
        _config(expires_format="unix"),
    ),
    Scenario(
        "expiresAt in Unix milliseconds",
        Expect("completed", images=1, expires_at=True),
        _config(expires_format="unix_ms"),
    ),
    Scenario(
        "fractional Retry-After on polls",
        Expect("completed", images=1),
        _faults(Fault("job", status=429, headers={"Retry-After": "0.4"}, times=2)),
    ),
    Scenario(
        "X-RateLimit-Reset in seconds from now",
        Expect("completed", images=1),
        _faults(Fault("job", status=429, headers={"X-RateLimit-Reset": "1"})),
    ),
    Scenario(
        "X-RateLimit-Reset as a Unix time",
        Expect("completed", images=1),
        lambda emulator: emulator.faults.add(
            Fault("job", status=429, headers={"X-RateLimit-Reset": str(int(time.time()) + 1)})
        ),
    ),
    Scenario(
        "submit answer with a jobId but no status",
        Expect("completed", images=1),
        _faults(Fault("run", kind="edit", drop=["status"])),
    ),
    Scenario("job fails upstream", Expect("failed", "Generation failed"), marker="[[fail]]"),
    Scenario(
        "job never finishes",
        Expect("failed", "Timed out"),
        marker="[[never]]",
        settings={"job_deadline_seconds": 1.5},
    ),
    Scenario(
        # As after a laptop's sleep, a server down for a while, or a rate-limited backlog.
        "first poll after the deadline, job done upstream",
        Expect("completed", images=1),
        settings={"poll_initial_seconds": 2.0, "job_deadline_seconds": 1.0},
    ),
    Scenario(
        "image URLs expire before download",
        Expect("expired", "expired on PixelDojo"),
        _config(retention_seconds=1.5),
        # The temporary host answers 404 until the URLs expire: retried, then given up.
        arrange_more=_faults(Fault("image", status=404, times=1000)),
    ),
    Scenario(
        "image on a foreign host",
        Expect("failed", "not an allowed host"),
        _config(image_base_url="http://images.invalid"),
    ),
    Scenario(
        "image redirects to another host",
        Expect("failed", "not an allowed host"),
        _faults(Fault("image", status=302, headers={"Location": "http://elsewhere.invalid/x.png"})),
    ),
    Scenario(
        "oversized image",
        Expect("failed", "cap"),
        _faults(Fault("image", kind="payload", size=3_000_000)),
        settings={"download_max_bytes": 1_000_000},
    ),
    Scenario(
        "download is not an image",
        Expect("failed", "not a readable image"),
        _faults(Fault("image", kind="payload", body=_non_image_png())),
    ),
    Scenario(
        "decompression bomb",
        Expect("failed", "pixel cap"),
        lambda emulator: emulator.faults.add(Fault("image", kind="payload", body=_pixel_bomb())),
    ),
    Scenario(
        "image download cut off",
        Expect("completed", images=1),
        _faults(Fault("image", kind="truncate")),
    ),
    Scenario(
        "submit times out, upstream took it",
        Expect("completed", images=1),
        _faults(Fault("run", kind="delay", delay_seconds=1.5)),
        settings={"request_timeout_seconds": 0.5},
    ),
    Scenario(
        "submit answer lost after acceptance",
        Expect("completed", images=1),
        _faults(Fault("run", kind="lose_answer")),
    ),
    Scenario(
        "submit answered 500, upstream did not take it",
        Expect("unknown", "never accepted", submissions=0),
        _faults(Fault("run", status=500)),
        settings=QUICK_RECONCILE,
    ),
    Scenario(
        "API key refused",
        Expect("failed", "refused the API key", submissions=0),
        _config(api_keys=frozenset({"pd_someone_else"})),
    ),
    Scenario(
        "out of credits",
        Expect("failed", "Buy credits", submissions=0),
        _config(initial_credits=0),
    ),
    Scenario(
        "out of credits, its code in capitals",
        Expect("failed", "Buy credits", submissions=0),
        _config(initial_credits=0, error_codes_upper=True, error_style="flat"),
    ),
    Scenario("killed mid-poll", Expect("completed", images=1), kill_during="job"),
    Scenario(
        "killed mid-download",
        Expect("completed", images=2),
        _faults(Fault("image", kind="delay", delay_seconds=5)),
        num_images=2,
        kill_during="image",
    ),
    Scenario(
        "killed mid-submit",
        Expect("completed", images=1),
        _faults(Fault("run", kind="delay", delay_seconds=2)),
        kill_during="run",
    ),
]


@dataclass
class Report:
    scenario: Scenario
    status: str | None = None
    error: str | None = None
    submissions: int = 0
    images_stored: int = 0
    corrupt_images: int = 0
    duplicate_images: int = 0
    lost: bool = False
    credit_cost: float | None = None
    expires_at: str | None = None
    problems: list[str] = field(default_factory=list)

    def check(self) -> list[str]:
        """Every way this run differs from what the scenario expects."""
        expect = self.scenario.expect
        problems = list(self.problems)
        if self.lost:
            problems.append("the job was lost")
        if self.status != expect.status:
            problems.append(f"status {self.status!r}, expected {expect.status!r} ({self.error})")
        if expect.message and expect.message not in (self.error or ""):
            problems.append(f"message {self.error!r} lacks {expect.message!r}")
        if self.submissions != expect.submissions:
            problems.append(f"{self.submissions} upstream jobs, expected {expect.submissions}")
        if self.images_stored != expect.images:
            problems.append(f"{self.images_stored} images stored, expected {expect.images}")
        if self.corrupt_images:
            problems.append(f"{self.corrupt_images} corrupt or partial images")
        if self.duplicate_images:
            problems.append(f"{self.duplicate_images} duplicate images")
        if expect.expires_at and self.expires_at is None:
            problems.append("PixelDojo's expiresAt was not recorded")
        return problems


def run_scenario(scenario: Scenario, workdir: Path) -> Report:
    workdir.mkdir(parents=True, exist_ok=True)
    with serve_emulator() as emulator:
        scenario.arrange(emulator.emulator)
        scenario.arrange_more(emulator.emulator)
        if scenario.kill_during:
            return _run_with_crash(scenario, emulator, workdir)
        settings = make_settings(workdir / "data", emulator, **scenario.settings)
        with serve_app(settings) as app:
            answer = app.client.post(
                "/api/jobs", json={"prompt": scenario.prompt, "num_images": scenario.num_images}
            )
            body = answer.json()
            job_id = body.get("id") or body.get("error", {}).get("job_id")
            if job_id is None:
                return Report(scenario, lost=True, problems=[f"no job: {answer.text}"])
            return _report(scenario, emulator, app.client, job_id)


def _run_with_crash(scenario: Scenario, emulator: RunningEmulator, workdir: Path) -> Report:
    route = scenario.kill_during
    assert route is not None
    env = {env_name(name): value for name, value in scenario.settings.items()}
    first = AppProcess(workdir / "data", emulator, **env).start()
    body = {"prompt": scenario.prompt, "num_images": scenario.num_images}
    # The submit blocks while the emulator holds the request; the crash cuts it off.
    submitter = threading.Thread(target=_post_ignoring_crash, args=(first.url, body), daemon=True)
    submitter.start()
    wait_until(
        lambda: emulator.emulator.requests_to(route),
        timeout=20,
        what=f"a request to {route} to be under way",
    )
    first.kill()
    submitter.join(timeout=30)
    emulator.emulator.faults.clear()

    second = AppProcess(workdir / "data", emulator, **env).start()
    try:
        with second.client() as client:
            listed = wait_until(
                lambda: client.get("/api/jobs").json()["items"], what="the job to be listed"
            )
            return _report(scenario, emulator, client, listed[0]["id"])
    finally:
        second.stop()


def _post_ignoring_crash(url: str, body: dict[str, Any]) -> None:
    # The server is killed mid-request: exactly the point.
    with contextlib.suppress(httpx.TransportError):
        httpx.post(url + "/api/jobs", json=body, timeout=60)


def _report(
    scenario: Scenario, emulator: RunningEmulator, client: httpx.Client, job_id: int
) -> Report:
    report = Report(scenario)
    try:
        job = wait_for_job(client, job_id, timeout=40)
    except AssertionError as unfinished:
        report.lost = True
        report.problems.append(str(unfinished))
        return report
    report.status = job["status"]
    report.error = job["error"]
    report.credit_cost = job["credit_cost"]
    report.expires_at = job["expires_at"]
    report.submissions = sum(
        1
        for upstream in list(emulator.emulator.jobs.values())
        if upstream.params.get("prompt") == scenario.prompt
    )
    served = set(emulator.emulator.served_images.values())
    indexes = [image["index"] for image in job["images"]]
    report.duplicate_images = len(indexes) - len(set(indexes))
    report.images_stored = len(set(indexes))
    for image in job["images"]:
        data = client.get(image["url"]).content
        digest = hashlib.sha256(data).hexdigest()
        if digest != image["sha256"] or digest not in served or len(data) != image["byte_size"]:
            report.corrupt_images += 1
            continue
        try:
            with PILImage.open(io.BytesIO(data)) as decoded:
                decoded.load()
        except OSError:
            report.corrupt_images += 1
    return report


def run_random_kills(
    workdir: Path, *, jobs: int = 4, kills: int = 3, seed: int = 7
) -> list[Report]:
    """SIGKILL the app at random instants while several jobs run; then let it finish."""
    chooser = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    with serve_emulator(job_seconds=1.0) as emulator:
        process = AppProcess(workdir / "data", emulator).start()
        scenarios = [
            Scenario(f"random kills {n}", Expect("completed", images=2), num_images=2)
            for n in range(jobs)
        ]
        with process.client() as client:
            ids = [
                client.post(
                    "/api/jobs", json={"prompt": s.prompt, "num_images": s.num_images}
                ).json()["id"]
                for s in scenarios
            ]
        for _ in range(kills):
            time.sleep(chooser.uniform(0.05, 1.2))  # a random instant, on purpose
            process.kill()
            process = AppProcess(workdir / "data", emulator).start()
        try:
            with process.client() as client:
                return [
                    _report(scenario, emulator, client, job_id)
                    for scenario, job_id in zip(scenarios, ids, strict=True)
                ]
        finally:
            process.stop()


def summarize(reports: list[Report]) -> tuple[str, bool]:
    """The one-line summary, and whether every run went as expected."""
    lost = sum(report.lost for report in reports)
    doubles = sum(max(0, report.submissions - 1) for report in reports)
    corrupt = sum(report.corrupt_images + report.duplicate_images for report in reports)
    unexpected = sum(1 for report in reports if report.check())
    line = (
        f"faults tried: {len(reports)}, jobs lost: {lost}, double submissions: {doubles}, "
        f"corrupt or partial images: {corrupt}, unexpected outcomes: {unexpected}"
    )
    return line, lost == doubles == corrupt == unexpected == 0


def main() -> int:
    reports: list[Report] = []
    with tempfile.TemporaryDirectory() as scratch:
        for number, scenario in enumerate(SCENARIOS):
            reports.append(run_scenario(scenario, Path(scratch) / f"s{number}"))
        reports.extend(run_random_kills(Path(scratch) / "random"))
    for report in reports:
        if problems := report.check():
            print(f"  {report.scenario.name}: {'; '.join(problems)}", file=sys.stderr)
    line, all_well = summarize(reports)
    print(line)
    return 0 if all_well else 1


if __name__ == "__main__":
    raise SystemExit(main())

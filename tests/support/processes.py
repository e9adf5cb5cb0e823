"""The app as a separate process, for tests that kill it with SIGKILL and start it again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.apps import CLIENT_TLS
from tests.support.databases import SQLITE, DatabaseChoice
from tests.support.emulators import TEST_KEY, RunningEmulator
from tests.support.waiting import wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class AppProcess:
    """`python -m app serve` against the emulator, with its own data dir and settings."""

    def __init__(
        self,
        data_dir: Path,
        emulator: RunningEmulator,
        *,
        database: DatabaseChoice = SQLITE,
        arguments: tuple[str, ...] = (),
        **settings: Any,
    ) -> None:
        self.arguments = arguments
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PIXELDOJO_", "PLAYGROUND_"))
        }
        self.env.update(
            {
                "PIXELDOJO_API_KEY": TEST_KEY,
                "PIXELDOJO_BASE_URL": emulator.base_url,
                "PIXELDOJO_RATE_LIMIT_PER_MINUTE": "0",
                "PLAYGROUND_DATA_DIR": str(data_dir),
                "PLAYGROUND_POLL_INITIAL_SECONDS": "0.1",
                "PLAYGROUND_POLL_MAX_SECONDS": "0.3",
                # Short leases: a killed worker's jobs are taken over within a second or two.
                "PLAYGROUND_LEASE_SECONDS": "1.5",
            }
        )
        self.env.update(database.environment())
        self.env.update({name.upper(): str(value) for name, value in settings.items()})
        self.process: subprocess.Popen[str] | None = None
        self.output = ""

    def start(self) -> AppProcess:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                *self.arguments,
            ],
            env=self.env,
            cwd=Path(self.env["PLAYGROUND_DATA_DIR"]).parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # One client for every poll: a new one each time would take CPU from the process
        # that is starting.
        with httpx.Client(base_url=self.url, timeout=2, verify=CLIENT_TLS) as probe:
            wait_until(lambda: self._healthy(probe), timeout=30, what="the app process to start")
        return self

    def _healthy(self, probe: httpx.Client) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the app exited: {self.process.communicate()[0]}")
        try:
            return probe.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or a power cut of the process."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.output += self.process.communicate(timeout=30)[0]
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        self.output += self.process.communicate(timeout=60)[0]
        self.process = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, verify=CLIENT_TLS)


class WorkerProcess:
    """`python -m app worker` against the emulator: polls and stores, serves nothing."""

    def __init__(self, app: AppProcess, *, data_dir: Path, concurrency: int = 8) -> None:
        self.env = {**app.env, "PLAYGROUND_DATA_DIR": str(data_dir)}
        self.data_dir = data_dir
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # What the worker says, kept in its data dir for a failing test's reader.
        self._log = (self.data_dir / "worker.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "worker",
                "--concurrency",
                str(self.concurrency),
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=self.data_dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def _closed(self) -> None:
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._closed()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait(timeout=60)
        self._closed()

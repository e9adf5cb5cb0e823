"""Running the command line as a person does: a process of its own, with standard error a
pipe (as in a script or a log) or a terminal (a pseudo-terminal, to see its progress)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def cli_env(**extra: str) -> dict[str, str]:
    """The environment without the developer's own playground settings (the test's own
    config folder comes from the isolated environment: XDG_CONFIG_HOME)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIXELDOJO_", "PLAYGROUND_"))
    }
    env.update(extra)
    return env


def run_cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env=env or cli_env(),
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env=env or cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def one_line_error(result: subprocess.CompletedProcess[str], *, code: int = 1) -> str:
    """The error: the last line on standard error, after any messages, with no traceback,
    and a non-zero exit."""
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, result
    assert lines[-1].startswith("seedream-playground"), result.stderr
    return lines[-1]


@dataclass
class OnTerminal:
    """What a command wrote to a terminal, with when each piece arrived."""

    returncode: int
    stdout: str
    pieces: list[tuple[float, str]]

    @property
    def text(self) -> str:
        return "".join(piece for _, piece in self.pieces)


def run_on_terminal(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 90
) -> OnTerminal:
    """Run a command with standard error on a pseudo-terminal (standard output a pipe)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env={**(env or cli_env()), "COLUMNS": "100"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    pieces: list[tuple[float, str]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    data = os.read(controller, 65536)
                except OSError:  # the terminal closed: the process has ended
                    break
                if not data:
                    break
                pieces.append((time.monotonic(), data.decode("utf-8", "replace")))
            elif process.poll() is not None:
                break
        else:
            process.kill()
            raise AssertionError(f"timed out after {timeout}s: {args}")
    finally:
        os.close(controller)
    assert process.stdout is not None
    with process.stdout:
        stdout = process.stdout.read().decode()
    return OnTerminal(process.wait(timeout=30), stdout, pieces)

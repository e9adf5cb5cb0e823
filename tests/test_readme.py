"""Every shell command the README shows, run in order as a newcomer would, against a demo
server started by the README's own first command: the README cannot promise what the app
does not do.

Commands are run as written, with three changes a test needs: the servers listen on a
free port (and are stopped once they answer), `grid` gets `--yes` (there is no terminal
to confirm on), and PixelDojo is the emulator wherever a command names a key. The
command line finds the demo server through `PLAYGROUND_SERVER`. Only `git clone` (the
network) and the Quickstart's installs (CI runs them: .ci/run) are not run here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cli import cli_env
from tests.support.emulators import serve_emulator
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
APP = f"{shlex.quote(sys.executable)} -m app"

pytestmark = pytest.mark.slow


def shell_commands(text: str) -> list[str]:
    """The commands of every ```sh block, in order (continued lines joined)."""
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def as_run_here(command: str) -> str:
    """The command with the clone's .venv/bin/ programs as this test's own."""
    command = re.sub(r"(?<![\w/])\.venv/bin/seedream-playground\b", APP, command)
    return re.sub(r"(?<![\w/])\.venv/bin/python\b", shlex.quote(sys.executable), command)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Servers:
    """The `serve` commands the README shows, each on a port of its own."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.running: list[subprocess.Popen[str]] = []

    def start(self, command: str, cwd: Path, *, data_dir: Path) -> str:
        words = shlex.split(as_run_here(command))
        assignments = {}
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            assignments[name] = value
        port = free_port()
        process = subprocess.Popen(
            [*words, "--port", str(port)],
            cwd=cwd,
            env={**self.env, **assignments, "PLAYGROUND_DATA_DIR": str(data_dir)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.running.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url, process), timeout=90, what=f"{command} to answer")
        return url

    def stop_all(self) -> list[str]:
        outputs = []
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                outputs.append(process.communicate(timeout=30)[0])
            except subprocess.TimeoutExpired:
                process.kill()
                outputs.append(process.communicate()[0])
        return outputs


def _answers(url: str, process: subprocess.Popen[str]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"the server stopped: {process.communicate()[0]}")
    try:
        return httpx.get(url + "/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def servers() -> Iterator[Servers]:
    held = Servers({})
    yield held
    held.stop_all()


# Some twenty commands, each a process of its own, and three servers: minutes on a busy machine.
@pytest.mark.timeout(600)
def test_every_shell_command_the_readme_shows_works_against_demo_mode(
    tmp_path: Path, servers: Servers
) -> None:
    commands = shell_commands(README)
    assert commands[0].startswith("git clone")
    work = tmp_path / "clone"
    work.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")
    with serve_emulator(api_keys=None) as emulator:
        env = cli_env(
            PIXELDOJO_BASE_URL=emulator.base_url,
            PIXELDOJO_RATE_LIMIT_PER_MINUTE="0",
            PLAYGROUND_DEMO_JOB_SECONDS="0.5",
        )
        servers.env = env
        demo_data = tmp_path / "demo-data"
        demo: str | None = None
        ran: list[str] = []
        skipped: list[str] = []
        for command in commands[1:]:
            last = command.split(" && ")[-1]
            if "pip install" in command and "seedream-playground serve" not in last:
                skipped.append(command)  # the contributors' install and suite: .ci/run
                continue
            if "seedream-playground serve" in last:
                data = demo_data if demo is None else tmp_path / f"data-{len(servers.running)}"
                url = servers.start(last, work, data_dir=data)
                demo = demo or url
                ran.append(last)
                continue
            assert demo is not None, f"{command} comes before any server"
            if re.search(r"seedream-playground grid\b", command):
                command += " --yes"
            result = subprocess.run(
                ["bash", "-c", as_run_here(command)],
                cwd=work,
                env={**env, "PLAYGROUND_SERVER": demo, "PLAYGROUND_DATA_DIR": str(demo_data)},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert result.returncode == 0, (command, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr, (command, result.stderr)
            ran.append(command)
        outputs = servers.stop_all()
    assert all("Traceback" not in output for output in outputs), outputs
    # What the commands made is where the README says it goes.
    assert list((work / "shots").glob("*.png"))
    assert (work / "catalogue" / "catalogue.results.csv").is_file()
    assert (work / "prompts" / "prompts.results.csv").is_file()
    assert list(work.glob("seedream-grid-*.png")), "the contact sheet"
    assert len(skipped) == 1 and skipped[0] in (ROOT / ".ci" / "run").read_text()
    assert any("doctor" in command for command in ran)
    assert len([command for command in ran if "serve" in command]) >= 2
    assert not os.environ.get("PLAYGROUND_SERVER"), "the test's own environment is untouched"

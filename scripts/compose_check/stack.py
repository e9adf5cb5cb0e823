"""Step 4: the host's services and the two compose projects."""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from .run import (
    COMPOSE_FILE,
    HEALTHY_WITHIN_SECONDS,
    JOB_SECONDS,
    OVERRIDE_FILE,
    PROJECTS,
    ROOT,
    CheckFailed,
    Run,
    free_port,
    indent,
    stop_process,
    url_answers,
    wait_until,
)


class Stack:
    """The host's services and the two compose projects."""

    def __init__(self, run: Run, base: str) -> None:
        self.run = run
        self.base = base
        self.key = "pd_compose_check_" + secrets.token_hex(12)
        self.password = secrets.token_hex(16)
        self.admin_password = secrets.token_urlsafe(16)
        self.web_ports = (free_port(), free_port())
        self.health_ports = (free_port(), free_port())

    def start_host_services(self) -> None:
        from tests.support.postgres import PostgresCluster, find_bin_dir
        from tests.support.s3server import AWS_ENVIRONMENT, S3Server

        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise CheckFailed("PostgreSQL server binaries not found (apt install postgresql)")
        self.postgres = PostgresCluster.start_new(bin_dir)
        self.run.later("stop PostgreSQL", self.postgres.stop)
        with psycopg.connect(self.postgres.url(), autocommit=True) as connection:
            connection.execute(f"CREATE ROLE playground LOGIN PASSWORD '{self.password}'")
            connection.execute("CREATE DATABASE playground OWNER playground")
        self.database_url = (
            f"postgresql://playground:{self.password}@127.0.0.1:{self.postgres.port}/playground"
        )
        self.s3 = S3Server.start()
        self.run.later("stop the S3 server", self.s3.stop)
        self.aws = AWS_ENVIRONMENT
        port = free_port()
        log = (self.run.work / "emulator.log").open("w")
        self.emulator = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "seedream-playground"),
                "emulator",
                "--host=127.0.0.1",
                f"--port={port}",
                f"--job-seconds={JOB_SECONDS}",
                f"--key={self.key}",
                "--log-level=warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def stop_emulator() -> None:
            stop_process(self.emulator)
            log.close()

        self.run.later("stop the emulator", stop_emulator)
        self.emulator_url = f"http://127.0.0.1:{port}/api/v1"
        wait_until(
            "the emulator", lambda: url_answers(self.emulator_url + "/models", self.key), timeout=30
        )
        self.run.say(
            f"on the host: PostgreSQL :{self.postgres.port}, S3 (moto) :{self.s3.port}, "
            f"the emulator :{port} ({JOB_SECONDS:g} s jobs)"
        )

    def env(self, project: int) -> dict[str, str]:
        """The host's environment for compose: what the README has a team set, and the
        ports compose.ci.yaml reads."""
        return {
            **self.run.docker_env,
            "PIXELDOJO_API_KEY": self.key,
            "PIXELDOJO_BASE_URL": self.emulator_url,
            "PIXELDOJO_RATE_LIMIT_PER_MINUTE": "0",
            "POSTGRES_PASSWORD": self.password,
            "COMPOSE_PROFILES": "minio",
            "AWS_ACCESS_KEY_ID": self.aws["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": self.aws["AWS_SECRET_ACCESS_KEY"],
            "AWS_REGION": self.aws["AWS_DEFAULT_REGION"],
            "PLAYGROUND_BLOB_URL": "s3://playground/gallery",
            "PLAYGROUND_S3_ENDPOINT_URL": self.s3.endpoint_url,
            "PLAYGROUND_METRICS": "true",
            "CHECK_BASE_IMAGE": self.base,
            "CHECK_POSTGRES_PORT": str(self.postgres.port),
            "CHECK_S3_PORT": str(self.s3.port),
            "CHECK_WEB_PORT_1": str(self.web_ports[project]),
            "CHECK_WORKER_HEALTH_PORT_1": str(self.health_ports[project]),
        }

    def compose(
        self, project: int, *arguments: str, **options: Any
    ) -> subprocess.CompletedProcess[str]:
        return self.run.run(
            [
                "docker-compose",
                f"--project-name={PROJECTS[project]}",
                f"--file={COMPOSE_FILE}",
                f"--file={OVERRIDE_FILE}",
                *arguments,
            ],
            env=self.env(project),
            **options,
        )

    def up(self) -> None:
        for project in (1, 0):
            self.run.later(f"compose down {PROJECTS[project]}", self._down(project))
        # The README's first step: the first admin, which turns sign-in on.
        self.compose(
            0,
            "run",
            "--rm",
            "-T",
            "web",
            "seedream-playground",
            "users",
            "add",
            "alice",
            "--admin",
            "--password-stdin",
            input=self.admin_password + "\n",
            quiet=True,
        )
        # Web containers with `run`: it publishes no port (compose.yaml's ports, on
        # loopback, cannot be bound under host networking, and `up` would refuse them).
        # Project b shares project a's database and bucket, as scaled services would.
        self.compose(0, "up", "--detach", "--no-build", "db", "minio", "minio-bucket", "worker")
        self.compose(0, "run", "--detach", "--no-deps", "web", quiet=True)
        self.compose(1, "up", "--detach", "--no-build", "--no-deps", "worker")
        self.compose(1, "run", "--detach", "--no-deps", "web", quiet=True)

    def _down(self, project: int) -> Callable[[], None]:
        def down() -> None:
            if self.run.own_engine:  # stopping the daemon stops them; its data root goes
                for container in self.containers(project, running=False).values():
                    self.run.docker_cmd("rm", "--force", container, check=False, quiet=True)
                return
            self.compose(
                project, "down", "--volumes", "--remove-orphans", "--timeout=10", check=False
            )
            # `run`'s containers too, whatever this compose's `down` does with them.
            for container in self.containers(project, running=False).values():
                self.run.docker_cmd("rm", "--force", "--volumes", container, check=False)

        return down

    def containers(self, *projects: int, running: bool = True) -> dict[str, str]:
        """The containers of the projects (both unless named), by name: their ids."""
        found: dict[str, str] = {}
        for project in projects or (0, 1):
            listed = self.run.docker_cmd(
                "ps",
                *(() if running else ("--all",)),
                "--filter",
                f"label=com.docker.compose.project={PROJECTS[project]}",
                "--format",
                "{{.Names}} {{.ID}}",
                quiet=True,
            )
            for line in listed.stdout.splitlines():
                name, container = line.split()
                found[name] = container
        return found

    def wait_healthy(self) -> dict[str, str]:
        def all_healthy() -> dict[str, str] | None:
            states: dict[str, str] = {}
            for name, container in self.containers(running=False).items():
                state = self.run.docker_cmd(
                    "inspect",
                    "--format",
                    "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}} "
                    "{{.State.ExitCode}}",
                    container,
                    quiet=True,
                ).stdout.split()
                states[name] = " ".join(state)
                if "minio-bucket" in name:
                    if state[0] == "exited" and state[-1] != "0":
                        raise CheckFailed(f"{name} failed: {self.logs(container)}")
                elif state[0] in ("exited", "dead"):
                    raise CheckFailed(f"{name} stopped: {self.logs(container)}")
            unhealthy = {n: s for n, s in states.items() if "minio-bucket" not in n}
            if len(unhealthy) == 6 and all(" healthy" in s for s in unhealthy.values()):
                return states
            return None

        states: dict[str, str] = wait_until(
            "every container to be healthy", all_healthy, HEALTHY_WITHIN_SECONDS, 2
        )
        for name, state in sorted(states.items()):
            status, *health, code = state.split()
            shown = f"exited {code}" if status == "exited" else f"{status} {' '.join(health)}"
            self.run.say(f"  {name}: {shown}")
        return states

    def logs(self, container: str) -> str:
        result = self.run.docker_cmd("logs", "--tail=40", container, check=False, quiet=True)
        return indent(result.stdout + result.stderr)

    # -- the probes, the jobs, the kill --

    def check_probes(self) -> None:
        for port in (*self.web_ports, *self.health_ports):
            answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
            if answer.status_code != 200:
                raise CheckFailed(
                    f"/readyz on :{port} answered {answer.status_code}: {answer.text}"
                )
            checks = answer.json()["checks"]
            self.run.say(
                f"  :{port}/readyz 200: " + "; ".join(f"{k}: {v}" for k, v in checks.items())
            )

    def sign_in(self) -> str:
        """An API token of the admin the README's step made, through web process 1."""
        same_origin = {"Sec-Fetch-Site": "same-origin"}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{self.web_ports[0]}", headers=same_origin, timeout=30
        ) as client:
            signed = client.post(
                "/sign-in", data={"name": "alice", "password": self.admin_password, "next": "/"}
            )
            if signed.status_code != 303:
                raise CheckFailed(f"sign-in answered {signed.status_code}: {signed.text[:300]}")
            made = client.post("/api/tokens", json={"name": "compose check"})
            if made.status_code != 201:
                raise CheckFailed(f"making a token answered {made.status_code}: {made.text}")
            token: str = made.json()["token"]
            return token

    def client(self, web: int, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.web_ports[web]}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )

    def worker_id(self, container: str) -> str:
        def said() -> str | None:
            logs = self.run.docker_cmd("logs", container, check=False, quiet=True)
            found = re.search(r"worker (\S+): polling up to", logs.stdout + logs.stderr)
            return found.group(1) if found else None

        found: str = wait_until("the worker to say its id", said, timeout=60)
        return found

    def held_by(self, worker_id: str) -> list[int]:
        with psycopg.connect(self.database_url) as connection:
            rows = connection.execute(
                "SELECT id FROM jobs WHERE lease_owner = %s AND lease_expires_at > now()"
                " AND status IN ('pending', 'downloading') ORDER BY id",
                (worker_id,),
            ).fetchall()
        return [row[0] for row in rows]

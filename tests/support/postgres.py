"""A throwaway PostgreSQL cluster on loopback, for the tests and the benchmarks.

It uses the server binaries of Debian's `postgresql` package (`initdb`, `pg_ctl`),
started in a temporary folder on a free port, listening on 127.0.0.1 only, with
trust authentication (nothing outside this machine can reach it). PostgreSQL
refuses to run as root, so when we are root the server runs as the `postgres`
user the package creates. Each test gets a database of its own.

Durability is traded for speed (`fsync=off`): the tests kill the app's processes,
never the database server.

The server outlives the process that started it only until a watchdog notices: a run
killed before its clean-up (SIGKILL, a lost terminal) leaves no server behind, which
matters when each of the suite's worker processes starts one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg

# Where Debian puts each installed major version's server binaries.
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_USER = "postgres"
# A free port is found by binding port 0 and letting it go; another process (a second
# test worker, a client's outgoing connection) may take it before the server does.
START_ATTEMPTS = 3
# Stops the server and removes its folder once the process that started it ($1) is gone;
# run in a session of its own, so a Ctrl-C meant for the tests does not end it first.
WATCHDOG_SCRIPT = """
while kill -0 "$1" 2>/dev/null; do sleep 1; done
shift
"$@" >/dev/null 2>&1
rm -rf "$WATCHDOG_ROOT"
"""


def find_bin_dir() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`, newest major version first; None if absent."""
    configured = os.environ.get("PLAYGROUND_PG_BIN")
    if configured:
        return Path(configured)
    candidates = sorted(
        (path.parent for path in Path("/").glob(DEBIAN_BIN_GLOB.lstrip("/") + "/initdb")),
        key=lambda folder: _major_version(folder),
        reverse=True,
    )
    if candidates:
        return candidates[0]
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def _major_version(bin_dir: Path) -> int:
    match = re.search(r"/(\d+)/bin$", str(bin_dir))
    return int(match.group(1)) if match else 0


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresCluster:
    """One running server; `create_database()` hands out fresh, empty databases."""

    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self.data_dir = root / "data"
        self.socket_dir = root / "socket"
        self.log_file = root / "server.log"
        self._watchdog: subprocess.Popen[bytes] | None = None

    @classmethod
    def start_new(cls, bin_dir: Path) -> PostgresCluster:
        for attempt in range(1, START_ATTEMPTS + 1):
            # Not under pytest's tmp_path: that is private to root (0700), and the server
            # may run as the postgres user.
            root = Path(tempfile.mkdtemp(prefix="playground-pg-"))
            root.chmod(0o755)
            cluster = cls(bin_dir, root, _free_port())
            try:
                cluster._start()
            except RuntimeError as error:
                cluster._remove_files()
                if attempt == START_ATTEMPTS or not _port_was_taken(error):
                    raise
                continue
            except BaseException:
                cluster._remove_files()
                raise
            cluster._watch_over()
            return cluster
        raise AssertionError("unreachable")

    def _as_server_user(self, command: Sequence[str]) -> list[str]:
        if os.geteuid() != 0:
            return list(command)
        return ["runuser", "-u", SERVER_USER, "--", *command]

    def _run(self, command: Sequence[str], *, as_server_user: bool = True) -> None:
        if as_server_user:
            command = self._as_server_user(command)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{log[-2000:]}"
            )

    def _pg_ctl_stop(self) -> list[str]:
        return self._as_server_user(
            [
                str(self.bin_dir / "pg_ctl"),
                "--pgdata",
                str(self.data_dir),
                "--mode",
                "immediate",
                "--wait",
                "stop",
            ]
        )

    def _watch_over(self) -> None:
        """Start the watchdog that stops this server if this process dies without `stop()`."""
        self._watchdog = subprocess.Popen(
            ["sh", "-c", WATCHDOG_SCRIPT, "watchdog", str(os.getpid()), *self._pg_ctl_stop()],
            env={**os.environ, "WATCHDOG_ROOT": str(self.root)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _start(self) -> None:
        for folder in (self.data_dir, self.socket_dir):
            folder.mkdir()
        if os.geteuid() == 0:
            for path in (self.data_dir, self.socket_dir, self.root):
                shutil.chown(path, SERVER_USER, SERVER_USER)
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                SERVER_USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.socket_dir}",
                "-c listen_addresses=127.0.0.1",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "--pgdata",
                str(self.data_dir),
                "--log",
                str(self.log_file),
                "--options",
                options,
                "--wait",
                "--timeout",
                "60",
                "start",
            ]
        )

    def pause(self) -> None:
        """Stop the server as a crash would, keeping its files: `resume` starts it again on the
        same port, with everything that was committed (for tests of the app while its
        database is down; a cluster of the test's own, never the run's shared one)."""
        self._run(self._pg_ctl_stop(), as_server_user=False)

    def resume(self) -> None:
        self._pg_ctl_start()

    def url(self, database: str = "postgres") -> str:
        """The URL a user would put in PLAYGROUND_DATABASE_URL."""
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None, *, template: str = "template0") -> str:
        """A new database, empty or a copy of `template`; returns its URL."""
        name = name or "test_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def empty_database(self, url: str) -> None:
        """Delete every row of a migrated database and restart its id sequences, keeping
        the schema: as good as a fresh copy, in a fraction of the time a copy takes.
        Connections left open by an earlier test are closed first."""
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            tables = [
                row[0]
                for row in connection.execute(
                    "SELECT quote_ident(tablename) FROM pg_tables"
                    " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            ]
            if tables:
                connection.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        try:
            self._run(self._pg_ctl_stop(), as_server_user=False)
        finally:
            self._remove_files()

    def _remove_files(self) -> None:
        # The server's files belong to the postgres user; root may remove them.
        deadline = time.monotonic() + 10
        while self.root.exists() and time.monotonic() < deadline:
            shutil.rmtree(self.root, ignore_errors=True)


def _port_was_taken(error: RuntimeError) -> bool:
    return "could not bind" in str(error) or "Address already in use" in str(error)

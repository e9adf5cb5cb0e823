"""Shared fixtures: a PixelDojo emulator, apps served over loopback HTTP, and real databases:
a SQLite file per test, or (for the tests marked `both_databases`) a PostgreSQL database
per test as well, on a server the run starts itself (tests/support/postgres.py)."""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col

from app.core.clock import calendar_at
from app.core.config import Settings
from app.core.loopback import LoopbackServer
from app.emulator import API_PREFIX, Emulator, EmulatorConfig
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, utcnow
from app.web.factory import create_app

# Fixtures kept beside the helpers they go with, offered to every test, and the tiers.
pytest_plugins = ("tests.support.team", "tests.support.tiers", "pytester")

# Recognisable, so a test can look for it anywhere it must not be.
TEST_KEY = "pd_test_" + secrets.token_hex(16)
# The day tests whose expectations depend on the date run on (`fixed_calendar`): noon in
# the middle of a month and of a year, so no test crosses a day, a month or a year; in the
# past, as app/core/clock.py asks.
FIXED_DAY = datetime(2025, 6, 16, 12, 0, tzinfo=UTC)


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """How many worker processes `--numprocesses auto` (pyproject.toml) starts: one per core
    for the whole suite, at most one per file named, and none (all in this process) for a
    single file, where starting workers would cost more than they save.
    PYTEST_XDIST_AUTO_NUM_WORKERS, when set, decides instead."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    cores = len(os.sched_getaffinity(0))
    named = [config.invocation_params.dir / arg.split("::")[0] for arg in config.args]
    if named and all(path.is_file() for path in named):
        cores = min(cores, len(set(named)))
    return cores if cores > 1 else 0


# The files that take longest (a minute or more each), started first when the suite runs in
# several worker processes, so that the last file a worker takes is a short one instead of
# a worker finishing alone. Only the order changes; a file missing here is merely later.
LONGEST_FILES = (
    "test_fault_matrix.py",
    "test_reliability.py",
    "test_multiprocess.py",
    "test_team.py",
    "test_remix.py",
    "test_browser_pages.py",
    "test_fuzz.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not a worker of a parallel run
        return
    rank = {name: number for number, name in enumerate(LONGEST_FILES)}
    # Stable: within a file, and among the other files, the order stays as collected.
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FILES)))


@pytest.fixture(autouse=True, scope="session")
def _quick_password_hashing() -> Iterator[None]:
    """Argon2id at its lowest cost for passwords hashed in this process: at argon2-cffi's
    default cost (64 MiB, four lanes) each hash takes a core for a tenth of a second or more,
    and the tests hash hundreds. They check who gets in, not how costly a guess is; apps
    started as processes of their own hash at the default cost."""
    from argon2 import PasswordHasher

    from app.features.people import accounts

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        )
        yield


@pytest.fixture
def fixed_calendar() -> Iterator[datetime]:
    """The app's clock (in this process) running from FIXED_DAY, for a test whose expectations
    depend on the date: a day's spend, the trash's dates, today's gallery. Name it first (or
    in `usefixtures`), so the apps it starts stamp everything on that day."""
    with calendar_at(FIXED_DAY):
        yield FIXED_DAY


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the developer's own key, settings or tokens, nor a `.env` in the
    checkout."""
    for name in list(os.environ):
        if name.startswith(("PIXELDOJO_", "PLAYGROUND_", "AWS_")):
            monkeypatch.delenv(name)
    # The command line's own config folder (where `login` keeps tokens): the test's.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)


@dataclass
class RunningEmulator:
    emulator: Emulator
    url: str

    @property
    def base_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def config(self) -> EmulatorConfig:
        return self.emulator.config


@contextmanager
def serve_emulator(**config: Any) -> Iterator[RunningEmulator]:
    options: dict[str, Any] = {
        "job_seconds": 0.3,
        "strict": True,  # the client must never need the lenient mode
        "api_keys": frozenset({TEST_KEY}),
    }
    options.update(config)
    emulator = Emulator(EmulatorConfig(**options))
    with LoopbackServer(emulator.app) as server:
        yield RunningEmulator(emulator, server.url)


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with serve_emulator() as running:
        yield running


@dataclass(frozen=True)
class DatabaseChoice:
    """The database a test's apps use: the SQLite file in their data dir (url None), or a
    PostgreSQL database of the test's own, already migrated."""

    kind: str
    url: str | None = None

    def open(self, data_dir: Path) -> Database:
        """The database an app with this data dir uses, opened directly."""
        if self.url is None:
            return Database.at_path(data_dir / "playground.db")
        return Database(self.url)

    def environment(self) -> dict[str, str]:
        """What an app started as a process needs to use it."""
        return {} if self.url is None else {"PLAYGROUND_DATABASE_URL": self.url}

    def use_in_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point commands run in this process (`cli.main`) at this database."""
        if self.url is None:
            monkeypatch.delenv("PLAYGROUND_DATABASE_URL", raising=False)
        else:
            monkeypatch.setenv("PLAYGROUND_DATABASE_URL", self.url)


SQLITE = DatabaseChoice("sqlite")
DATABASE_KINDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_databases` run once on SQLite and once on PostgreSQL; the rest on
    SQLite alone. `database` is a test's own; `module_database` is shared by a module's
    tests (for a module-scoped app)."""
    if not metafunc.definition.get_closest_marker("both_databases"):
        return
    wanted = [name for name in ("database", "module_database") if name in metafunc.fixturenames]
    if len(wanted) > 1:
        raise pytest.UsageError(f"{metafunc.definition.nodeid} uses {wanted}: pick one")
    if wanted == ["database"]:
        metafunc.parametrize("database", DATABASE_KINDS, indirect=True)
    elif wanted == ["module_database"]:
        metafunc.parametrize("module_database", DATABASE_KINDS, indirect=True, scope="module")


@pytest.fixture
def database(request: pytest.FixtureRequest) -> DatabaseChoice:
    """The database this test's apps use (see `pytest_generate_tests`)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return SQLITE
    first, _ = request.getfixturevalue("postgres_test_databases")
    request.getfixturevalue("postgres_cluster").empty_database(first)
    return DatabaseChoice("postgresql", first)


@pytest.fixture
def db(tmp_path: Path, database: DatabaseChoice) -> Iterator[Database]:
    """A migrated database of the test's kind (see `database`), disposed of afterwards."""
    opened = database.open(tmp_path)
    opened.migrate()
    yield opened
    opened.dispose()


@pytest.fixture
def postgres_database(
    postgres_cluster: Any, postgres_test_databases: tuple[str, str]
) -> DatabaseChoice:
    """For tests of what only PostgreSQL does: its migrated, emptied test database."""
    postgres_cluster.empty_database(postgres_test_databases[0])
    return DatabaseChoice("postgresql", postgres_test_databases[0])


@pytest.fixture
def other_database(request: pytest.FixtureRequest, database: DatabaseChoice) -> DatabaseChoice:
    """A second, separate database of the same kind, for a second gallery (a SQLite one
    lives in the other app's data dir)."""
    if database.url is None:
        return SQLITE
    _, second = request.getfixturevalue("postgres_test_databases")
    request.getfixturevalue("postgres_cluster").empty_database(second)
    return DatabaseChoice("postgresql", second)


@pytest.fixture(scope="module")
def module_database(request: pytest.FixtureRequest) -> Iterator[DatabaseChoice]:
    """A database of its own for a module's shared app."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield SQLITE
        return
    cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database(template=request.getfixturevalue("postgres_template"))
    try:
        yield DatabaseChoice("postgresql", url)
    finally:
        cluster.drop_database(url.rsplit("/", 1)[1])


def make_settings(
    data_dir: Path,
    emulator: RunningEmulator | None,
    *,
    database: DatabaseChoice = SQLITE,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "poll_initial_seconds": 0.1,
        "poll_max_seconds": 0.3,
        "demo_job_seconds": 0.3,
        # The emulator has no rate limit; tests of our own limiter set one.
        "rate_limit_per_minute": 0,
    }
    if emulator is not None:
        values["pixeldojo_api_key"] = TEST_KEY
        values["pixeldojo_base_url"] = emulator.base_url
    if database.url is not None:
        values["database_url"] = database.url
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class RunningApp:
    url: str
    client: httpx.Client
    settings: Settings


# What a current browser sends with a request from the app's own pages; tests of
# cross-site protection use clients without it.
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}

# One TLS context for the tests' frequent clients (`verify=CLIENT_TLS`): otherwise httpx builds
# one per client, loading the CA bundle, tens of milliseconds of CPU each. The tests speak
# plain HTTP to 127.0.0.1, so it never verifies anything.
CLIENT_TLS = ssl.create_default_context()


@contextmanager
def serve_app(settings: Settings) -> Iterator[RunningApp]:
    with (
        LoopbackServer(create_app(settings)) as server,
        httpx.Client(
            base_url=server.url, timeout=30, headers=SAME_ORIGIN, verify=CLIENT_TLS
        ) as client,
    ):
        yield RunningApp(server.url, client, settings)


class InProcessClient:
    """A synchronous client for an app driven in-process (httpx's ASGI transport): the
    requests run on the event loop of a portal thread, where the app's lifespan runs too."""

    def __init__(self, portal: Any, client: httpx.AsyncClient) -> None:
        self._portal = portal
        self._client = client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self._portal.call(
            lambda: self._client.request(method, url, **kwargs)
        )
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


@contextmanager
def in_process(
    settings: Settings, *, peer: str = "127.0.0.1", headers: dict[str, str] | None = None
) -> Iterator[InProcessClient]:
    """The app driven in-process, its lifespan run, for tests where a real server is not the
    point: requests come from `peer` to http://127.0.0.1, with `headers` (by default what a
    browser sends from the app's own pages)."""
    from anyio.from_thread import start_blocking_portal

    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        client = httpx.AsyncClient(
            transport=transport,
            base_url="http://127.0.0.1",
            headers=SAME_ORIGIN if headers is None else headers,
            timeout=30,
        )
        try:
            yield InProcessClient(portal, client)
        finally:
            portal.call(client.aclose)


@pytest.fixture
def settings(tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice) -> Settings:
    return make_settings(tmp_path / "data", emulator, database=database)


@pytest.fixture
def app(settings: Settings) -> Iterator[RunningApp]:
    with serve_app(settings) as running:
        yield running


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def end_job_elsewhere(
    db: Database, job_id: int, status: JobStatus, error: str | None = None
) -> None:
    """What another process ending a job writes (its worker held the lease, not ours)."""
    now = utcnow()
    with db.write() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id) == job_id)
            .values(
                status=status,
                error=error,
                finished_at=now,
                updated_at=now,
                next_poll_at=None,
                lease_owner=None,
                lease_expires_at=None,
            )
        )


def wait_for_job(
    client: httpx.Client | InProcessClient, job_id: int, *, timeout: float = 20.0
) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").json()
        return job if job["finished"] else None

    result: dict[str, Any] = wait_until(finished, timeout=timeout, what=f"job {job_id} to finish")
    return result


def chromium_path() -> str | None:
    return (
        os.environ.get("PLAYGROUND_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """One PostgreSQL server for the whole run (tests/support/postgres.py); skipped where absent.

    CI sets PLAYGROUND_REQUIRE_POSTGRES=1, so there a missing server fails instead.
    """
    from tests.support.postgres import PostgresCluster, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL server binaries not found (apt install postgresql)"
        if os.environ.get("PLAYGROUND_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = PostgresCluster.start_new(bin_dir)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: Any) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database of this test's own."""
    url: str = postgres_cluster.create_database()
    try:
        yield url
    finally:
        postgres_cluster.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture(scope="session")
def postgres_template(postgres_cluster: Any) -> str:
    """A database migrated to the newest revision that nothing connects to again, so it
    can be copied: the other test databases start as copies of it."""
    name = "playground_template"
    db = Database(postgres_cluster.create_database(name))
    try:
        db.migrate()
    finally:
        db.dispose()
    return name


@pytest.fixture(scope="session")
def postgres_test_databases(postgres_cluster: Any, postgres_template: str) -> tuple[str, str]:
    """Two migrated databases for the whole run, emptied for each test that uses one:
    emptying takes a fraction of the second a new database takes."""
    return (
        postgres_cluster.create_database("playground_tests", template=postgres_template),
        postgres_cluster.create_database("playground_tests_other", template=postgres_template),
    )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """One S3-compatible server (moto's server mode, tests/support/s3server.py) for the
    whole run."""
    from tests.support.s3server import S3Server

    server = S3Server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class S3Bucket:
    endpoint_url: str
    name: str

    def settings(self, prefix: str = "gallery") -> dict[str, Any]:
        """The settings that put a gallery's images in this bucket."""
        return {"blob_url": f"s3://{self.name}/{prefix}", "s3_endpoint_url": self.endpoint_url}


@pytest.fixture
def s3_bucket(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A new, empty bucket of this test's own, with the AWS variables that reach it."""
    from tests.support.s3server import AWS_ENVIRONMENT

    for name, value in AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return S3Bucket(s3_server.endpoint_url, s3_server.create_bucket())


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in the
    # main thread while it is open, and the async tests need that thread's loop free.
    from tests.support.browser import launch_browser

    yield from launch_browser()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a worker process of a parallel run: hand the screenshots' folder to the main process,
    which prints the summary."""
    from tests.support.browser import SCREENSHOTS_KEY

    workeroutput = getattr(session.config, "workeroutput", None)
    folder = session.config.stash.get(SCREENSHOTS_KEY, None)
    if workeroutput is not None and folder is not None:
        workeroutput["screenshots"] = str(folder)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist's: a worker is done; keep the screenshots' folder it reported."""
    from tests.support.browser import SCREENSHOTS_KEY

    folder = getattr(node, "workeroutput", {}).get("screenshots")
    if folder is not None:
        node.config.stash[SCREENSHOTS_KEY] = Path(folder)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say where the browser tests saved their screenshots, so a reviewer can look at them."""
    from tests.support.browser import SCREENSHOTS_KEY

    folder = config.stash.get(SCREENSHOTS_KEY, None)
    if folder is not None:
        terminalreporter.write_line(f"Screenshots of every page: {folder}")

"""Shared fixtures: a PixelDojo emulator, apps served over loopback HTTP, and real databases:
a SQLite file per test, or (for the tests marked `both_databases`) a PostgreSQL database
per test as well, on a server the run starts itself (tests/support/postgres.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from app.core.clock import calendar_at
from app.core.config import Settings
from app.storage.db.engine import Database
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.clock import FIXED_DAY
from tests.support.databases import DATABASE_KINDS, SQLITE, DatabaseChoice
from tests.support.emulators import RunningEmulator, serve_emulator
from tests.support.stores import S3Bucket

# Fixtures kept beside the helpers they go with, offered to every test, and the tiers.
pytest_plugins = (
    "tests.support.team",
    "tests.support.gallery_made",
    "tests.support.hostile_exports",
    "tests.support.seeded_gallery",
    "tests.support.tiers",
    "pytester",
)


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


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with serve_emulator() as running:
        yield running


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


@pytest.fixture
def settings(tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice) -> Settings:
    return make_settings(tmp_path / "data", emulator, database=database)


@pytest.fixture
def app(settings: Settings) -> Iterator[RunningApp]:
    with serve_app(settings) as running:
        yield running


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

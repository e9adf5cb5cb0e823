"""The fast tier stays fast: tests are put in a heavy tier by what they use, with nobody
marking them, and a fast test that uses a heavy fixture after all fails, saying so
(tests/support/tiers.py). Each check runs a small suite of its own through pytester."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiers import HEAVY_FIXTURES, SLOW_FILES

CONFTEST = """
from pathlib import Path

import pytest

pytest_plugins = ("tests.support.tiers",)

@pytest.fixture
def browser():
    return "chromium"

@pytest.fixture
def postgres_cluster():
    return "a server"

@pytest.fixture
def database(request):
    return getattr(request, "param", "sqlite")

def pytest_generate_tests(metafunc):
    if "database" in metafunc.fixturenames:
        metafunc.parametrize("database", ["sqlite", "postgresql"], indirect=True)
"""

SUITE = '''
from pathlib import Path

import pytest

class AppProcess:
    """Stands in for tests/support/processes.py's."""

def start_app():
    return AppProcess()

@pytest.fixture
def served():
    return start_app()

def test_plain():
    assert True

def test_in_chromium(browser):
    assert browser

def test_on_a_database(database):
    assert database

def test_with_a_process_of_its_own():
    assert start_app()

def test_with_a_fixture_that_starts_one(served):
    assert served

class PostgresCluster:
    """Stands in for tests/support/postgres.py's."""

def test_with_a_server_of_its_own():
    assert PostgresCluster()
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def collected(pytester: pytest.Pytester, tier: str) -> set[str]:
    result = pytester.runpytest("-p", "no:xdist", "--collect-only", "-q", "-m", tier)
    return {line.split("::", 1)[1] for line in result.outlines if "::" in line}


def test_tests_are_put_in_a_tier_by_what_they_use(suite: pytest.Pytester) -> None:
    assert collected(suite, "fast") == {"test_plain", "test_on_a_database[sqlite]"}
    assert collected(suite, "browser") == {"test_in_chromium"}
    assert collected(suite, "postgres") == {
        "test_on_a_database[postgresql]",
        "test_with_a_server_of_its_own",
    }
    assert collected(suite, "slow") == {
        "test_with_a_process_of_its_own",
        "test_with_a_fixture_that_starts_one",
    }


def test_a_fast_test_that_asks_for_a_heavy_fixture_by_name_fails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        test_sneaky="""
        def test_asks_at_run_time(request):
            assert request.getfixturevalue("postgres_cluster")
        """
    )
    result = pytester.runpytest("-p", "no:xdist", "-m", "fast")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*is in the fast tier but used postgres_cluster*"])


def test_every_heavy_fixture_names_a_declared_marker(pytestconfig: pytest.Config) -> None:
    declared = {line.split(":")[0] for line in pytestconfig.getini("markers")}
    assert {"fast", *HEAVY_FIXTURES.values()} <= declared


def test_every_file_kept_out_of_the_fast_tier_exists() -> None:
    tests = Path(__file__).resolve().parent
    assert sorted(name for name in SLOW_FILES if not (tests / name).is_file()) == []

"""The suite's tiers, marked at collection so nobody has to remember to mark a test:
`browser` (headless Chromium), `postgres` (the PostgreSQL server the run starts) and
`slow` (processes of their own: apps, workers, the command line, moto's S3 server) by what
a test uses, and `fast` on everything else. `pytest -m fast` is the tier to run first.

What a test uses is read from its fixtures, its parameters and the names its code (and its
fixtures', and the module's helpers it calls) refers to. A fixture asked for by name at run
time (`request.getfixturevalue`) escapes that reading, so a fast test that ends up using a
heavy fixture fails, naming it: the tier stays honest instead of quietly growing slow.
Plugin of tests/conftest.py."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from types import CodeType, ModuleType
from typing import Any

import pytest

# The fixtures that start Chromium, PostgreSQL or a server process, and the tier each means.
HEAVY_FIXTURES = {
    "browser": "browser",
    "postgres_cluster": "postgres",
    "postgres_template": "postgres",
    "postgres_test_databases": "postgres",
    "postgres_url": "postgres",
    "postgres_database": "postgres",
    "s3_server": "slow",
    "s3_bucket": "slow",
}
# Parameters that put a test on PostgreSQL (`both_databases`, and the stores' own kinds).
POSTGRES_PARAMETERS = frozenset({"postgresql", "postgres"})
# Names whose use means a process of its own: an app or worker served as one, the command
# line as a person runs it, anything run through `subprocess`.
PROCESS_NAMES = frozenset(
    {"AppProcess", "WorkerProcess", "run_cli", "start_cli", "run_on_terminal", "subprocess"}
)
# Names whose use means a PostgreSQL server of the test's own.
POSTGRES_NAMES = frozenset({"PostgresCluster"})
HEAVY_TIERS = ("browser", "postgres", "slow")
# Files that use nothing heavy but take too long for the fast tier (measured with
# `pytest -m fast --durations=0`): jobs run to the end through the poller and its
# timers, fuzzing, restarts, whole teams signed in. They run with the rest, as `slow`.
SLOW_FILES = frozenset(
    {
        "test_at_most_once.py",
        "test_bench.py",
        "test_canvas.py",
        "test_contract_agreement.py",
        "test_demo_mode.py",
        "test_doctor.py",
        "test_emulator_contract.py",
        "test_fuzz.py",
        "test_gallery_team.py",
        "test_grids.py",
        "test_hostile_import.py",
        "test_import_limits.py",
        "test_live_updates.py",
        "test_multiprocess.py",
        "test_playground_flow.py",
        "test_poll_timing.py",
        "test_reliability.py",
        "test_remix.py",
        "test_restart.py",
        "test_secrets.py",
        "test_seeds.py",
        "test_smaller_hardening.py",
        "test_stopping.py",
        "test_team.py",
        "test_team_presets.py",
        "test_validation.py",
        "test_webhooks.py",
    }
)


def _code_names(code: CodeType) -> set[str]:
    """The global and attribute names a function's code (its nested functions too) uses."""
    names, stack = set[str](), [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(const for const in current.co_consts if isinstance(const, CodeType))
    return names


def names_used(function: Any, module: ModuleType | None) -> set[str]:
    """The names `function` uses, following the functions of its own module that it calls
    (helpers such as a module's `start_app`), each once."""
    found: set[str] = set()
    pending, seen = [function], set[int]()
    while pending:
        code = getattr(inspect.unwrap(pending.pop()), "__code__", None)
        if code is None or id(code) in seen:
            continue
        seen.add(id(code))
        names = _code_names(code)
        found |= names
        if module is not None:
            pending.extend(
                value
                for name in names
                if inspect.isfunction(value := getattr(module, name, None))
                and value.__module__ == module.__name__
            )
    return found


def heavy_tiers(item: pytest.Item) -> set[str]:
    """The heavy tiers (`HEAVY_TIERS`) a collected test belongs to."""
    tiers = {tier for tier in HEAVY_TIERS if item.get_closest_marker(tier)}
    if item.path.name in SLOW_FILES:
        tiers.add("slow")
    fixturenames: list[str] = getattr(item, "fixturenames", [])
    tiers |= {HEAVY_FIXTURES[name] for name in fixturenames if name in HEAVY_FIXTURES}
    params = getattr(getattr(item, "callspec", None), "params", {})
    if any(isinstance(value, str) and value in POSTGRES_PARAMETERS for value in params.values()):
        tiers.add("postgres")
    if "s3" in params.values():
        tiers.add("slow")
    function = getattr(item, "function", None)
    if function is not None:
        module = inspect.getmodule(function)
        names = names_used(function, module)
        definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        for name in fixturenames:
            for definition in definitions.get(name, ()):
                names |= names_used(definition.func, inspect.getmodule(definition.func))
        if names & PROCESS_NAMES:
            tiers.add("slow")
        if names & POSTGRES_NAMES:
            tiers.add("postgres")
    return tiers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tiers = heavy_tiers(item)
        for tier in sorted(tiers):
            if not item.get_closest_marker(tier):
                item.add_marker(tier)
        if not tiers:
            item.add_marker("fast")


@pytest.fixture(autouse=True)
def _fast_tier_kept(request: pytest.FixtureRequest) -> Iterator[None]:
    """A fast test that used a heavy fixture after all (asked for by name) fails, naming it."""
    yield
    if request.node.get_closest_marker("fast") is None:
        return
    used = sorted(set(request.fixturenames) & HEAVY_FIXTURES.keys())
    if used:
        pytest.fail(
            f"{request.node.nodeid} is in the fast tier but used {', '.join(used)}: "
            "mark it with the tier that fixture means (tests/support/tiers.py)",
            pytrace=False,
        )

"""Every call made with the team's key spends the key's one rate budget: the banner's key
check, doctor's checks and every method of the client, and no client with the key is made
any other way."""

from __future__ import annotations

import ast
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.features.models.key_status import fingerprint
from app.storage.db.tables import RateBudget
from app.upstream import PixelDojoClient, UpstreamError
from app.upstream.ratelimit import RateLimiter
from tests.support.apps import make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.doctor import doctor
from tests.support.emulators import TEST_KEY, RunningEmulator

APP = Path(__file__).resolve().parent.parent / "app"
HTMX = {"HX-Request": "true"}


class CountingLimiter(RateLimiter):
    """No limit; counts the tokens taken."""

    def __init__(self) -> None:
        super().__init__(None)
        self.taken = 0

    async def _wait_needed(self, *, submit: bool) -> float:
        self.taken += 1
        return 0.0


@pytest.mark.both_databases
def test_a_burst_of_key_checks_spends_no_more_than_the_budget(
    tmp_path: Path, emulator: RunningEmulator, database: DatabaseChoice
) -> None:
    """40 presses of "Check again" at 6 a minute: the app's calls, its own reads at start
    included, stay within the bucket; the checks with no room are refused at once, named
    429 with a Retry-After, and send nothing."""
    settings = make_settings(
        tmp_path / "data", emulator, database=database, rate_limit_per_minute=6
    )
    started = time.monotonic()
    with serve_app(settings) as app:
        answers = [app.client.post("/upstream/check-key", headers=HTMX) for _ in range(40)]
        elapsed = time.monotonic() - started
    checks = [r for r in emulator.emulator.requests if r.path.endswith("/jobs/job_keycheck")]
    # The bucket holds 6 and refills at one every 10 s.
    allowed = 6 + elapsed / 10
    assert len(checks) >= 1 and len(emulator.emulator.requests) <= allowed
    refused = [answer for answer in answers if answer.status_code == 429]
    assert len(refused) == 40 - len(checks)
    assert "nothing was sent" in refused[0].text and "Try again in" in refused[0].text
    assert int(refused[0].headers["retry-after"]) > 0
    assert all(answer.status_code == 204 for answer in answers if answer.status_code != 429)


@pytest.mark.both_databases
def test_doctor_spends_the_keys_shared_budget(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    emulator: RunningEmulator,
    database: DatabaseChoice,
) -> None:
    """A doctor run beside a running app draws on the budget the app's processes share (the
    database's row for the key), not on one of its own."""
    database.use_in_environment(monkeypatch)
    started = time.monotonic()
    code, _ = doctor(
        monkeypatch,
        capsys,
        emulator.base_url,
        tmp_path / "data",
        PIXELDOJO_RATE_LIMIT_PER_MINUTE="60",
    )
    elapsed = time.monotonic() - started
    assert code == 0
    calls = len(emulator.emulator.requests)
    assert calls >= 3, "the model's card, the key check and the schema"
    db = database.open(tmp_path / "data")
    try:
        with db.read() as session:
            row = session.get(RateBudget, fingerprint(SecretStr(TEST_KEY)))
    finally:
        db.dispose()
    assert row is not None, "doctor's calls were not counted in the shared budget"
    # 60 a minute: a bucket of 60, refilled at one a second while doctor ran.
    assert 60 - row.tokens >= calls - elapsed - 0.01


async def _every_call(
    client: PixelDojoClient,
) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "submit": lambda: client.submit("seedream-4", {"prompt": "a teapot", "num_images": 1}),
        "get_job": lambda: client.get_job("job_unknown"),
        "list_jobs": lambda: client.list_jobs(limit=5),
        "check_key": lambda: client.check_key(),
        "list_models": lambda: client.list_models(),
        "model": lambda: client.model("seedream-4"),
        "model_schema": lambda: client.model_schema("seedream-4"),
    }


@pytest.mark.anyio
async def test_every_call_with_the_key_takes_a_token_first(emulator: RunningEmulator) -> None:
    """Each method of the client that sends the key takes one token for each request it
    sends; a method added later is caught here until it is listed (downloads go through a
    client with no key)."""
    limiter = CountingLimiter()
    client = PixelDojoClient(
        base_url=emulator.base_url, api_key=SecretStr(TEST_KEY), limiter=limiter
    )
    try:
        calls = await _every_call(client)
        public = {
            name
            for name, member in inspect.getmembers(PixelDojoClient)
            if not name.startswith("_") and inspect.iscoroutinefunction(member)
        }
        assert public - {"aclose", "download"} == set(calls)
        for name, call in calls.items():
            before = (limiter.taken, len(emulator.emulator.requests))
            with contextlib.suppress(UpstreamError):  # an error answer is a request sent too
                await call()
            sent = len(emulator.emulator.requests) - before[1]
            assert sent >= 1, name
            assert limiter.taken - before[0] == sent, f"{name} sent {sent} without a token each"
    finally:
        await client.aclose()


def test_the_key_leaves_only_through_the_budgeted_request() -> None:
    """The client's key-bearing HTTP client is used by `_request` alone, which takes its
    token before anything else; and the app makes its clients in one place, with the shared
    budget (app.features.models.rate_budget.upstream_client)."""
    source = (APP / "upstream" / "client.py").read_text()
    tree = ast.parse(source)
    users = set()
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Attribute) and node.attr == "_api":
                users.add(function.name)
    assert users == {"__init__", "aclose", "_request"}
    request = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.AsyncFunctionDef) and node.name == "_request"
    )
    docstring, first, *_ = request.body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    assert ast.unparse(first).startswith("await self.limiter.acquire(")

    makers = []
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "PixelDojoClient"
            ):
                makers.append(path.relative_to(APP).as_posix())
    assert makers == ["features/models/rate_budget.py"]
    # The key goes into a header in the client alone (the emulator is the other side).
    carriers = [
        path.relative_to(APP).as_posix()
        for path in APP.rglob("*.py")
        if "get_secret_value" in path.read_text() and "Bearer" in path.read_text()
    ]
    assert [c for c in carriers if not c.startswith("emulator/")] == ["upstream/client.py"]

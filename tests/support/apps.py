"""The app under test: its settings, served over loopback HTTP, or driven in-process."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.core.config import Settings
from app.core.loopback import LoopbackServer
from app.web.factory import create_app
from tests.support.databases import SQLITE, DatabaseChoice
from tests.support.emulators import TEST_KEY, RunningEmulator


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

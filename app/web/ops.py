"""Probes and metrics for whoever runs the app: an orchestrator, Prometheus.

- `/livez` (and its older name `/healthz`): the process answers. It touches nothing, so a
  restart is never decided by a database that is merely slow.
- `/readyz`: every part this process depends on answers (app/features/ops/probes.py);
  503, naming the failing parts, otherwise. Both are public, like /healthz: an
  orchestrator signs in as nobody.
- `/metrics`: Prometheus' text format, with PLAYGROUND_METRICS=true only. Once sign-in is
  on, to admins only (an admin's API token as the scraper's bearer token); without sign-in
  the app answers this machine alone (app/web/gate.py), so never anybody on a public
  address.

`RequestTimer` times every answer for the metrics; it is installed only when they are on.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import metrics
from app.core.errors import NotFoundError
from app.web.deps import AdminUser, ServicesDep

router = APIRouter(tags=["health"])

PROBE_PATHS = frozenset({"/livez", "/readyz", "/healthz"})
METRICS_PATH = "/metrics"
# Asked by programs, never browsers: refusals are JSON, not a page or a sign-in redirect.
MACHINE_PATHS = PROBE_PATHS | {METRICS_PATH}
# Any token is a method to HTTP: others are counted together, not a series each.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@router.get("/livez")
async def livez() -> dict[str, str]:
    # Async: it blocks on nothing, so it needs no worker thread (the bare floor's own route).
    return {"status": "ok"}


# The older name, kept for monitors that use it; described once, as /livez.
router.add_api_route("/healthz", livez, methods=["GET"], include_in_schema=False, name="healthz")


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    readiness = await services.probes.readiness()
    return JSONResponse(readiness.to_json(), status_code=200 if readiness.ready else 503)


@router.get(METRICS_PATH, include_in_schema=False)
async def metrics_page(services: ServicesDep, admin: AdminUser) -> Response:
    if services.metrics is None:
        raise NotFoundError("Metrics are off: set PLAYGROUND_METRICS=true to serve them.")
    # In a thread: the jobs' figures are read from the database as Prometheus asks.
    body = await run_in_threadpool(generate_latest, services.metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class RequestTimer:
    """Observe each request's duration by method, route template and status class."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: the app raised

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The router leaves the matched route in the scope: its template, never the
            # path, so ids do not make a series each.
            route = scope.get("route")
            method = scope["method"]
            metrics.REQUEST_DURATION.labels(
                method=method if method in KNOWN_METHODS else "other",
                route=getattr(route, "path", None) or "unmatched",
                status=f"{status // 100}xx",
            ).observe(time.perf_counter() - started)

"""A worker's health port (`seedream-playground worker --health-port N`): the probes a web
process answers, for a process that serves nothing else.

- `/livez`: the worker's event loop answers (a loop stuck in a blocking call does not);
- `/readyz`: the database, the schema's revision and the blob store answer, and the
  worker's heartbeat reached the database within a lease (app/features/ops/probes.py);
- `/metrics`: with PLAYGROUND_METRICS=true, this worker's counters and the jobs' figures.

It listens on 127.0.0.1 unless told otherwise, and answers whoever reaches it: keep it on
loopback or on a network only your monitoring reaches (in compose it is published
nowhere; the container's healthcheck asks it from inside).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.features.ops.probes import Probes


def health_app(probes: Probes, registry: CollectorRegistry | None) -> Starlette:
    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        readiness = await probes.readiness()
        return JSONResponse(readiness.to_json(), status_code=200 if readiness.ready else 503)

    async def metrics_page(request: Request) -> Response:
        if registry is None:
            message = "Metrics are off: set PLAYGROUND_METRICS=true to serve them."
            return JSONResponse({"error": {"code": "not_found", "message": message}}, 404)
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/livez", livez),
            Route("/readyz", readyz),
            Route("/metrics", metrics_page),
        ]
    )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, made before the worker starts: a port already taken is said at
    once, in one line, instead of by a server that exits later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise SystemExit(
            f"worker --health-port {port}: cannot listen on {host}: {exc.strerror}"
        ) from None
    listener.listen(64)
    listener.setblocking(False)
    return listener


class HealthServer(uvicorn.Server):
    """Uvicorn on a socket bound already, leaving the signals to the worker (app/worker/role.py
    stops it on SIGTERM, and this server with it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def health_server(app: Starlette) -> HealthServer:
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    return HealthServer(config)

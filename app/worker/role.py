"""The worker role: poll jobs and store their images, with no web app.

`seedream-playground serve` runs the web app and a worker in one process;
`serve --no-worker` runs the web app alone (it submits jobs, never polls), and
`seedream-playground worker` runs this module alone. Any number of each may share
one PostgreSQL database (or, on one machine, one SQLite file): jobs are claimed
with leases (app.features.jobs.queue), the upstream rate limit is one budget per key
(app.features.models.rate_budget), and a job submitted anywhere wakes the workers at once
(app.features.jobs.events).

The parts both roles build the same way live here (the process's worker id) or in
app.features.models.rate_budget (the upstream client).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket

import anyio

from app.core import metrics
from app.core.config import Settings
from app.features.jobs import queue
from app.features.jobs.events import JobEvents
from app.features.models.key_status import KeyHealth
from app.features.models.rate_budget import upstream_client
from app.features.ops.job_gauges import JobGauges
from app.features.ops.probes import Probes
from app.storage.blobs.choose import open_blob_store
from app.storage.db.engine import Database
from app.storage.db.tables import utcnow
from app.storage.intake import clear_scratch, return_image_memory_promptly
from app.worker.health import HealthServer, health_app, health_server
from app.worker.poller import Poller

log = logging.getLogger(__name__)

DEMO_MODE_REFUSAL = (
    "PIXELDOJO_API_KEY is unset: in demo mode the built-in emulator runs inside "
    "`seedream-playground serve`, which polls its own jobs. Set the key (and "
    "PIXELDOJO_BASE_URL if it is not PixelDojo) to run web processes and workers apart."
)


def new_worker_id() -> str:
    """Unique among every process on every machine sharing the database."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


async def run_worker(
    settings: Settings, *, stop: asyncio.Event, health_socket: socket.socket | None = None
) -> None:
    """Poll and store until `stop` is set; then hand unfinished work back. With
    `health_socket`, answer the probes (and the metrics, if on) there meanwhile."""
    if settings.pixeldojo_api_key is None:
        raise RuntimeError(DEMO_MODE_REFUSAL)
    return_image_memory_promptly()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.for_settings(settings)
    await anyio.to_thread.run_sync(db.migrate)
    blobs = await anyio.to_thread.run_sync(lambda: open_blob_store(settings, database_url=db.url))
    live = await anyio.to_thread.run_sync(
        lambda: queue.live_worker_ids(db, now=utcnow(), lease_seconds=settings.lease_seconds)
    )
    clear_scratch(settings.scratch_dir, live_worker_ids=live)
    api_key = settings.pixeldojo_api_key
    client = upstream_client(settings, db, api_key=api_key, base_url=settings.pixeldojo_base_url)
    events = JobEvents()
    poller = Poller(
        db=db,
        blobs=blobs,
        client=client,
        settings=settings,
        worker_id=new_worker_id(),
        key_health=KeyHealth(db, api_key),
    )
    events.subscribe(poller.wake)
    events.watch(db)
    poller.start()
    log.info(
        "worker %s: polling up to %d jobs at once; images go to %s",
        poller.worker_id,
        settings.poller_concurrency,
        blobs.describe(),
    )
    health: HealthServer | None = None
    health_task: asyncio.Task[None] | None = None
    if health_socket is not None:
        probes = Probes(
            db=db,
            blobs=blobs,
            heartbeat=poller.seconds_since_heartbeat,
            polling=lambda: poller.polling,
            lease_seconds=settings.lease_seconds,
        )
        registry = metrics.registry(JobGauges(db)) if settings.metrics else None
        health = health_server(health_app(probes, registry))
        health_task = asyncio.create_task(health.serve([health_socket]), name="health port")
        host, port = health_socket.getsockname()[:2]
        log.info("worker %s: probes on http://%s:%d/readyz", poller.worker_id, host, port)
    try:
        await stop.wait()
    finally:
        if health is not None and health_task is not None:
            health.should_exit = True
            await health_task
        await poller.stop()
        events.detach()
        await client.aclose()
        blobs.close()
        db.dispose()


def main(settings: Settings, *, health_socket: socket.socket | None = None) -> None:
    """Run a worker until SIGTERM or Ctrl+C."""

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(settings, stop=stop, health_socket=health_socket)

    asyncio.run(_run())

"""The app factory: `create_app(settings)` builds one independent app.

Everything with a lifetime (database engines, blob store, the HTTP client, the
poller, demo mode's emulator) is created in the lifespan and closed after it,
so tests can build as many apps as they like, each with its own data dir.
The blob store is the one the settings name (app.storage.blobs.choose); everything it is
handed to knows only the `BlobStore` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, Depends, FastAPI
from pydantic import SecretStr

from app import __version__
from app.core import datadir, metrics, signing
from app.core.config import Settings
from app.core.loopback import LoopbackServer
from app.core.resources import STATIC_DIR
from app.emulator import API_PREFIX, Emulator, EmulatorConfig
from app.features.doctor.report import LastDoctorReport
from app.features.gallery import listing as gallery
from app.features.gallery import trash
from app.features.grids.runner import GridRunner
from app.features.grids.submission import Grids
from app.features.jobs import queue
from app.features.jobs.callbacks import CallbackBase
from app.features.jobs.events import JobEvents
from app.features.jobs.submission import Submitter
from app.features.models.catalogue import ModelCatalogue
from app.features.models.key_status import KeyHealth
from app.features.models.live_rules import LiveRules
from app.features.models.rate_budget import upstream_client
from app.features.ops.job_gauges import JobGauges
from app.features.ops.probes import Probes
from app.features.people import accounts
from app.features.people.access import Access, load_secret
from app.storage import thumbnails
from app.storage.blobs.choose import open_blob_store
from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import utcnow
from app.storage.intake import clear_scratch, return_image_memory_promptly
from app.storage.previews import Previews
from app.web import (
    access_log,
    admin,
    api,
    auth,
    code,
    collections_api,
    collections_pages,
    docs,
    events_api,
    gallery_api,
    gallery_pages,
    grids,
    grids_api,
    images_api,
    live,
    openapi,
    ops,
    pages,
    presets,
    references,
    stops,
    trash_api,
    webhooks,
)
from app.web.assets import static_assets
from app.web.bodies import BodyLimit, body_limits
from app.web.compression import CompressText
from app.web.errors import install_error_handlers
from app.web.gate import Gate, check_same_site
from app.web.head import HeadAsGet
from app.web.ops import RequestTimer
from app.web.own_address import LearnOwnAddress
from app.web.services import Services
from app.web.templating import build_templates
from app.worker.poller import Poller
from app.worker.role import DEMO_MODE_REFUSAL, new_worker_id

log = logging.getLogger(__name__)

# Demo mode's upstream jobs and credits, in the data dir.
DEMO_UPSTREAM_FILE = "demo-upstream.json"


# Every router the app serves, in order. A request is matched against the routes in this
# order, so the busiest come first: health checks, the JSON listings, the gallery's pages
# (each route ahead costs a request a few microseconds). Paths overlap in one place only:
# live's /jobs/cards would otherwise be taken for a job id by pages. The route-by-route
# access test reads this list.
ROUTERS: tuple[APIRouter, ...] = (
    ops.router,
    api.router,
    images_api.router,
    gallery_api.router,
    collections_api.router,
    trash_api.router,
    grids_api.router,
    events_api.router,
    live.router,
    gallery_pages.router,
    collections_pages.router,
    grids.router,
    stops.router,
    pages.router,
    presets.router,
    references.router,
    webhooks.router,
    code.router,
    presets.api_router,
    auth.router,
    auth.api_router,
    admin.router,
    admin.api_router,
    docs.router,
)


def create_app(settings: Settings, *, run_worker: bool = True) -> FastAPI:
    """The web app; with `run_worker` (the default) it polls and stores jobs too, without it
    (`serve --no-worker`) it submits them and leaves them to `seedream-playground worker`s."""
    if not run_worker and settings.demo_mode:
        raise ValueError(DEMO_MODE_REFUSAL)
    app = FastAPI(
        title="Seedream Playground",
        version=__version__,
        summary="Try Seedream 4.5 through PixelDojo and keep every image in a shared gallery.",
        lifespan=_lifespan,
        # Swagger UI is served from the app (app/web/docs.py); ReDoc would need a CDN.
        docs_url=None,
        redoc_url=None,
        # Every route, including any added later: state changes only from this site.
        dependencies=[Depends(check_same_site)],
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.settings = settings
    app.state.run_worker = run_worker
    access_log.install()
    assets = static_assets(STATIC_DIR)
    app.state.templates = build_templates(settings, static_url=assets.url)
    gallery_pages.install_template_helpers(app.state.templates, settings)
    app.mount("/static", assets, name="static")
    docs.mount_assets(app)
    for router in ROUTERS:
        app.include_router(router)
    openapi.install(app)
    install_error_handlers(app)
    if settings.demo_mode and settings.webhooks and settings.public_url is None:
        app.add_middleware(LearnOwnAddress)
    app.add_middleware(Gate)
    if settings.metrics:
        # Outside the gate: refused requests are answers too, and take time.
        app.add_middleware(RequestTimer)
    # Bodies are counted before anything (the gate included) could read them.
    app.add_middleware(BodyLimit, uploads=body_limits(settings))
    # Outside the gate, so its refusals are compressed too.
    app.add_middleware(CompressText)
    # Outermost: everything inside sees a HEAD as the GET it asks about.
    app.add_middleware(HeadAsGet)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    return_image_memory_promptly()
    datadir.prepare(settings)
    db = Database.for_settings(settings)
    await anyio.to_thread.run_sync(db.migrate)
    blobs = await anyio.to_thread.run_sync(lambda: open_blob_store(settings, database_url=db.url))
    log.info("images are kept in %s", blobs.describe())
    thumbnail_store = thumbnails.Thumbnails(db, blobs)
    live = await anyio.to_thread.run_sync(
        lambda: queue.live_worker_ids(db, now=utcnow(), lease_seconds=settings.lease_seconds)
    )
    clear_scratch(settings.scratch_dir, live_worker_ids=live)

    emulator_server: LoopbackServer | None = None
    secret = await anyio.to_thread.run_sync(lambda: load_secret(settings, db))
    if settings.demo_mode:
        # Demo mode: the same client, over real loopback HTTP, to the built-in emulator.
        # Its key comes from the data dir's secret and its jobs are kept in the data dir,
        # so a job still running when the app stops finishes after it starts again.
        demo_key = signing.Signer(secret).derived(signing.DEMO_UPSTREAM_KEY)
        api_key = SecretStr("pd_demo_" + demo_key)
        emulator = Emulator(
            EmulatorConfig(
                job_seconds=settings.demo_job_seconds,
                api_keys=frozenset({api_key.get_secret_value()}),
                free=True,
            ),
            state_file=settings.data_dir / DEMO_UPSTREAM_FILE,
        )
        emulator_server = await anyio.to_thread.run_sync(LoopbackServer(emulator.app).start)
        base_url = emulator_server.url + API_PREFIX
    else:
        assert settings.pixeldojo_api_key is not None
        api_key = settings.pixeldojo_api_key
        base_url = settings.pixeldojo_base_url

    client = upstream_client(settings, db, api_key=api_key, base_url=base_url)
    key_health = KeyHealth(db, api_key)
    worker_id = new_worker_id()
    events = JobEvents()
    events.attach(db.write_engine)
    poller = Poller(
        db=db,
        blobs=blobs,
        client=client,
        settings=settings,
        worker_id=worker_id,
        key_health=key_health,
        claims_jobs=app.state.run_worker,
    )
    if app.state.run_worker:
        # Jobs submitted by web processes elsewhere are picked up at once.
        events.subscribe(poller.wake)
    events.watch(db)
    catalogue = ModelCatalogue(
        db=db,
        client=client,
        upstream=settings.upstream_name,
        minutes=settings.schema_refresh_minutes,
    )
    rules = LiveRules(
        db=db,
        client=client,
        upstream=settings.upstream_name,
        model=settings.model,
        minutes=settings.schema_refresh_minutes,
        catalogue=catalogue.in_force,
    )
    access = Access(db, secret)
    submitter = Submitter(
        db=db,
        client=client,
        key_health=key_health,
        rules=rules,
        scheduler=poller,
        owner=poller.submitter_id,
        submit_window_seconds=settings.submit_window_seconds,
        catalogue=catalogue,
        default_model=settings.model,
        blobs=blobs,
        public_url=settings.public_url,
        signer=access.signer,
        callback_base=CallbackBase(settings.callback_base_url),
    )
    grid_runner = GridRunner(
        db=db,
        worker_id=worker_id,
        lease_seconds=settings.lease_seconds,
        rules=rules,
        submitter=submitter,
    )
    app.state.services = Services(
        settings=settings,
        db=db,
        blobs=blobs,
        thumbnails=thumbnail_store,
        previews=Previews(blobs),
        client=client,
        poller=poller,
        key_health=key_health,
        access=access,
        worker_id=worker_id,
        demo_mode=settings.demo_mode,
        events=events,
        grids=Grids(
            db=db,
            default_model=settings.model,
            rules=rules,
            submitter=submitter,
            key_health=key_health,
            runner=grid_runner,
            free=settings.demo_mode,
        ),
        rules=rules,
        doctor_reports=LastDoctorReport(db, settings.upstream_name),
        image_origin=redirect_origin(blobs),
        catalogue=catalogue,
        submitter=submitter,
        probes=Probes(db=db, blobs=blobs, signing_key=secret),
        metrics=metrics.registry(JobGauges(db)) if settings.metrics else None,
    )
    catalogue.start()
    rules.start()
    await asyncio.gather(catalogue.first_read(), rules.first_read())
    # Known as a live worker before answering; polling begins after the sweep (below).
    poller.register()
    starter = asyncio.create_task(_after_start(db, blobs, poller), name="after start")
    await grid_runner.resume()
    purger = asyncio.create_task(
        trash.purge_periodically(db, blobs, days=settings.trash_days), name="trash purge"
    )
    mover = asyncio.create_task(
        thumbnails.move_legacy_in_background(thumbnail_store), name="thumbnail move"
    )
    tidier = asyncio.create_task(gallery.tidy_search_periodically(db), name="search upkeep")
    try:
        yield
    finally:
        for task in (purger, mover, starter, tidier):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await grid_runner.stop()
        await rules.stop()
        await catalogue.stop()
        await poller.stop()
        events.detach()
        access.close()
        await client.aclose()
        if emulator_server is not None:
            await anyio.to_thread.run_sync(emulator_server.stop)
        blobs.close()
        db.dispose()


def redirect_origin(blobs: BlobStore) -> str | None:
    """The origin of the URLs the store redirects browsers to, if it does (pages must let
    images load from there): that of a URL it makes for an image it need not hold."""
    url = blobs.redirect_url("0" * 64, content_type="image/png")
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _after_start(db: Database, blobs: BlobStore, poller: Poller) -> None:
    """Remove stored images no job refers to (a crash between storing the bytes and the job
    row leaves them), then start polling; then prepare for the first sign-in.

    After the app answers, not before: the sweep looks up every stored image's rows,
    seconds at a million images, and nothing a request does needs it done. A job or an
    upload storing the same bytes meanwhile keeps them: the store deletes only what no
    row names as it deletes (app.storage.blobs.protocol).
    """
    try:
        swept = await anyio.to_thread.run_sync(lambda: blobs.sweep(gallery=db))
    except Exception:  # housekeeping: its failure must not stop the jobs
        log.exception("could not sweep stored images; trying again at the next start")
    else:
        if swept:
            log.info("removed %d stored image(s) that no job referenced", swept)
    poller.start()
    await anyio.to_thread.run_sync(accounts.prepare)

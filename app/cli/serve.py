"""`serve`, `worker`, `migrate` and `emulator`: running the app, its roles, its schema, and
the PixelDojo emulator on its own."""

from __future__ import annotations

import errno
import os
import socket
import sys

import click

from app import __version__
from app.cli.local import database_name, gallery_name, load_settings, sign_in_on
from app.cli.options import common, examples
from app.core.config import is_loopback_host

LOG_LEVELS = click.Choice(["critical", "error", "warning", "info", "debug"])


def reachable_addresses() -> list[str]:
    """This machine's own IPv4 addresses that a teammate could open, loopback left out."""
    found: list[str] = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        found += [str(info[4][0]) for info in infos]
    except OSError:
        pass
    # The address the default route leaves from: connecting a UDP socket sends nothing.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
            found.append(str(probe.getsockname()[0]))
        except OSError:
            pass
    return [
        address
        for address in dict.fromkeys(found)
        if not is_loopback_host(address) and address != "0.0.0.0"
    ]


def open_urls(host: str, port: int) -> list[str]:
    """Where to open the app: for a wildcard address, each of the machine's addresses."""
    if host in ("0.0.0.0", "::", ""):
        return [f"http://127.0.0.1:{port}/"] + [
            f"http://{address}:{port}/" for address in reachable_addresses()
        ]
    shown = f"[{host}]" if ":" in host else host
    return [f"http://{shown}:{port}/"]


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on `host:port`, found before saying where to open it
    (a busy port is often another playground, whose page the person would then open)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port with only closed connections lingering is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"Port {port} on {host} is in use (another playground, or another "
                    "program): stop it, or pick another with --port."
                )
            return f"Cannot listen on {host}:{port}: {exc.strerror or exc}."
    return None


@click.command(
    short_help="Run the web app (demo mode without a key).",
    epilog=examples("serve", "serve --port 8001", "serve --host 0.0.0.0"),
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every address of this machine; needs sign-in).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on.",
)
@click.option("--log-level", type=LOG_LEVELS, default="info", show_default=True)
@click.option(
    "--no-worker",
    is_flag=True,
    help="Web only: submit jobs but never poll them (run `seedream-playground worker`s on "
    "the same database); needs PIXELDOJO_API_KEY.",
)
@common
def serve(host: str, port: int, log_level: str, no_worker: bool) -> int:
    """Run the web app (and a worker): demo mode without PIXELDOJO_API_KEY."""
    import uvicorn

    from app.web.factory import create_app

    settings = load_settings()
    if not is_loopback_host(host) and not sign_in_on(settings):
        raise SystemExit(
            f"Refusing to listen on {host} without sign-in: anyone who can reach that "
            "address could use this playground and spend its PixelDojo credits.\n"
            "Create the first admin account, then start again:\n"
            "    seedream-playground users add NAME --admin\n"
            "Or listen on 127.0.0.1 (the default) to keep it to yourself."
        )
    mode = (
        "demo mode: images are generated locally by the built-in emulator, no credits are spent"
        if settings.demo_mode
        else f"using PixelDojo at {settings.pixeldojo_base_url}"
    )
    print(f"Seedream Playground {__version__}: {mode}", file=sys.stderr)
    if settings.uses_postgres:
        print(f"Database: {database_name(settings)}", file=sys.stderr)
    if no_worker:
        from app.worker.role import DEMO_MODE_REFUSAL

        if settings.demo_mode:
            raise SystemExit(f"--no-worker: {DEMO_MODE_REFUSAL}")
        print(
            "Web only (--no-worker): jobs are submitted here and polled by "
            "`seedream-playground worker` processes on the same database.",
            file=sys.stderr,
        )
    problem = port_problem(host, port)
    if problem is not None:
        raise SystemExit(problem)
    urls = open_urls(host, port)
    print(f"Open {urls[0]}", file=sys.stderr)
    for url in urls[1:]:
        print(f"  or, from another machine, {url}", file=sys.stderr)
    uvicorn.run(
        create_app(settings, run_worker=not no_worker),
        host=host,
        port=port,
        log_level=log_level,
        # Only behind a proxy we were told to trust: X-Forwarded-Proto decides Secure cookies.
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # Open live-update streams would otherwise hold a Ctrl+C until every tab closes.
        timeout_graceful_shutdown=5,
    )
    # The app has shut down (lifespan closed the database, the poller, the emulator);
    # what is left is the interpreter's teardown of every module, close to a second on
    # a busy machine. Ctrl+C on an idle server should end it at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _positive(_: click.Context, __: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.UsageError("--concurrency must be 1 or more")
    return value


@click.command(
    short_help="Poll jobs and store images, with no web app.",
    epilog=examples("worker", "worker --concurrency 16", "worker --health-port 8081"),
)
@click.option(
    "--concurrency",
    type=int,
    metavar="N",
    callback=_positive,
    help="Jobs this worker handles at once [default: PLAYGROUND_POLLER_CONCURRENCY, 8].",
)
@click.option(
    "--health-port",
    type=click.IntRange(1, 65535),
    metavar="N",
    help="Answer /livez, /readyz (and /metrics with PLAYGROUND_METRICS=true) on this port.",
)
@click.option(
    "--health-host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="The address the health port listens on.",
)
@click.option("--log-level", type=LOG_LEVELS, default="info", show_default=True)
@common
def worker(
    concurrency: int | None, health_port: int | None, health_host: str, log_level: str
) -> int:
    """Poll jobs and store their images, with no web app (beside `serve --no-worker`).

    Runs until stopped (SIGTERM or Ctrl+C hands unfinished work back). Run as many as you
    like on one PostgreSQL database; needs PIXELDOJO_API_KEY.
    """
    import logging

    from app.worker import role as worker_role

    settings = load_settings()
    if settings.pixeldojo_api_key is None:
        raise SystemExit(f"worker: {worker_role.DEMO_MODE_REFUSAL}")
    if concurrency is not None:
        settings = settings.model_copy(update={"poller_concurrency": concurrency})
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    print(
        f"Seedream Playground {__version__} worker: polling PixelDojo at "
        f"{settings.pixeldojo_base_url}, up to {settings.poller_concurrency} jobs at once; "
        f"database {gallery_name(settings)}",
        file=sys.stderr,
    )
    health_socket = None
    if health_port is not None:
        from app.worker.health import bind

        health_socket = bind(health_host, health_port)
    worker_role.main(settings, health_socket=health_socket)
    return 0


@click.command(
    short_help="Bring the database schema up to date.",
    epilog=examples("migrate"),
)
@common
def migrate() -> int:
    """Bring the database schema up to date (the app also does it when it starts)."""
    from app.core import datadir
    from app.storage.db.engine import Database

    settings = load_settings()
    datadir.prepare(settings)
    db = Database.for_settings(settings)
    try:
        before, after = db.migrate()
    finally:
        db.dispose()
    where = database_name(settings)
    if before == after:
        print(f"{where}: the schema is up to date (revision {after}).", file=sys.stderr)
    else:
        print(
            f"{where}: migrated the schema from revision {before or '(none)'} to {after}.",
            file=sys.stderr,
        )
    return 0


@click.command(
    short_help="Run the PixelDojo emulator on its own.",
    epilog=examples("emulator --port 9100 --job-seconds 3"),
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=9100,
    show_default=True,
    help="Port to listen on.",
)
@click.option(
    "--job-seconds", type=float, default=3.0, show_default=True, help="How long each job takes."
)
@click.option("--strict", is_flag=True, help="Refuse aspect_ratio like any unknown field.")
@click.option("--key", multiple=True, help="Accept only this API key (repeatable).")
@click.option("--log-level", type=LOG_LEVELS, default="info", show_default=True)
@common
def emulator(
    host: str, port: int, job_seconds: float, strict: bool, key: tuple[str, ...], log_level: str
) -> int:
    """Run the PixelDojo emulator on its own, for local development."""
    import uvicorn

    from app.emulator import Emulator, EmulatorConfig

    config = EmulatorConfig(
        job_seconds=job_seconds, strict=strict, api_keys=frozenset(key) if key else None
    )
    problem = port_problem(host, port)
    if problem is not None:
        raise SystemExit(problem)
    print(
        f"PixelDojo emulator on http://{host}:{port}/api/v1 "
        f"(jobs take {job_seconds:g}s; keys: {'as given' if key else 'any pd_...'})",
        file=sys.stderr,
    )
    uvicorn.run(Emulator(config).app, host=host, port=port, log_level=log_level)
    return 0

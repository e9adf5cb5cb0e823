"""The `seedream-playground` command (also `python -m app`)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from app import __version__
from app.core.config import Settings, default_data_dir, is_loopback_host

if TYPE_CHECKING:
    from app.storage.db.engine import Database

# The commands import what they need when they run: `generate` and its kind talk to a
# server over HTTP and should start in a moment, without the database or web stack.

CLI_ACTOR = "(command line)"


def load_settings() -> Settings:
    """Settings from the environment and `.env`; a bad value exits with a readable message.

    Says which data dir it is: a command run against the wrong one is the first
    thing to rule out when a playground looks empty.
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        # Never echo the input: it may be the API key.
        lines = [
            f"  {'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise SystemExit("Invalid settings:\n" + "\n".join(lines)) from None
    where = "PLAYGROUND_DATA_DIR" if os.environ.get("PLAYGROUND_DATA_DIR") else "default"
    print(f"Data dir: {settings.data_dir.resolve()} ({where})", file=sys.stderr)
    return settings


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


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.web.factory import create_app

    settings = load_settings()
    if not is_loopback_host(args.host) and not _sign_in_on(settings):
        raise SystemExit(
            f"Refusing to listen on {args.host} without sign-in: anyone who can reach that "
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
        print(f"Database: {_database_name(settings)}", file=sys.stderr)
    if args.no_worker:
        from app.worker.role import DEMO_MODE_REFUSAL

        if settings.demo_mode:
            raise SystemExit(f"--no-worker: {DEMO_MODE_REFUSAL}")
        print(
            "Web only (--no-worker): jobs are submitted here and polled by "
            "`seedream-playground worker` processes on the same database.",
            file=sys.stderr,
        )
    urls = open_urls(args.host, args.port)
    print(f"Open {urls[0]}", file=sys.stderr)
    for url in urls[1:]:
        print(f"  or, from another machine, {url}", file=sys.stderr)
    uvicorn.run(
        create_app(settings, run_worker=not args.no_worker),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
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


def worker(args: argparse.Namespace) -> int:
    import logging

    from app.worker import role as worker_role

    settings = load_settings()
    if settings.pixeldojo_api_key is None:
        raise SystemExit(f"worker: {worker_role.DEMO_MODE_REFUSAL}")
    if args.concurrency is not None:
        settings = settings.model_copy(update={"poller_concurrency": args.concurrency})
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    print(
        f"Seedream Playground {__version__} worker: polling PixelDojo at "
        f"{settings.pixeldojo_base_url}, up to {settings.poller_concurrency} jobs at once; "
        f"database {_gallery_name(settings)}",
        file=sys.stderr,
    )
    health_socket = None
    if args.health_port is not None:
        from app.worker.health import bind

        health_socket = bind(args.health_host, args.health_port)
    worker_role.main(settings, health_socket=health_socket)
    return 0


def _open_database(settings: Settings) -> Database:
    from app.core import datadir
    from app.storage.db.engine import Database

    datadir.prepare(settings)
    db = Database.for_settings(settings)
    db.migrate()
    return db


def migrate(args: argparse.Namespace) -> int:
    from app.core import datadir
    from app.storage.db.engine import Database

    settings = load_settings()
    datadir.prepare(settings)
    db = Database.for_settings(settings)
    try:
        before, after = db.migrate()
    finally:
        db.dispose()
    where = _database_name(settings)
    if before == after:
        print(f"{where}: the schema is up to date (revision {after}).", file=sys.stderr)
    else:
        print(
            f"{where}: migrated the schema from revision {before or '(none)'} to {after}.",
            file=sys.stderr,
        )
    return 0


def _database_name(settings: Settings) -> str:
    from app.storage.db.engine import display_url

    return display_url(settings.sqlalchemy_url)


def _gallery_name(settings: Settings) -> str:
    if settings.uses_postgres:
        return _database_name(settings)
    return str(settings.data_dir.resolve())


def _sign_in_on(settings: Settings) -> bool:
    from app.features.people import accounts

    db = _open_database(settings)
    try:
        return accounts.users_exist(db)
    finally:
        db.dispose()


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise SystemExit("No terminal to ask for the password: pass it with --password-stdin.")
    first = getpass.getpass("Password (10 characters or more): ")
    if getpass.getpass("The same again: ") != first:
        raise SystemExit("The two passwords differ; nothing was changed.")
    return first


def users(args: argparse.Namespace) -> int:
    from app.features.people import accounts

    settings = load_settings()
    db = _open_database(settings)
    try:
        return _users(args, db)
    except accounts.AccountError as exc:
        raise SystemExit(f"{exc.field}: {exc.message}") from None
    finally:
        db.dispose()


def _users(args: argparse.Namespace, db: Database) -> int:
    from app.features.people import accounts, audit

    if args.users_command == "list":
        for user in accounts.list_users(db):
            role = "admin" if user.is_admin else "member"
            limits = ", ".join(
                f"{label} budget {value:g}"
                for label, value in (("daily", user.daily_budget), ("monthly", user.monthly_budget))
                if value is not None
            )
            print(f"{user.name}\t{role}" + (f"\t{limits}" if limits else ""))
        return 0
    if args.users_command == "add":
        first = not accounts.users_exist(db)
        user = accounts.create_user(
            db, name=args.name, password=_read_password(args), is_admin=args.admin or first
        )
        role = "admin" if user.is_admin else "member"
        audit.record(
            db,
            action=audit.Action.USER_ADDED,
            user=None,
            actor=CLI_ACTOR,
            detail=f"{user.name} ({role})",
        )
        note = " Sign-in is now on for this playground." if first else ""
        print(f"Added {user.name} ({role}).{note}", file=sys.stderr)
        return 0
    found = accounts.find_user(db, name=args.name)
    if found is None or found.removed_at is not None or found.id is None:
        raise SystemExit(f"There is no account called {args.name!r}.")
    if args.users_command == "remove":
        accounts.remove_user(db, user_id=found.id)
        audit.record(
            db, action=audit.Action.USER_REMOVED, user=None, actor=CLI_ACTOR, detail=found.name
        )
        print(f"Removed {found.name}; their work stays in the gallery.", file=sys.stderr)
        return 0
    # An admin's reset: whoever knew the old password may have made tokens with it.
    accounts.set_password(db, user_id=found.id, password=_read_password(args), revoke_tokens=True)
    audit.record(
        db,
        action=audit.Action.PASSWORD_CHANGED,
        user=None,
        actor=CLI_ACTOR,
        detail=f"{found.name}; API tokens revoked",
    )
    print(
        f"Changed {found.name}'s password, signed them out everywhere and revoked their "
        "API tokens.",
        file=sys.stderr,
    )
    return 0


def emulator(args: argparse.Namespace) -> int:
    import uvicorn

    from app.emulator import Emulator, EmulatorConfig

    config = EmulatorConfig(
        job_seconds=args.job_seconds,
        strict=args.strict,
        api_keys=frozenset(args.key) if args.key else None,
    )
    print(
        f"PixelDojo emulator on http://{args.host}:{args.port}/api/v1 "
        f"(jobs take {args.job_seconds:g}s; keys: {'as given' if args.key else 'any pd_...'})",
        file=sys.stderr,
    )
    uvicorn.run(Emulator(config).app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def doctor(args: argparse.Namespace) -> int:
    """Check the way to PixelDojo; exit 0 if the app can work, 1 if something blocks it."""
    import asyncio
    import json

    from app.features.doctor.checks import EXIT_NOTHING_TO_CHECK, diagnose, save_report

    settings = load_settings()
    if args.model:
        from pydantic import TypeAdapter

        from app.domain.parameters import ModelId

        try:
            model = TypeAdapter(ModelId).validate_python(args.model)
        except ValidationError:
            raise SystemExit(f"--model {args.model!r} is not a PixelDojo model id") from None
        settings = settings.model_copy(update={"model": model})
    if settings.pixeldojo_api_key is None:
        message = (
            "No PixelDojo key: PIXELDOJO_API_KEY is unset, so the app runs in demo mode "
            "and there is nothing upstream to check. Set it and run doctor again."
        )
        if args.json:
            print(
                json.dumps({"exit_code": EXIT_NOTHING_TO_CHECK, "ok": False, "headline": message})
            )
        else:
            print(message, file=sys.stderr)
        return EXIT_NOTHING_TO_CHECK
    from app.features.doctor.checks import Gallery
    from app.features.people.access import load_secret

    db, blobs = _open_gallery(settings)
    # With --run on a model that takes references and PLAYGROUND_PUBLIC_URL set, the test
    # picture is kept in the gallery for the app to serve by a signed link.
    gallery = Gallery(db, blobs, load_secret(settings, db), settings.scratch_dir)
    try:
        result = asyncio.run(diagnose(settings, db=db, run=args.run, gallery=gallery))
        save_report(db, upstream=settings.upstream_name, result=result)
    finally:
        blobs.close()
        db.dispose()
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.render(), end="")
    return result.exit_code


def backup(args: argparse.Namespace) -> int:
    from app.storage.backup import BackupError
    from app.storage.backup import backup as make_backup

    settings = load_settings()
    if settings.uses_postgres:
        import sqlalchemy as sa

        # As pg_dump takes it: no driver name; the password hidden (it may be in ~/.pgpass).
        url = sa.make_url(settings.sqlalchemy_url).set(drivername="postgresql")
        shown = url.render_as_string(hide_password=True)
        raise SystemExit(
            "Backup: the gallery is in PostgreSQL (PLAYGROUND_DATABASE_URL); back it up with "
            "`pg_dump -Fc -f playground.dump "
            f"'{shown}'` (images included unless PLAYGROUND_BLOB_URL names a bucket: back that "
            "up too), or `seedream-playground export FILE` for one file."
        )
    if not settings.database_path.is_file():
        raise SystemExit(f"Backup failed: there is no database at {settings.database_path}")
    blobs = _open_blob_store(settings, database_url=f"sqlite:///{settings.database_path}")
    try:
        summary = make_backup(settings, args.file, blobs=blobs)
    except BackupError as exc:
        raise SystemExit(f"Backup failed: {exc}") from None
    finally:
        blobs.close()
    print(
        f"Backed up {settings.data_dir} to {args.file} "
        f"({summary['images']} images). Restore with: tar -xf {args.file} -C <data dir>",
        file=sys.stderr,
    )
    if summary["stored_files"] is None:
        print(
            f"The image bytes stay in {blobs.describe()}: back that up with its own tools "
            "(bucket versioning or replication), or use `export` for one file with everything.",
            file=sys.stderr,
        )
    return 0


def _open_gallery(settings: Settings) -> tuple[Any, Any]:
    db = _open_database(settings)
    try:
        return db, _open_blob_store(settings, database_url=db.url)
    except SystemExit:
        db.dispose()
        raise


def _open_blob_store(settings: Settings, *, database_url: Any) -> Any:
    """The store the settings name; one that cannot be used ends the command with why."""
    from app.storage.blobs.choose import open_blob_store
    from app.storage.blobs.protocol import BlobStoreUnavailable

    try:
        return open_blob_store(settings, database_url=database_url)
    except BlobStoreUnavailable as exc:
        raise SystemExit(f"Cannot use the image store: {exc}") from None


def export_command(args: argparse.Namespace) -> int:
    from app.features.archive.transfer import export_gallery

    settings = load_settings()
    if not settings.uses_postgres and not settings.database_path.exists():
        raise SystemExit(f"There is no gallery in {settings.data_dir.resolve()} to export.")
    db, blobs = _open_gallery(settings)
    try:
        counts = export_gallery(db, blobs, Path(args.file))
    finally:
        blobs.close()
        db.dispose()
    print(
        f"Exported {counts.jobs} jobs, {counts.images} images ({counts.blobs} files) and "
        f"{counts.collections} collections to {args.file}",
        file=sys.stderr,
    )
    return 0


def import_command(args: argparse.Namespace) -> int:
    from app.features.archive.transfer import ArchiveError, ImportLimits, import_gallery

    settings = load_settings()
    limits = ImportLimits(
        max_members=args.max_members,
        max_total_bytes=args.max_bytes,
        max_image_bytes=settings.download_max_bytes,
    )
    db, blobs = _open_gallery(settings)
    try:
        counts = import_gallery(
            db, blobs, Path(args.file), scratch_dir=settings.scratch_dir, limits=limits
        )
    except ArchiveError as exc:
        raise SystemExit(f"Import failed, nothing was changed: {exc}") from None
    finally:
        blobs.close()
        db.dispose()
    skipped = f"; {counts.skipped_jobs} jobs were here already" if counts.skipped_jobs else ""
    print(
        f"Imported {counts.jobs} jobs, {counts.images} images and {counts.collections} "
        f"collections into {_gallery_name(settings)}{skipped}",
        file=sys.stderr,
    )
    return 0


# --- Working through a running server ---------------------------------------------------


def _remote(args: argparse.Namespace, work: Any) -> int:
    """Run a command against a server: its errors in one line, a non-zero exit code."""
    from app.cli.remote import RemoteError

    try:
        result: int = asyncio.run(work)
    except RemoteError as error:
        if args.json:
            document = {"error": {"code": error.code, "message": error.message}}
            print(json.dumps(document), file=sys.stdout)
        print(f"seedream-playground {args.command}: {error.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing more, on a stream nobody reads.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(
            f"seedream-playground {args.command}: interrupted. Run the same command again to "
            "carry on; nothing already sent is paid for twice.",
            file=sys.stderr,
        )
        return 130
    return result


def _output(args: argparse.Namespace) -> Any:
    from app.cli.commands import Output

    return Output(json=args.json)


def generate_command(args: argparse.Namespace) -> int:
    from app.cli.commands import generate

    return _remote(
        args,
        generate(
            server=args.server,
            prompt=args.prompt,
            preset=args.preset,
            size=args.size,
            width=args.width,
            height=args.height,
            num_images=args.num_images,
            seed=args.seed,
            model=args.model,
            out=args.out,
            output=_output(args),
        ),
    )


def batch_command(args: argparse.Namespace) -> int:
    from app.cli.commands import batch

    return _remote(
        args,
        batch(
            server=args.server,
            file=args.file,
            concurrency=args.concurrency,
            out=args.out,
            retry_failed=args.retry_failed,
            output=_output(args),
        ),
    )


def _confirm(question: str) -> bool:
    from app.cli.remote import RemoteError

    if not sys.stdin.isatty():
        raise RemoteError("No terminal to ask for confirmation on: pass --yes to go ahead.")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def grid_command(args: argparse.Namespace) -> int:
    from app.cli.commands import grid, size_fields
    from app.cli.remote import RemoteError

    try:
        base = {**size_fields(args.size, args.width, args.height)}
    except RemoteError as error:
        print(f"seedream-playground grid: {error.message}", file=sys.stderr)
        return 1
    base.update(num_images=args.num_images, seed=args.seed)
    axes = [axis for axis in (args.x, args.y, args.z) if axis]
    return _remote(
        args,
        grid(
            server=args.server,
            prompt=args.prompt,
            axes=axes,
            base=base,
            model=args.model,
            preset=args.preset,
            yes=args.yes,
            new=args.new,
            out=args.out,
            output=_output(args),
            confirm=_confirm,
        ),
    )


def _server_options(parser: argparse.ArgumentParser) -> None:
    from app.cli.remote import DEFAULT_SERVER

    parser.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        help=f"the playground to work through (default {DEFAULT_SERVER}); "
        "its API token, if it has sign-in, in PLAYGROUND_TOKEN",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def _run_options(parser: argparse.ArgumentParser, *, prompt_required: bool = False) -> None:
    parser.add_argument(
        "prompt",
        nargs=None if prompt_required else "?",
        metavar="PROMPT",
        help="what to draw (with --preset, replaces the preset's prompt)",
    )
    parser.add_argument("--preset", metavar="SLUG", help="start from a built-in preset")
    parser.add_argument(
        "--size", metavar="S", help="a named size (square_hd, landscape_16_9, ...) or WxH"
    )
    parser.add_argument("--width", type=int, metavar="W", help="custom width, with --height")
    parser.add_argument("--height", type=int, metavar="H", help="custom height, with --width")
    parser.add_argument("--num-images", type=int, metavar="N", help="images per job")
    parser.add_argument("--seed", type=int, metavar="N", help="a fixed seed")
    parser.add_argument("--model", metavar="M", help="PixelDojo model apiId")
    parser.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="where to write (default: .)"
    )


def _add_remote_commands(commands: Any) -> None:
    generate_parser = commands.add_parser(
        "generate", help="make images through a running server and write them here"
    )
    _run_options(generate_parser)
    _server_options(generate_parser)
    generate_parser.set_defaults(handler=generate_command)

    batch_parser = commands.add_parser(
        "batch", help="make one job per row of a CSV or JSONL file; rerun to carry on"
    )
    batch_parser.add_argument("file", type=Path, metavar="FILE", help="CSV or JSONL, one job a row")
    batch_parser.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="jobs at once (default 4)"
    )
    batch_parser.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="where to write (default: .)"
    )
    batch_parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="submit rows that failed last time again (failed jobs cost nothing)",
    )
    _server_options(batch_parser)
    batch_parser.set_defaults(handler=batch_command)

    grid_parser = commands.add_parser(
        "grid", help="make a grid along up to three axes and save its contact sheet"
    )
    _run_options(grid_parser)
    for axis, where in (("x", "columns"), ("y", "rows"), ("z", "tabs")):
        grid_parser.add_argument(
            f"--{axis}",
            metavar="NAME=V1,V2",
            help=f"the {where}: preset=, seed= (or seed=random:N), size=, num_images=, "
            "width=, height=, prompt=FIND,REPLACEMENT,...",
        )
    grid_parser.add_argument("--yes", "-y", action="store_true", help="do not ask first")
    grid_parser.add_argument(
        "--new", action="store_true", help="a new grid, even if this command made one before"
    )
    _server_options(grid_parser)
    grid_parser.set_defaults(handler=grid_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seedream-playground",
        description="A playground and shared gallery for Seedream 4.5 through the PixelDojo API.",
        epilog="Data lives in PLAYGROUND_DATA_DIR, or else in your own data folder "
        f"({default_data_dir()}); every command says which one it uses.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_parser = commands.add_parser(
        "serve",
        help="run the web app",
        description="Run the web app: demo mode without PIXELDOJO_API_KEY.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve_parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0: every address of this machine; needs sign-in)",
    )
    serve_parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve_parser.add_argument("--log-level", default="info", help="uvicorn log level")
    serve_parser.add_argument(
        "--no-worker",
        action="store_true",
        help="web only: submit jobs but never poll them (run `seedream-playground worker`s "
        "on the same database); needs PIXELDOJO_API_KEY",
    )
    serve_parser.set_defaults(handler=serve)

    worker_parser = commands.add_parser(
        "worker",
        help="poll jobs and store their images, with no web app (beside `serve --no-worker`)",
        description="Poll jobs and store their images until stopped (SIGTERM or Ctrl+C hands "
        "unfinished work back). Run as many as you like on one PostgreSQL database; "
        "needs PIXELDOJO_API_KEY.",
    )
    worker_parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="jobs this worker handles at once (default: PLAYGROUND_POLLER_CONCURRENCY, 8)",
    )
    worker_parser.add_argument(
        "--health-port",
        type=int,
        metavar="N",
        help="answer /livez, /readyz (and /metrics with PLAYGROUND_METRICS=true) on this port",
    )
    worker_parser.add_argument(
        "--health-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address the health port listens on (default 127.0.0.1)",
    )
    worker_parser.add_argument("--log-level", default="info", help="log level")
    worker_parser.set_defaults(handler=worker)

    emulator_parser = commands.add_parser(
        "emulator",
        help="run the PixelDojo emulator on its own, for local development",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    emulator_parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulator_parser.add_argument("--port", type=int, default=9100, help="port to listen on")
    emulator_parser.add_argument(
        "--job-seconds", type=float, default=3.0, help="how long each job takes"
    )
    emulator_parser.add_argument(
        "--strict", action="store_true", help="refuse aspect_ratio like any unknown field"
    )
    emulator_parser.add_argument(
        "--key", action="append", help="accept only this API key (repeatable)"
    )
    emulator_parser.add_argument("--log-level", default="info", help="uvicorn log level")
    emulator_parser.set_defaults(handler=emulator)

    doctor_parser = commands.add_parser(
        "doctor",
        help="check the key, the model and its live schema against PixelDojo (spends nothing)",
        description="Check that the app can work with PixelDojo: the base URL, the key, the "
        "model, its live schema and every way it differs from the built-in rules, the rate-limit "
        "headers and the clock. Spends nothing unless --run. Exit status: 0 the app can work, "
        "1 something blocks it (the reason in the last line), 2 no key to check.",
    )
    doctor_parser.add_argument(
        "--run", action="store_true", help="also spend one 1-image job at the cheapest size"
    )
    doctor_parser.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor_parser.add_argument("--model", help="check this model apiId instead of PLAYGROUND_MODEL")
    doctor_parser.set_defaults(handler=doctor)

    migrate_parser = commands.add_parser(
        "migrate",
        help="bring the database schema up to date (the app also does it when it starts)",
    )
    migrate_parser.set_defaults(handler=migrate)

    backup_parser = commands.add_parser(
        "backup", help="copy the data dir consistently into a tar file, even while the app runs"
    )
    backup_parser.add_argument("file", type=Path, help="the archive to write")
    backup_parser.set_defaults(handler=backup)

    users_parser = commands.add_parser(
        "users", help="manage the people who may sign in (the first one added is an admin)"
    )
    users_commands = users_parser.add_subparsers(
        dest="users_command", required=True, metavar="ACTION"
    )
    add_parser = users_commands.add_parser("add", help="add a person")
    add_parser.add_argument("name")
    add_parser.add_argument("--admin", action="store_true", help="may manage people and budgets")
    users_commands.add_parser("list", help="list the people")
    remove_parser = users_commands.add_parser("remove", help="remove a person (work is kept)")
    remove_parser.add_argument("name")
    password_parser = users_commands.add_parser("set-password", help="set a new password")
    password_parser.add_argument("name")
    for needs_password in (add_parser, password_parser):
        needs_password.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
    users_parser.set_defaults(handler=users)

    export_parser = commands.add_parser(
        "export", help="write the whole gallery (jobs, images, collections) to one file"
    )
    export_parser.add_argument("file", help="the file to write, a zip")
    export_parser.set_defaults(handler=export_command)

    import_parser = commands.add_parser(
        "import", help="add a gallery written by `export` to this one"
    )
    import_parser.add_argument("file", help="a file written by `seedream-playground export`")
    import_parser.add_argument(
        "--max-members",
        type=int,
        default=1_000_000,
        help="refuse an archive with more members than this (default 1,000,000)",
    )
    import_parser.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        help="refuse an archive holding more bytes uncompressed than this "
        "(default: the free space of the data dir)",
    )
    import_parser.set_defaults(handler=import_command)
    _add_remote_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "grid" and not args.x:
        parser.error("grid needs at least --x NAME=VALUE,VALUE,...")
    if args.command == "worker" and args.concurrency is not None and args.concurrency < 1:
        parser.error("--concurrency must be 1 or more")
    port = getattr(args, "health_port", None)
    if args.command == "worker" and port is not None and not 0 < port < 65536:
        parser.error("--health-port must be a port number, 1 to 65535")
    if args.command == "batch" and args.concurrency < 1:
        parser.error("--concurrency must be 1 or more")
    result: int = args.handler(args)
    return result

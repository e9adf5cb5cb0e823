"""The `seedream-playground` command (also `python -m app`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from app import __version__
from app.config import Settings


def load_settings() -> Settings:
    """Settings from the environment and `.env`; a bad value exits with a readable message."""
    try:
        return Settings()
    except ValidationError as exc:
        # Never echo the input: it may be the API key.
        lines = [
            f"  {'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise SystemExit("Invalid settings:\n" + "\n".join(lines)) from None


def serve(args: argparse.Namespace) -> int:
    from app.main import create_app

    settings = load_settings()
    mode = (
        "demo mode: images are generated locally by the built-in emulator, no credits are spent"
        if settings.demo_mode
        else f"using PixelDojo at {settings.pixeldojo_base_url}"
    )
    print(f"Seedream Playground {__version__}: {mode}", file=sys.stderr)
    print(f"Data in {settings.data_dir.resolve()}", file=sys.stderr)
    print(f"Open http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        proxy_headers=False,
        # Open live-update streams would otherwise hold a Ctrl+C until every tab closes.
        timeout_graceful_shutdown=5,
    )
    return 0


def emulator(args: argparse.Namespace) -> int:
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


def backup(args: argparse.Namespace) -> int:
    from app.backup import BackupError
    from app.backup import backup as make_backup

    settings = load_settings()
    try:
        summary = make_backup(settings, args.file)
    except BackupError as exc:
        raise SystemExit(f"Backup failed: {exc}") from None
    print(
        f"Backed up {settings.data_dir} to {args.file} "
        f"({summary['images']} images). Restore with: tar -xf {args.file} -C <data dir>",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seedream-playground",
        description="A playground and shared gallery for Seedream 4.5 through the PixelDojo API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve_parser = commands.add_parser("serve", help="run the web app")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve_parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve_parser.add_argument("--log-level", default="info", help="uvicorn log level")
    serve_parser.set_defaults(handler=serve)

    emulator_parser = commands.add_parser(
        "emulator", help="run the PixelDojo emulator on its own, for local development"
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

    backup_parser = commands.add_parser(
        "backup", help="copy the data dir consistently into a tar file, even while the app runs"
    )
    backup_parser.add_argument("file", type=Path, help="the archive to write")
    backup_parser.set_defaults(handler=backup)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result

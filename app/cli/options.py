"""What the commands share: the options every command takes, the run options of
`generate` and `grid`, and how a command that works through a server runs (its errors
in one line, Ctrl-C's word on what goes on)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from app.cli.credentials import DEFAULT_SERVER, SERVER_VARIABLE, TOKEN_VARIABLE
from app.cli.output import PROG, Output
from app.cli.remote import RemoteError

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 88}


def _flag(name: str) -> Callable[[click.Context, click.Parameter, bool], None]:
    def remember(context: click.Context, _: click.Parameter, value: bool) -> None:
        if value:
            context.find_root().meta[name] = True

    return remember


def common(function: F) -> F:
    """-q, -v and --debug, on every command (and before it)."""
    for decorator in (
        click.option(
            "--debug",
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_flag("debug"),
            help="Show the traceback of an error, not just its one line.",
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_flag("verbose"),
            help="Say more about what is going on.",
        ),
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_flag("quiet"),
            help="Say nothing on standard error but errors; no progress.",
        ),
    ):
        function = decorator(function)
    return function


def server_options(function: F) -> F:
    """--server and --json, for the commands that work through a running playground."""
    function = click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on standard output."
    )(function)
    return click.option(
        "--server",
        metavar="URL",
        help=f"The playground to work through [default: {SERVER_VARIABLE}, else "
        f"{DEFAULT_SERVER}]. With sign-in on, its token comes from {TOKEN_VARIABLE} or "
        "`seedream-playground login`.",
    )(function)


def output_for(as_json: bool = False) -> Output:
    meta = click.get_current_context().find_root().meta
    return Output(json=as_json, quiet=bool(meta.get("quiet")), verbose=bool(meta.get("verbose")))


def run_remote(output: Output, work: Coroutine[Any, Any, int]) -> int:
    """Run a command against a server: its errors in one line, a non-zero exit code."""
    name = click.get_current_context().command_path
    try:
        return asyncio.run(work)
    except RemoteError as error:
        if click.get_current_context().find_root().meta.get("debug"):
            traceback.print_exc()
        if output.json:
            document = {"error": {"code": error.code, "message": error.message}}
            print(json.dumps(document), file=sys.stdout)
        print(f"{name}: {error.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing more, on a stream nobody reads.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        hint = output.interrupt_hint or (
            "Run the same command again to carry on; nothing already sent is paid for twice."
        )
        print(f"{name}: interrupted. {hint}", file=sys.stderr)
        return 130


def examples(*lines: str) -> str:
    """An epilog of examples, kept as written (click rewraps paragraphs otherwise); each is
    a command of its own, unless it starts with `$ ` (a pipe, as typed) or with spaces
    (the rest of the one before, after its `\\`)."""
    shown = [
        line[2:] if line.startswith("$ ") else line if line.startswith(" ") else f"{PROG} {line}"
        for line in lines
    ]
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in shown)

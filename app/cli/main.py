"""The `seedream-playground` command (also `python -m app`): its commands, one module per
group, and how any error a person can cause ends: one line, a non-zero exit (the
traceback only with --debug).

Exit codes: 0 done; 1 an error (said in one line); 2 a command used wrongly (see its
--help); 130 interrupted. `doctor` has codes of its own (its --help says).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

import click

from app import __version__
from app.cli.archive import backup, export_command, import_command
from app.cli.batch import batch
from app.cli.doctor import doctor
from app.cli.generate import generate
from app.cli.grid import grid
from app.cli.jobs import jobs, models, presets
from app.cli.options import CONTEXT, common
from app.cli.output import PROG
from app.cli.serve import emulator, migrate, serve, worker
from app.cli.users import login, users
from app.core.config import default_data_dir

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VARIABLE = "_SEEDREAM_PLAYGROUND_COMPLETE"


class Commands(click.Group):
    """The commands in the order a newcomer meets them, not alphabetical."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(
    cls=Commands,
    context_settings=CONTEXT,
    invoke_without_command=True,
    epilog=f"Data lives in PLAYGROUND_DATA_DIR, or else in your own data folder "
    f"({default_data_dir()}); every command that uses it says which. Each command's "
    "--help has examples.",
)
@click.version_option(__version__, "--version", prog_name=PROG)
@common
@click.pass_context
def cli(context: click.Context) -> None:
    """A playground and shared gallery for Seedream 4.5 through the PixelDojo API.

    Start it (demo mode without PIXELDOJO_API_KEY), then make images in the browser or
    from here:

    \b
      seedream-playground serve
      seedream-playground generate "a cat"
    """
    if context.invoked_subcommand is None:
        click.echo(context.get_help())


@click.command(
    short_help="Print a shell completion script.",
    epilog=f"\b\nExamples:\n  {PROG} completion bash >> ~/.bashrc",
)
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (source it from your shell's startup file):
    commands, options, and choices complete with Tab."""
    from click.shell_completion import get_completion_class

    found = get_completion_class(shell)
    assert found is not None
    click.echo(found(cli, {}, PROG, COMPLETE_VARIABLE).source())


for command in (
    serve,
    generate,
    batch,
    grid,
    jobs,
    models,
    presets,
    doctor,
    login,
    users,
    worker,
    emulator,
    export_command,
    import_command,
    backup,
    migrate,
    completion,
):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; its exit code. Errors a person can cause end in one line (--debug
    shows the traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        result = cli.main(
            args=args, prog_name=PROG, standalone_mode=False, complete_var=COMPLETE_VARIABLE
        )
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else PROG
        print(f"{where}: {exc.format_message()} (see {where} --help)", file=sys.stderr)
        return 2
    except click.ClickException as exc:
        print(f"{PROG}: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        print(f"{PROG}: interrupted.", file=sys.stderr)
        return 130
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        print(f"{PROG}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except SystemExit:
        raise
    except Exception as exc:
        if debug:
            traceback.print_exc()
            return 1
        print(
            f"{PROG}: unexpected error: {type(exc).__name__}: {exc} "
            "(--debug shows where; please report it)",
            file=sys.stderr,
        )
        return 1
    return result if isinstance(result, int) else 0

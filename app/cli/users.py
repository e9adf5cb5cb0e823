"""`users`: the people who may sign in to this machine's playground; `login`: an API token
from a running playground, kept for the command line.

`users` works on the gallery in the data dir (the first person added is an admin, and
sign-in is then on). `login` signs in to a server with a name and password, and keeps
the token it is given in the person's own config folder (0600), for `generate` and the
rest to show that server.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from app.cli.credentials import store_token
from app.cli.local import CLI_ACTOR, load_settings, open_database
from app.cli.options import CONTEXT, common, examples, output_for, run_remote
from app.cli.remote import Remote, RemoteError, chosen_server

if TYPE_CHECKING:
    from app.storage.db.engine import Database
    from app.storage.db.tables import User

PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input."
)


def read_password(password_stdin: bool, *, twice: bool = True) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise SystemExit("No terminal to ask for the password: pass it with --password-stdin.")
    first = getpass.getpass("Password (10 characters or more): " if twice else "Password: ")
    if twice and getpass.getpass("The same again: ") != first:
        raise SystemExit("The two passwords differ; nothing was changed.")
    return first


@click.group(context_settings=CONTEXT, short_help="Manage who may sign in.")
def users() -> None:
    """Manage the people who may sign in (the first one added is an admin)."""


@users.command(epilog=examples("users add alice --admin", "users add bob --password-stdin"))
@click.argument("name")
@click.option("--admin", is_flag=True, help="May manage people and budgets.")
@PASSWORD_STDIN
@common
def add(name: str, admin: bool, password_stdin: bool) -> int:
    """Add a person (asks for their password)."""
    from app.features.people import accounts, audit

    def work(db: Database) -> None:
        first = not accounts.users_exist(db)
        user = accounts.create_user(
            db, name=name, password=read_password(password_stdin), is_admin=admin or first
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

    return _on_gallery(work)


@users.command(name="list", epilog=examples("users list"))
@common
def list_users() -> int:
    """List the people, their role and budgets."""
    from app.features.people import accounts

    def work(db: Database) -> None:
        for user in accounts.list_users(db):
            role = "admin" if user.is_admin else "member"
            limits = ", ".join(
                f"{label} budget {value:g}"
                for label, value in (("daily", user.daily_budget), ("monthly", user.monthly_budget))
                if value is not None
            )
            print(f"{user.name}\t{role}" + (f"\t{limits}" if limits else ""))

    return _on_gallery(work)


@users.command(epilog=examples("users remove bob"))
@click.argument("name")
@common
def remove(name: str) -> int:
    """Remove a person: they are signed out; their work stays."""
    from app.features.people import accounts, audit

    def work(db: Database) -> None:
        found = _find(db, name)
        assert found.id is not None
        accounts.remove_user(db, user_id=found.id)
        audit.record(
            db, action=audit.Action.USER_REMOVED, user=None, actor=CLI_ACTOR, detail=found.name
        )
        print(f"Removed {found.name}; their work stays in the gallery.", file=sys.stderr)

    return _on_gallery(work)


@users.command(name="set-password", epilog=examples("users set-password bob"))
@click.argument("name")
@PASSWORD_STDIN
@common
def set_password(name: str, password_stdin: bool) -> int:
    """Set a new password; signs them out everywhere and revokes their API tokens."""
    from app.features.people import accounts, audit

    def work(db: Database) -> None:
        found = _find(db, name)
        assert found.id is not None
        # An admin's reset: whoever knew the old password may have made tokens with it.
        accounts.set_password(
            db, user_id=found.id, password=read_password(password_stdin), revoke_tokens=True
        )
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

    return _on_gallery(work)


def _find(db: Database, name: str) -> User:
    from app.features.people import accounts

    found = accounts.find_user(db, name=name)
    if found is None or found.removed_at is not None or found.id is None:
        raise SystemExit(f"There is no account called {name!r}.")
    return found


def _on_gallery(work: Callable[[Database], None]) -> int:
    from app.features.people import accounts

    settings = load_settings()
    db = open_database(settings)
    try:
        work(db)
    except accounts.AccountError as exc:
        raise SystemExit(f"{exc.field}: {exc.message}") from None
    finally:
        db.dispose()
    return 0


@click.command(
    short_help="Keep an API token for a playground.",
    epilog=examples(
        "login",
        "login --server https://playground.example.com --name ada",
        "login --with-token < token.txt",
    ),
)
@click.option(
    "--server", metavar="URL", help="The playground to sign in to [default: as generate]."
)
@click.option("--name", metavar="NAME", help="Your name there (asked if not given).")
@PASSWORD_STDIN
@click.option(
    "--with-token", is_flag=True, help="Keep an API token read from standard input instead."
)
@click.option(
    "--token-name",
    default="command line",
    show_default=True,
    help="What the new token is called on your account page.",
)
@common
def login(
    server: str | None,
    name: str | None,
    password_stdin: bool,
    with_token: bool,
    token_name: str,
) -> int:
    """Sign in to a playground and keep an API token for the command line.

    The token is kept in your own config folder, readable by you alone (0600), and shown
    only to that server. PLAYGROUND_TOKEN, when set, is used instead.
    """
    output = output_for()

    async def work() -> int:
        where = chosen_server(server)
        if with_token:
            token = sys.stdin.readline().strip()
            if not token:
                raise RemoteError("--with-token: standard input held no token")
            async with Remote(where, token=token) as remote:
                me = await remote.get_json("/api/me")
            who = str(me.get("name") or "")
        else:
            async with Remote(where) as remote:
                if await _no_sign_in(remote):
                    output.say(f"{where} has no sign-in: the command line needs no token there.")
                    return 0
                who = name or click.prompt("Name", err=True)
                password = read_password(password_stdin, twice=False)
                made = await remote.post_json(
                    "/api/sign-in", {"name": who, "password": password, "token_name": token_name}
                )
            token = str(made["token"])
        path = store_token(where, token=token, name=who)
        output.say(f"Signed in to {where} as {who}; the token is kept in {path} (yours alone).")
        return 0

    return run_remote(output, work())


async def _no_sign_in(remote: Remote) -> bool:
    try:
        me = await remote.get_json("/api/me")
    except RemoteError as refused:
        if refused.code == "sign_in_required":
            return False
        raise
    return me.get("sign_in") is False

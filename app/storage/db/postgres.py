"""Everything that only PostgreSQL needs, behind one seam (app/storage/db/sqlite.py is SQLite's).

The rest of the app speaks SQLAlchemy and runs on either database; here live the
parts that are PostgreSQL's own:

- engine options: ordinary connection pools (no single writer: the server takes row
  locks, so writers in every process run side by side), checked before use without a
  round trip where they can be (`configure_engine`);
- `lock_for_migrations`: a transaction-level advisory lock, so processes starting
  together run the migrations once, one after the other;
- prompt search: a `tsvector` column generated from `jobs.prompt` with a GIN index
  over it (created by the gallery migration). Its tokens are FTS5's `unicode61
  remove_diacritics 2` tokens (letters and digits; lower case; accents taken off
  Latin letters), so a search finds on PostgreSQL what it finds on SQLite: bare words
  match as prefixes, "quoted phrases" exactly. `prompt_term_matches` is the condition,
  and a search runs `planned_for_their_values`;
- job changes: a trigger NOTIFYs `JOB_CHANGES_CHANNEL` when a job is created or changes
  in a way a page shows, and `listen_for_job_changes` hears it in every process: a page
  served by one web process sees a job finished by a worker elsewhere at once;
- `advance_id_sequences`: ids written explicitly (an import) do not move a sequence;
- `is_integer_overflow`: how the server refuses a number too large for its column;
- `CredentialNotices`: LISTEN/NOTIFY on one channel, so a change to sessions, tokens or
  people made by one process empties every process's cache of them
  (app/features/people/credentials.py);
- `PostgresBlobStore`, the `BlobStore` (app.storage.blobs.protocol) of a gallery whose database is
  PostgreSQL, in a module of its own (app/storage/blobs/postgres.py).

Text search needs a UTF-8 database (the migration says so otherwise) and uses the ICU
collation `und-x-icu` for Unicode case and letters where the server has it.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from app.core.database_url import engine_url

log = logging.getLogger(__name__)


# Pools per process and engine. The server's connection limit (100 by default) is
# shared by every web process and worker, so each keeps its pools small.
READ_POOL = {"pool_size": 5, "max_overflow": 5}
WRITE_POOL = {"pool_size": 3, "max_overflow": 2}
APPLICATION_NAME = "seedream-playground"

# Any constant will do, as long as it is the same in every process of this app.
MIGRATION_LOCK_KEY = 0x5EED_DEA3_0000_0001

# SQLSTATE 22003, numeric_value_out_of_range: "integer out of range", "bigint out of range".
NUMERIC_VALUE_OUT_OF_RANGE = "22003"

# The search column and its index (made by the gallery migration, invisible to the models).
PROMPT_SEARCH_COLUMN = "prompt_search"
PROMPT_SEARCH_INDEX = "ix_jobs_prompt_search"


# A pooled connection idle longer than this is pinged before use: a proxy or a firewall may
# have dropped it silently. One used more recently is trusted unless its socket has news.
PING_AFTER_IDLE_SECONDS = 5.0
_LAST_USED = "playground_last_used"


def engine_options(*, writer: bool) -> dict[str, Any]:
    return {
        **(WRITE_POOL if writer else READ_POOL),
        "connect_args": {"application_name": APPLICATION_NAME},
    }


def configure_engine(engine: sa.Engine) -> None:
    """Check each connection taken from the pool, as `pool_pre_ping` would, but with a
    round trip only when needed.

    A server restart or a proxy's idle timeout leaves dead connections in the pool. A
    ping before every use (`pool_pre_ping`) finds them, at one round trip per connection
    taken, several per request. Instead a
    connection is pinged only if it sat idle longer than `PING_AFTER_IDLE_SECONDS` or its
    socket has something to read: an idle connection is sent nothing unless the server
    ends it (a terminated backend, a shutdown, a crash all close the socket, so it reads
    as ready). A failed ping replaces the connection, and the pool tries the next.
    """
    dialect = engine.dialect

    def made(dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    def returned(dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    def taken(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        last_used = record.info.get(_LAST_USED)
        fresh = last_used is not None and time.monotonic() - last_used < PING_AFTER_IDLE_SECONDS
        if fresh and not _has_news(dbapi_connection):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever the driver raises, the connection is unusable
            raise sa.exc.DisconnectionError("the pooled connection is gone") from exc

    sa.event.listen(engine, "connect", made)
    sa.event.listen(engine, "checkin", returned)
    sa.event.listen(engine, "checkout", taken)


def _has_news(dbapi_connection: Any) -> bool:
    """Whether the server sent an idle connection anything (or closed it): a poll of its
    socket, no round trip."""
    try:
        poller = select.poll()
        poller.register(dbapi_connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # a closed connection has no socket: let the ping say so
        return True


def lock_for_migrations(connection: sa.Connection) -> None:
    """Wait for any other process migrating this database; released when the transaction ends.

    The second process then finds the schema at the newest revision and has nothing to do.
    """
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def advance_id_sequences(connection: sa.Connection, tables: Sequence[sa.Table]) -> None:
    """Move each table's id sequence past its largest id: rows written with explicit ids
    (an import keeping them) do not move it, and the next new row would take a used id."""
    for table in tables:
        connection.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence(:table, 'id'),"
                f" COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            ),
            {"table": table.name},
        )


# --- Job changes, heard by every process ------------------------------------------------

# A trigger (migration 0013) sends the job's id on this channel when a job is created or
# its status, error or cost changes: what a page shows and what a worker must pick up;
# since migration 0015 also when PixelDojo calls back about it (a worker must poll it now),
# and since 0016 when the person stops it.
JOB_CHANGES_CHANNEL = "playground_job_changes"
_TRIGGER_FUNCTION = "playground_job_changed"
# Each migration that changes the trigger names its own columns: an old migration must
# keep creating the trigger it created then, over the columns that existed then.
JOB_CHANGE_COLUMNS_0013 = ("status", "error", "credit_cost")


def job_change_trigger_ddl(columns: Sequence[str]) -> list[str]:
    notify = f"""
        CREATE OR REPLACE FUNCTION {_TRIGGER_FUNCTION}() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{JOB_CHANGES_CHANNEL}', NEW.id::text);
            RETURN NULL;
        END $$
    """
    # Row triggers with a WHEN clause: the poller's bookkeeping (leases, heartbeats, poll
    # counts) notifies nobody; NOTIFY folds repeats of one payload within a transaction.
    return [
        notify,
        f"CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs "
        f"FOR EACH ROW EXECUTE FUNCTION {_TRIGGER_FUNCTION}()",
        job_update_trigger_ddl(columns),
    ]


def job_update_trigger_ddl(columns: Sequence[str]) -> str:
    changed = " OR ".join(f"OLD.{name} IS DISTINCT FROM NEW.{name}" for name in columns)
    return (
        f"CREATE TRIGGER jobs_notify_update AFTER UPDATE ON jobs FOR EACH ROW WHEN ({changed}) "
        f"EXECUTE FUNCTION {_TRIGGER_FUNCTION}()"
    )


def drop_job_change_trigger_ddl() -> list[str]:
    return [
        "DROP TRIGGER IF EXISTS jobs_notify_update ON jobs",
        "DROP TRIGGER IF EXISTS jobs_notify_insert ON jobs",
        f"DROP FUNCTION IF EXISTS {_TRIGGER_FUNCTION}()",
    ]


def listen_for_job_changes(
    url: str | sa.URL, on_change: Callable[[], None], stop: threading.Event
) -> None:
    """Call `on_change` for each job change any process commits, until `stop` is set.
    Changes missed while the connection was lost are caught by the pages' periodic look
    and the workers' periodic claim."""
    listen(url, JOB_CHANGES_CHANNEL, on_change, stop)


def listen(
    url: str | sa.URL,
    channel: str,
    on_change: Callable[[], None],
    stop: threading.Event,
    *,
    listening: threading.Event | None = None,
) -> None:
    """Call `on_change` for each NOTIFY on `channel`, until `stop` is set; and once each
    time LISTEN takes effect (for what was committed before it, or while the connection
    was lost). `listening` is set while LISTEN is in effect.

    Runs in a thread of its own, on a connection of its own outside the pools (LISTEN
    holds its connection). A lost connection is made again.
    """
    # libpq's own URL form: without SQLAlchemy's "+psycopg".
    dsn = (
        sa.make_url(engine_url(url))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )
    # Here, not at the top: the module is imported on SQLite too, where psycopg may be
    # absent (it is the [postgres] extra, app/core/extras.py).
    import psycopg

    while not stop.is_set():
        try:
            with psycopg.connect(
                dsn, autocommit=True, application_name=f"{APPLICATION_NAME} listener"
            ) as connection:
                connection.execute(f"LISTEN {channel}")
                if listening is not None:
                    listening.set()
                on_change()
                while not stop.is_set():
                    # A short timeout, so `stop` is noticed within a moment.
                    for _ in connection.notifies(timeout=LISTEN_WAKE_SECONDS, stop_after=1):
                        on_change()
        except psycopg.Error:
            if listening is not None:
                listening.clear()
            log.warning("lost the database connection listening on %s; trying again", channel)
            stop.wait(LISTEN_RETRY_SECONDS)


LISTEN_WAKE_SECONDS = 0.5
LISTEN_RETRY_SECONDS = 2.0


def is_integer_overflow(exc: BaseException) -> bool:
    """Whether `exc` is the server refusing a number too large for the column it meets."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    return getattr(exc.orig, "sqlstate", None) == NUMERIC_VALUE_OUT_OF_RANGE


def is_search_index_name(type_: str, name: str | None) -> bool:
    """The search column and its index: made by migration, invisible to the models."""
    return (type_ == "column" and name == PROMPT_SEARCH_COLUMN) or (
        type_ == "index" and name == PROMPT_SEARCH_INDEX
    )


def prompt_matches(terms: Sequence[tuple[str, bool]]) -> sa.ColumnElement[bool]:
    """Jobs whose prompt holds every (text, is_phrase) term (`prompt_term_matches` each)."""
    return sa.and_(
        *(
            prompt_term_matches(sa.bindparam(None, text, type_=sa.Text), phrase=phrase)
            for text, phrase in terms
        )
    )


def prompt_term_matches(text: sa.ColumnElement[str], *, phrase: bool) -> sa.ColumnElement[bool]:
    """Jobs whose prompt holds the term `text` (a bound parameter: a statement built once
    is run with any term).

    The term becomes a `tsquery` in the database (the migration's function tokenizes it
    as the prompts were tokenized): its tokens in a row, the last one a prefix unless the
    term was quoted. Nothing the user types is tsquery syntax. A term with no letter or
    digit in it matches nothing, as in FTS5.
    """
    prompt_search: sa.ColumnElement[Any] = sa.literal_column(f"jobs.{PROMPT_SEARCH_COLUMN}")
    return prompt_search.op("@@", is_comparison=True)(
        sa.func.playground_prompt_query(text, sa.false() if phrase else sa.true())
    )


@contextmanager
def planned_for_their_values(connection: sa.Connection) -> Iterator[None]:
    """Statements run on `connection` meanwhile are planned for their parameters' values
    each time, never from a plan kept for any values.

    psycopg prepares a statement on the server once a connection has run it five times, and
    the server then settles on a generic plan, made without the values. For a prompt search
    that plan cannot tell a common word from a rare one: it reads every match from the GIN
    index and sorts them, a cost that grows with the gallery, where walking the jobs newest
    first stops after a page of a common word's matches (docs/benchmarks.md). Planning anew
    costs a fraction of a millisecond.
    """
    driver_connection: Any = connection.connection.dbapi_connection
    threshold = driver_connection.prepare_threshold
    driver_connection.prepare_threshold = None
    try:
        yield
    finally:
        driver_connection.prepare_threshold = threshold


# --- Credentials changed elsewhere ------------------------------------------------------

CREDENTIALS_CHANNEL = "playground_credentials"


def notify_credentials_changed(engine: sa.Engine) -> None:
    """Tell every process listening (`CredentialNotices`) that credentials changed."""
    with engine.begin() as connection:
        connection.exec_driver_sql(f"NOTIFY {CREDENTIALS_CHANNEL}")


class CredentialNotices:
    """A thread that `listen`s for `notify_credentials_changed` and calls `on_change` for
    each notice (and after a lost connection comes back: notices sent meanwhile were
    missed)."""

    def __init__(self, url: sa.URL, on_change: Callable[[], None]) -> None:
        self._url = url
        self._on_change = on_change
        self._stopping = threading.Event()
        self.listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="credential notices", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=LISTEN_WAKE_SECONDS * 5)

    def _run(self) -> None:
        listen(
            self._url,
            CREDENTIALS_CHANNEL,
            self._on_change,
            self._stopping,
            listening=self.listening,
        )

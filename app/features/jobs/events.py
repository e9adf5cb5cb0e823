"""Job changes for live pages: what a Server-Sent Events stream tells its page, and when.

A page asks to watch the jobs it shows running. Its stream looks at them again
whenever this process may have changed one, and on a timer besides:

- In this process every write goes through the database's writer engine, whose one
  connection is checked back in the moment a transaction ends. `JobEvents` listens
  for that and wakes the streams at once, so submissions and the poller need not
  know the streams exist.
- Other processes on the same database (web processes, `seedream-playground worker`s)
  are heard through the database: PostgreSQL NOTIFYs every visible job change (a
  trigger) and SQLite's change counter moves on every commit (`Database.watch_changes`,
  one thread per process). A worker subscribes too, so a job submitted by a web
  process elsewhere is picked up at once.
- As a safety net each stream also looks every `RECHECK_SECONDS`. A look is one
  primary-key query over the handful of watched ids.

A job is sent again only when something a page shows has changed (its status,
error or cost), not on each of the poller's bookkeeping writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from app.storage.db.engine import Database
from app.storage.db.tables import FINISHED_STATUSES, ROW_ID_MAX, Job, JobStatus

log = logging.getLogger(__name__)

# How often a stream looks for changes nobody told it about (another process's).
RECHECK_SECONDS = 2.0
# A comment line this often keeps proxies from closing a quiet stream.
HEARTBEAT_SECONDS = 15.0
# How long a browser waits before reconnecting a dropped stream.
RECONNECT_MILLISECONDS = 2000
# One page watches at most this many jobs in one stream ("try all presets" is eight).
MAX_WATCHED = 50


class JobEvents:
    """Wakes the open streams (and subscribers, such as the poller) of this process when a
    write transaction here has ended, or another process has changed a job."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._listeners: set[asyncio.Event] = set()
        self._subscribers: list[Callable[[], None]] = []
        self._engine: sa.Engine | None = None
        self._stop_watching = threading.Event()
        self._watcher: threading.Thread | None = None

    def attach(self, engine: sa.Engine) -> None:
        self._engine = engine
        sa.event.listen(engine, "checkin", self._on_checkin)

    def watch(self, db: Database) -> None:
        """Hear other processes' job changes too, from a thread of this object's own."""
        self._watcher = threading.Thread(
            target=self._watch, args=(db,), name="job-change-watcher", daemon=True
        )
        self._watcher.start()

    def _watch(self, db: Database) -> None:
        try:
            db.watch_changes(self._changed_elsewhere, self._stop_watching)
        except Exception:
            # Pages and workers still look on their timers; only the promptness is lost.
            log.exception("stopped watching the database for other processes' job changes")

    def detach(self) -> None:
        if self._engine is not None:
            sa.event.remove(self._engine, "checkin", self._on_checkin)
            self._engine = None
        self._stop_watching.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) whenever a job may have changed in another
        process. (Not for this process's own writes: the poller, a subscriber, would wake
        itself with each of its own.)"""
        self._subscribers.append(callback)

    def _on_checkin(self, *_: Any) -> None:
        self.notify()

    def notify(self) -> None:
        """Something may have changed; safe to call from any thread."""
        if self._listeners:
            self._call_soon(self._wake_listeners)

    def _changed_elsewhere(self) -> None:
        if self._listeners or self._subscribers:
            self._call_soon(self._wake_all)

    def _call_soon(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody listens any more
            self._loop.call_soon_threadsafe(callback)

    def _wake_listeners(self) -> None:
        for listener in self._listeners:
            listener.set()

    def _wake_all(self) -> None:
        self._wake_listeners()
        for callback in self._subscribers:
            callback()

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Event]:
        listener = asyncio.Event()
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    @property
    def listener_count(self) -> int:
        return len(self._listeners)


async def next_look(listener: asyncio.Event, *, timeout: float = RECHECK_SECONDS) -> None:
    """Return when woken, or after `timeout` seconds, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listener.wait(), timeout)
    listener.clear()


# What a page shows of a job; a change in any of these is worth sending.
Shown = tuple[JobStatus, str | None, float | None, bool]


def shown_states(db: Database, *, job_ids: Sequence[int]) -> dict[int, Shown]:
    with db.read() as session:
        rows = session.execute(
            sa.select(
                col(Job.id),
                col(Job.status),
                col(Job.error),
                col(Job.credit_cost),
                col(Job.stopped_at),
            ).where(col(Job.id).in_(job_ids))
        ).all()
    return {
        job_id: (JobStatus(status), error, cost, stopped is not None)
        for job_id, status, error, cost, stopped in rows
        if job_id
    }


@dataclass
class JobWatch:
    """What one stream has told its page so far."""

    job_ids: list[int]
    sent: dict[int, Shown] = field(default_factory=dict)

    def changed(self, states: dict[int, Shown]) -> list[int]:
        """Ids to send now (each watched job once at first, then on every visible change)."""
        fresh = [job_id for job_id, state in states.items() if self.sent.get(job_id) != state]
        self.sent.update((job_id, states[job_id]) for job_id in fresh)
        return sorted(fresh)

    @property
    def all_finished(self) -> bool:
        """Every watched job that exists has been sent in a finished state."""
        return all(state[0] in FINISHED_STATUSES for state in self.sent.values())


def parse_job_ids(raw: str) -> list[int]:
    """ "3,5,8" → [3, 5, 8]: unique, at most MAX_WATCHED; ValueError names the problem."""
    parts = [part for part in raw.split(",") if part.strip()]
    if not parts:
        raise ValueError("name at least one job id")
    try:
        ids = sorted({int(part) for part in parts})
    except ValueError:
        raise ValueError("must be job ids separated by commas") from None
    if ids[0] < 1 or ids[-1] > ROW_ID_MAX:
        raise ValueError("must be job ids, from 1 up")
    if len(ids) > MAX_WATCHED:
        raise ValueError(f"at most {MAX_WATCHED} jobs at once")
    return ids


def format_event(event: str, data: str, *, event_id: str | None = None) -> str:
    """One SSE message; every line of `data` gets its own `data:` prefix, as the format needs."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return "\n".join(lines) + "\n\n"

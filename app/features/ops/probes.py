"""Readiness: whether this process can do its work now, part by part.

`/livez` says only that the process answers; `/readyz` (app/web/ops.py) and a worker's
health port (app/worker/health.py) ask each part this process depends on:

- the database answers (`SELECT 1`), and its schema is at this version's revision;
- the blob store answers (one round trip: app/storage/blobs/protocol.py `check`);
- a web process holds a signing key (an empty one would sign nothing anyone could trust);
- a worker's heartbeat reached the database recently, and its polling loop runs: a
  worker that cannot beat looks dead to the others, who take its jobs over.

Each part is asked in a thread with a deadline, so a database that hangs makes the probe
answer "not ready" in seconds instead of hanging with it; a part whose last check has not
come back is not asked again until it does (threads cannot be cancelled, and a probe every
few seconds would otherwise pile them up). The answer goes to anyone who asks (an
orchestrator signs in as nobody), so it names each part and, for a failure, the exception's
class, never its message or where the part is: a driver's message may quote the connection
string, and a store's names its bucket.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from app.storage.blobs.protocol import BlobStore, BlobStoreUnavailable
from app.storage.db.engine import Database, newest_revision

log = logging.getLogger(__name__)

# Long enough for a round trip to a loaded database; short enough that an orchestrator's
# probe (Docker's default timeout is 30 s, Kubernetes' 1 s) gets an answer.
CHECK_TIMEOUT_SECONDS = 3.0

T = TypeVar("T")


@dataclass(frozen=True)
class Part:
    """One part's state: its name as the answer gives it, whether it is fine, and why."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    parts: tuple[Part, ...]

    @property
    def ready(self) -> bool:
        return all(part.ok for part in self.parts)

    @property
    def failing(self) -> list[str]:
        return [part.name for part in self.parts if not part.ok]

    def to_json(self) -> dict[str, object]:
        """The probe's answer: ready or not, the failing parts by name, each part's state."""
        return {
            "status": "ready" if self.ready else "not ready",
            "failing": self.failing,
            "checks": {part.name: part.detail for part in self.parts},
        }


class _NoAnswer(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Probes:
    """The readiness checks of one process: a web process passes its signing key, a worker
    its heartbeat (seconds since the database last heard it, None before it has) and its
    polling loop's state."""

    def __init__(
        self,
        *,
        db: Database,
        blobs: BlobStore,
        signing_key: bytes | None = None,
        heartbeat: Callable[[], float | None] | None = None,
        polling: Callable[[], bool] | None = None,
        lease_seconds: float = 30.0,
        timeout_seconds: float = CHECK_TIMEOUT_SECONDS,
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._signing_key = signing_key
        self._heartbeat = heartbeat
        self._polling = polling
        self._lease_seconds = lease_seconds
        self._timeout = timeout_seconds
        # Parts whose check is still out, by when it started (monotonic clock).
        self._asking: dict[str, float] = {}

    async def readiness(self) -> Readiness:
        parts: list[Part] = []
        async with anyio.create_task_group() as group:
            database: list[Part] = []
            blobs: list[Part] = []
            group.start_soon(self._database_parts, database)
            group.start_soon(self._blob_store_part, blobs)
        parts += database + blobs
        if self._signing_key is not None:
            parts.append(_signing_key_part(self._signing_key))
        if self._heartbeat is not None:
            parts.append(self._heartbeat_part())
        readiness = Readiness(tuple(parts))
        if not readiness.ready:
            log.warning(
                "not ready: %s",
                "; ".join(f"{part.name}: {part.detail}" for part in parts if not part.ok),
            )
        return readiness

    async def _database_parts(self, into: list[Part]) -> None:
        try:
            revision = await self._ask("database", self._db.schema_revision)
        except _NoAnswer as failed:
            into.append(Part("database", False, failed.detail))
            into.append(Part("migrations", False, "unknown: the database does not answer"))
            return
        into.append(Part("database", True, "answers"))
        newest = newest_revision()
        if revision == newest:
            into.append(Part("migrations", True, f"at revision {revision}"))
        else:
            into.append(
                Part(
                    "migrations",
                    False,
                    f"the schema is at revision {revision or '(none)'}, this version needs "
                    f"{newest}: run `seedream-playground migrate`",
                )
            )

    async def _blob_store_part(self, into: list[Part]) -> None:
        try:
            await self._ask("blob store", self._blobs.check)
        except _NoAnswer as failed:
            into.append(Part("blob store", False, failed.detail))
        else:
            into.append(Part("blob store", True, "answers"))

    def _heartbeat_part(self) -> Part:
        assert self._heartbeat is not None
        if self._polling is not None and not self._polling():
            return Part("heartbeat", False, "the polling loop is not running")
        since = self._heartbeat()
        if since is None:
            return Part("heartbeat", False, "none recorded yet")
        if since > self._lease_seconds:
            return Part(
                "heartbeat",
                False,
                f"last recorded {since:.0f} s ago, longer than a lease "
                f"({self._lease_seconds:g} s): other workers may take this one's jobs over",
            )
        return Part("heartbeat", True, f"last recorded {since:.0f} s ago")

    async def _ask(self, part: str, check: Callable[[], T]) -> T:
        """Run `check` in a thread within the deadline; _NoAnswer says why it failed."""
        started = self._asking.get(part)
        if started is not None:
            raise _NoAnswer(f"no answer to a check started {time.monotonic() - started:.0f} s ago")
        self._asking[part] = time.monotonic()
        began: list[bool] = []

        def call() -> T:
            began.append(True)
            try:
                return check()
            finally:
                self._asking.pop(part, None)

        try:
            with anyio.fail_after(self._timeout):
                return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except TimeoutError:
            if not began:  # it waited for a thread and never ran: nothing is still out
                self._asking.pop(part, None)
            raise _NoAnswer(f"no answer within {self._timeout:g} s") from None
        except Exception as exc:
            if isinstance(exc, BlobStoreUnavailable):
                # The store's own message names where it is (never a credential): for the
                # log, not for an anonymous caller of the probe.
                log.warning("%s", exc)
            raise _NoAnswer(f"does not answer ({exc.__class__.__name__})") from None


def _signing_key_part(key: bytes) -> Part:
    if not key:
        return Part("signing key", False, "empty: sessions and links could be forged")
    return Part("signing key", True, "loaded")

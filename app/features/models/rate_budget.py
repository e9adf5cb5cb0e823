"""The upstream rate limit as one budget per API key, shared by every process.

PixelDojo counts calls per key, not per process: two web processes and three
workers each spending "their own" 10 a minute would spend 50. So the token bucket
(app.upstream.ratelimit's arithmetic) lives in a `rate_budgets` row, keyed by the
key's fingerprint, and each call takes its token in a short write transaction
(the row locked on PostgreSQL; SQLite's writer lock does the same). A 429's pause
is written there too, so every process holds off, not only the one that was told.

Every client the app makes with the team's key is made by `upstream_client` below, and
the client sends nothing without a token (app.upstream.client's `_request`): submits,
polls, the reconciling listing, the catalogue and schema reads, the key check behind the
banner's button and doctor's checks all spend this one budget.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import httpx
from pydantic import SecretStr
from sqlmodel import Session

from app.core.config import Settings
from app.features.models.key_status import fingerprint
from app.storage.db.engine import Database
from app.storage.db.tables import RateBudget
from app.storage.db.upsert import upsert
from app.upstream import PixelDojoClient
from app.upstream.ratelimit import RateLimiter, take_token


def upstream_client(
    settings: Settings,
    db: Database,
    *,
    api_key: SecretStr,
    base_url: str,
    on_response: Callable[[httpx.Response], Awaitable[None]] | None = None,
) -> PixelDojoClient:
    """The client every role uses (web, worker, doctor), its rate limit one budget per key
    in the database."""
    return PixelDojoClient(
        base_url=base_url,
        api_key=api_key,
        image_hosts=settings.image_hosts,
        timeout_seconds=settings.request_timeout_seconds,
        download_timeout_seconds=settings.download_timeout_seconds,
        max_submit_wait_seconds=settings.max_submit_wait_seconds,
        limiter=SharedRateLimiter(
            settings.upstream_rate_limit(), db=db, fingerprint=fingerprint(api_key)
        ),
        on_response=on_response,
    )


class SharedRateLimiter(RateLimiter):
    def __init__(
        self,
        per_minute: float | None,
        *,
        db: Database,
        fingerprint: str,
        reserved_for_submits: int = 2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Wall-clock seconds: every process must read the same clock.
        super().__init__(per_minute, reserved_for_submits=reserved_for_submits, clock=clock)
        self._db = db
        self._fingerprint = fingerprint

    def wait_needed(self, *, submit: bool) -> float:
        now = self._clock()
        if not self.enabled:
            # No limit of our own; only a pause the server asked for holds a call.
            with self._db.read() as session:
                row = session.get(RateBudget, self._fingerprint)
            return max(0.0, row.paused_until - now) if row is not None else 0.0
        per_minute = self.per_minute
        assert per_minute is not None

        def take(session: Session) -> float:
            row = self._row(session, now)
            if now < row.paused_until:
                return row.paused_until - now
            row.tokens, wait = take_token(
                tokens=row.tokens,
                elapsed=now - row.updated_at,
                per_minute=per_minute,
                reserve=self._reserve,
                submit=submit,
            )
            row.updated_at = max(row.updated_at, now)
            session.add(row)
            return wait

        return upsert(self._db, take)

    def pause(self, seconds: float) -> None:
        until = self._clock() + seconds

        def hold(session: Session) -> None:
            row = self._row(session, self._clock())
            row.paused_until = max(row.paused_until, until)
            session.add(row)

        upsert(self._db, hold)

    def _row(self, session: Session, now: float) -> RateBudget:
        """This key's row, locked (on PostgreSQL) until the write ends; a new one if none."""
        row = session.get(RateBudget, self._fingerprint, with_for_update=True)
        if row is None:
            row = RateBudget(fingerprint=self._fingerprint, tokens=self._capacity, updated_at=now)
        return row

    async def hold(self, seconds: float) -> None:
        await anyio.to_thread.run_sync(self.pause, seconds)

    async def _wait_needed(self, *, submit: bool) -> float:
        return await anyio.to_thread.run_sync(lambda: self.wait_needed(submit=submit))

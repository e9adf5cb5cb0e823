"""One limiter for every upstream API call.

This module's `RateLimiter` keeps its bucket in this process's memory (the doctor,
a script); the app's own (app.features.models.rate_budget) keeps it in the database, one budget per
API key for every web process and worker, with the same arithmetic (`take_token`).

PixelDojo's limits are not published with certainty (10 a minute in the
founder's notes, 60 in the legacy API), so calls are spaced by a token bucket
whose rate is a setting, and a 429 pauses every caller for as long as the
server asked. Submissions come first: polls leave a few tokens for them, so a
person pressing Generate does not queue behind background polling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from app.upstream.errors import LocalRateLimit


def take_token(
    *, tokens: float, elapsed: float, per_minute: float, reserve: float, submit: bool
) -> tuple[float, float]:
    """The bucket after `elapsed` seconds of refill and one call: (tokens left, 0) if the call
    may go now, else (tokens as refilled, seconds to wait)."""
    capacity = max(1.0, per_minute)
    rate = per_minute / 60.0
    tokens = min(capacity, tokens + max(0.0, elapsed) * rate)
    floor = 1.0 if submit else 1.0 + reserve
    if tokens >= floor:
        return tokens - 1.0, 0.0
    return tokens, (floor - tokens) / rate


class RateLimiter:
    def __init__(
        self,
        per_minute: float | None,
        *,
        reserved_for_submits: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._capacity = max(1.0, per_minute or 1.0)
        self._reserve = min(float(reserved_for_submits), self._capacity - 1)
        self._tokens = self._capacity
        self._updated = clock()
        self._paused_until = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.per_minute)

    def pause(self, seconds: float) -> None:
        """The server asked everyone to wait (a 429): hold every call until then."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def wait_needed(self, *, submit: bool) -> float:
        """Seconds until a call may go, or 0 (and the token is taken) if it may go now."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        if not self.enabled:
            return 0.0
        assert self.per_minute is not None
        self._tokens, wait = take_token(
            tokens=self._tokens,
            elapsed=now - self._updated,
            per_minute=self.per_minute,
            reserve=self._reserve,
            submit=submit,
        )
        self._updated = now
        return wait

    async def hold(self, seconds: float) -> None:
        """`pause`, from async code (a shared limiter writes it down for every process)."""
        self.pause(seconds)

    async def _wait_needed(self, *, submit: bool) -> float:
        return self.wait_needed(submit=submit)

    async def acquire(self, *, submit: bool, max_wait: float | None = None) -> None:
        """Wait for a turn; with `max_wait`, refuse rather than wait longer than that."""
        waited = 0.0
        while (delay := await self._wait_needed(submit=submit)) > 0:
            if max_wait is not None and waited + delay > max_wait:
                raise LocalRateLimit(
                    "Too many requests to PixelDojo right now; nothing was sent. "
                    f"Try again in {delay:.0f} s.",
                    retry_after=delay,
                )
            await asyncio.sleep(delay)
            waited += delay

"""One limiter for every upstream API call of this process.

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
        rate = self.per_minute / 60.0
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * rate)
        self._updated = now
        floor = 1.0 if submit else 1.0 + self._reserve
        if self._tokens >= floor:
            self._tokens -= 1.0
            return 0.0
        return (floor - self._tokens) / rate

    async def acquire(self, *, submit: bool, max_wait: float | None = None) -> None:
        """Wait for a turn; with `max_wait`, refuse rather than wait longer than that."""
        waited = 0.0
        while (delay := self.wait_needed(submit=submit)) > 0:
            if max_wait is not None and waited + delay > max_wait:
                raise LocalRateLimit(
                    "Too many requests to PixelDojo right now; nothing was sent. "
                    f"Try again in {delay:.0f} s.",
                    retry_after=delay,
                )
            await asyncio.sleep(delay)
            waited += delay

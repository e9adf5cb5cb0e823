"""Something read from PixelDojo at start and every few minutes and kept in the database
(the model catalogue, each model's schema): the task in each process that keeps it current.

Every process runs one, but the copy is shared: a read is skipped while the stored copy is
fresh, so a team's workers do not each ask PixelDojo on every tick.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from app.storage.db.tables import utcnow

# How long start-up waits for the first read before serving with what is stored.
STARTUP_WAIT_SECONDS = 5.0
# A copy counts as fresh until this share of the interval has passed.
FRESH_SHARE = 0.9


class PeriodicRead:
    """Reads at start, then every `interval_seconds` (0: at start only) whatever is due."""

    task_name = "periodic-read"

    def __init__(self, *, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self._first_read = asyncio.Event()

    async def read_due(self, *, at_start: bool) -> None:
        """Read what needs reading (at start: everything); never raises."""
        raise NotImplementedError

    def is_stale(self, checked_at: datetime | None) -> bool:
        """Whether a copy checked at `checked_at` needs reading (another worker may just have)."""
        if checked_at is None:
            return True
        return (utcnow() - checked_at).total_seconds() >= self.interval_seconds * FRESH_SHARE

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def first_read(self, timeout: float = STARTUP_WAIT_SECONDS) -> None:
        """Wait (a little) for the read made at start."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._first_read.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        try:
            await self.read_due(at_start=True)
        finally:
            self._first_read.set()
        if self.interval_seconds <= 0:
            return
        while True:
            await asyncio.sleep(self.interval_seconds)
            await self.read_due(at_start=False)

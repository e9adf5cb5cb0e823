"""Calling a run's `webhook_url` when its job ends.

The contract documents the field, not the call: the payload (here, the job's answer
as its JSON body), the method (POST) and the retries (three tries, 1 s and 2 s apart,
on a 5xx or a network error) are our guess, and the app reads nothing of the call's body
(app/features/jobs/callbacks.py). Each call made is recorded for tests to see.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from app.emulator.config import EmulatorConfig
from app.emulator.jobs import EmulatedJob

ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Callback:
    """A call the emulator made to a run's webhook_url: HTTP status, or the error."""

    job_id: str
    url: str
    status_code: int | None
    error: str | None
    at: float


class Caller:
    """The calls waiting for their jobs to end, and the calls made."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self.made: list[Callback] = []
        self._lock = threading.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def later(self, job: EmulatedJob, ends_in: float, answer: Callable[[], dict[str, Any]]) -> None:
        """Call the job's webhook_url `ends_in` seconds from now (plus the configured
        delay), with `answer()` then as the body."""
        task = asyncio.get_running_loop().create_task(self._call(job, ends_in, answer))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        """Drop the calls not yet made (the server is stopping) and the HTTP client."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(
        self, job: EmulatedJob, ends_in: float, answer: Callable[[], dict[str, Any]]
    ) -> None:
        await asyncio.sleep(max(0.0, ends_in) + self._config.callback_delay_seconds)
        if job.never_finishes or not self._config.callbacks or job.webhook_url is None:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS)
        payload = answer()
        for attempt in range(ATTEMPTS):
            status_code: int | None = None
            error: str | None = None
            try:
                response = await self._client.post(job.webhook_url, json=payload)
                status_code = response.status_code
            except httpx.HTTPError as exc:
                error = f"{exc.__class__.__name__}: {exc}"
            with self._lock:
                self.made.append(
                    Callback(job.job_id, job.webhook_url, status_code, error, time.time())
                )
            if status_code is not None and status_code < 500:
                return
            if attempt + 1 < ATTEMPTS:
                await asyncio.sleep(2**attempt)

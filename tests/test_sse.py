"""The one Server-Sent Events loop every stream uses (app/web/sse.py), on its own: what it
sends first, for each look, when idle, and last."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.features.jobs.events import RECONNECT_MILLISECONDS, JobEvents
from app.web import sse

pytestmark = pytest.mark.anyio


async def collected(messages: AsyncIterator[str]) -> list[str]:
    return [message async for message in messages]


class Looks:
    """Counts the looks, and wakes the stream after each so it never waits on its timer."""

    def __init__(self, events: JobEvents) -> None:
        self.events = events
        self.count = 0

    def read(self) -> int:
        self.count += 1
        self.events.notify()
        return self.count


async def test_a_stream_sends_each_looks_changes_then_its_closing() -> None:
    events = JobEvents()
    looks = Looks(events)

    async def send(look: int) -> AsyncIterator[str]:
        if look != 2:
            yield f"look {look}\n\n"

    messages = await collected(
        sse.follow(
            events, read=looks.read, send=send, finished=lambda look: look == 3, closing="bye\n\n"
        )
    )
    assert messages == [
        f"retry: {RECONNECT_MILLISECONDS}\n\n",
        "look 1\n\n",
        "look 3\n\n",
        "bye\n\n",
    ]
    assert events.listener_count == 0


async def test_a_quiet_stream_keeps_alive_and_may_end_without_a_closing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sse, "HEARTBEAT_SECONDS", 0.0)
    events = JobEvents()
    looks = Looks(events)

    async def nothing(look: int) -> AsyncIterator[str]:
        for _ in ():
            yield ""

    messages = await collected(
        sse.follow(events, read=looks.read, send=nothing, finished=lambda look: look == 3)
    )
    assert messages == [f"retry: {RECONNECT_MILLISECONDS}\n\n", sse.KEEP_ALIVE, sse.KEEP_ALIVE]


async def test_a_stream_answers_as_proxies_must_pass_it_on() -> None:
    async def nothing() -> AsyncIterator[str]:
        for _ in ():
            yield ""

    answer = sse.event_stream(nothing())
    assert answer.media_type == "text/event-stream"
    assert answer.headers["Cache-Control"] == "no-cache"
    assert answer.headers["X-Accel-Buffering"] == "no"

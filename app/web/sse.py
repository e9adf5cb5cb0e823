"""The app's Server-Sent Events streams: one answer and one loop for all of them.

The pages' job cards (/events/jobs), a grid's cells (/events/grids/{id}) and the
scripts' JSON stream (/api/events) differ only in what they read, what they send
for a change and when they are done; how a stream starts, wakes, keeps alive and
ends is written here once, so a fix to one (a heartbeat, a header a proxy needs)
is a fix to all.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.features.jobs.events import HEARTBEAT_SECONDS, RECONNECT_MILLISECONDS, JobEvents, next_look

State = TypeVar("State")

MEDIA_TYPE = "text/event-stream"
# Proxies must pass each message on at once, not buffer the stream.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# A comment line: it keeps idle connections (and the proxies between) from timing out.
KEEP_ALIVE = ": keep-alive\n\n"


def event_stream(messages: AsyncIterator[str]) -> StreamingResponse:
    """The answer that streams `messages` to the client."""
    return StreamingResponse(messages, media_type=MEDIA_TYPE, headers=HEADERS)


async def follow(
    events: JobEvents,
    *,
    read: Callable[[], State],
    send: Callable[[State], AsyncIterator[str]],
    finished: Callable[[State], bool],
    closing: str | None = None,
) -> AsyncIterator[str]:
    """Messages until `finished`: after each look (`read`, in a worker thread, since it
    blocks on the database) what `send` makes of it, then `closing` once finished.

    A look is taken at once, then whenever `events` says something changed (or at the
    latest after `next_look`'s recheck), so a change made by another process is seen too.
    """
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
    with events.listen() as listener:
        last_sent = time.monotonic()
        while True:
            states = await run_in_threadpool(read)
            async for message in send(states):
                yield message
                last_sent = time.monotonic()
            if finished(states):
                if closing is not None:
                    yield closing
                return
            if time.monotonic() - last_sent >= HEARTBEAT_SECONDS:
                yield KEEP_ALIVE
                last_sent = time.monotonic()
            await next_look(listener)

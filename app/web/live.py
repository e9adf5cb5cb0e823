"""Live job cards: a Server-Sent Events stream, and the batch the page polls when it cannot stream.

Both answer with job cards marked for htmx's out-of-band swap, so one message (or
one poll) updates every card it names wherever it sits on the page: in the
recent jobs, or in a preset comparison.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.templating import Jinja2Templates

from app.core.errors import InvalidParameters
from app.features.jobs.events import (
    HEARTBEAT_SECONDS,
    RECONNECT_MILLISECONDS,
    JobWatch,
    format_event,
    next_look,
    parse_job_ids,
    shown_states,
)
from app.web.cards import render_cards
from app.web.deps import ServicesDep, TemplatesDep
from app.web.services import Services

router = APIRouter(include_in_schema=False)

IdsQuery = Annotated[str, Query(max_length=1000, description="job ids, comma-separated")]


def _job_ids(raw: str) -> list[int]:
    try:
        return parse_job_ids(raw)
    except ValueError as exc:
        raise InvalidParameters({"ids": str(exc)}) from None


@router.get("/events/jobs")
async def job_events(
    ids: IdsQuery, services: ServicesDep, templates: TemplatesDep
) -> StreamingResponse:
    watch = JobWatch(_job_ids(ids))
    return StreamingResponse(
        _stream(services, templates, watch),
        media_type="text/event-stream",
        # Proxies must pass each message on at once, not buffer the stream.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    services: Services, templates: Jinja2Templates, watch: JobWatch
) -> AsyncIterator[str]:
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
    with services.events.listen() as listener:
        last_sent = time.monotonic()
        while True:
            states = await run_in_threadpool(
                lambda: shown_states(services.db, job_ids=watch.job_ids)
            )
            changed = watch.changed(states)
            if changed:
                cards = await run_in_threadpool(render_cards, services, templates, changed)
                yield format_event("jobs", cards)
                last_sent = time.monotonic()
            if watch.all_finished:
                # The page closes its stream on this; it opens another for its next job.
                yield format_event("done", "")
                return
            if time.monotonic() - last_sent >= HEARTBEAT_SECONDS:
                yield ": keep-alive\n\n"
                last_sent = time.monotonic()
            await next_look(listener)


@router.get("/jobs/cards", response_class=HTMLResponse)
def job_cards(ids: IdsQuery, services: ServicesDep, templates: TemplatesDep) -> HTMLResponse:
    """The fallback when a page cannot stream: one request brings every card it watches."""
    return HTMLResponse(render_cards(services, templates, _job_ids(ids)))

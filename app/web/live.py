"""Live job cards: a Server-Sent Events stream, and the batch the page polls when it cannot stream.

Both answer with job cards marked for htmx's out-of-band swap, so one message (or
one poll) updates every card it names wherever it sits on the page: in the
recent jobs, or in a preset comparison.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, StreamingResponse

from app.core.errors import InvalidParameters
from app.features.jobs.events import (
    JobWatch,
    Shown,
    format_event,
    parse_job_ids,
    shown_states,
)
from app.web import sse
from app.web.cards import render_cards
from app.web.deps import ServicesDep, TemplatesDep

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

    async def send(states: dict[int, Shown]) -> AsyncIterator[str]:
        changed = watch.changed(states)
        if changed:
            cards = await run_in_threadpool(render_cards, services, templates, changed)
            yield format_event("jobs", cards)

    return sse.event_stream(
        sse.follow(
            services.events,
            read=lambda: shown_states(services.db, job_ids=watch.job_ids),
            send=send,
            finished=lambda _: watch.all_finished,
            # The page closes its stream on this; it opens another for its next job.
            closing=format_event("done", ""),
        )
    )


@router.get("/jobs/cards", response_class=HTMLResponse)
def job_cards(ids: IdsQuery, services: ServicesDep, templates: TemplatesDep) -> HTMLResponse:
    """The fallback when a page cannot stream: one request brings every card it watches."""
    return HTMLResponse(render_cards(services, templates, _job_ids(ids)))

"""Live job changes for scripts: a JSON Server-Sent Events stream at /api/events.

Each change a job's page would show (its status, error or cost) is one message:
`event: job`, `data:` the job exactly as GET /api/jobs/{id} gives it, and an `id:` that
names every state the client has been sent so far. A client that reconnects with that
id in `Last-Event-ID` (as EventSource does by itself) is sent what changed since, no
more and no less: the id carries the state it holds, so nothing is kept on the server
for a client that went away, and any process of a team server can take the reconnect.
When every watched job has finished and the client has its final state, the stream
ends; a reconnect then gets 204, which tells EventSource to stop.

Changes are heard as the htmx stream hears them (app/features/jobs/events.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.core.errors import InvalidParameters
from app.features.jobs import reads
from app.features.jobs.events import (
    Shown,
    format_event,
    parse_job_ids,
    shown_states,
)
from app.storage.db.tables import FINISHED_STATUSES, JobStatus
from app.web import sse
from app.web.deps import ServicesDep
from app.web.services import Services
from app.web.views import job_public

router = APIRouter(prefix="/api", tags=["events"])

# Longer ids are not ours: 50 jobs of `id.token` fit in far less.
LAST_EVENT_ID_MAX = 2000
STREAM_DESCRIPTION = (
    "`text/event-stream`: `event: job` messages, each `data:` a job as GET /api/jobs/{id} "
    "gives it and an `id:` to resume from with Last-Event-ID; the stream ends when every "
    "watched job has finished"
)


def state_token(state: Shown) -> str:
    """A short name for what a client was shown of a job."""
    status, error, cost, stopped = state
    text = f"{status.value}\0{error}\0{cost}\0{stopped}"
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass
class ResumableWatch:
    """What the client holds of each watched job: read from its Last-Event-ID, then kept up
    as messages are sent."""

    job_ids: list[int]
    held: dict[int, str] = field(default_factory=dict)

    @classmethod
    def resuming(cls, job_ids: list[int], last_event_id: str | None) -> ResumableWatch:
        """A malformed or foreign id resumes nothing: everything is sent (no gap)."""
        held: dict[int, str] = {}
        for part in (last_event_id or "").split(","):
            job, _, token = part.partition(".")
            if job.isdigit() and int(job) in job_ids and token:
                held[int(job)] = token
        return cls(job_ids, held)

    def changed(self, states: dict[int, Shown]) -> list[int]:
        return sorted(
            job for job, state in states.items() if self.held.get(job) != state_token(state)
        )

    def hold(self, job_id: int, state: Shown) -> str:
        """Record that the client was sent this state; returns the message's id."""
        self.held[job_id] = state_token(state)
        return ",".join(f"{job}.{token}" for job, token in sorted(self.held.items()))

    def done(self, states: dict[int, Shown]) -> bool:
        """Every watched job that exists is finished, and the client holds its final state."""
        return all(
            state[0] in FINISHED_STATUSES and self.held.get(job) == state_token(state)
            for job, state in states.items()
        )


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": STREAM_DESCRIPTION,
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": "Nothing left to watch: every job has finished and was sent"},
    },
)
async def stream_job_events(
    services: ServicesDep,
    ids: Annotated[
        str, Query(max_length=1000, description="The job ids to watch, comma-separated (≤ 50)")
    ],
    last_event_id: Annotated[
        str | None,
        Header(max_length=LAST_EVENT_ID_MAX, description="The id of the last message received"),
    ] = None,
) -> Response:
    """Each change of the watched jobs as it happens, for scripts (pages use /events/jobs)."""
    try:
        job_ids = parse_job_ids(ids)
    except ValueError as exc:
        raise InvalidParameters({"ids": str(exc)}) from None
    watch = ResumableWatch.resuming(job_ids, last_event_id)
    states = await run_in_threadpool(lambda: shown_states(services.db, job_ids=job_ids))
    if watch.done(states):
        return Response(status_code=204)
    return sse.event_stream(
        sse.follow(
            services.events,
            read=lambda: shown_states(services.db, job_ids=job_ids),
            send=lambda states: _changes(services, watch, states),
            finished=watch.done,
        )
    )


async def _changes(
    services: Services, watch: ResumableWatch, states: dict[int, Shown]
) -> AsyncIterator[str]:
    for job_id in watch.changed(states):
        found = await run_in_threadpool(_job_now, services, job_id)
        if found is None:  # deleted since the look
            continue
        # The state of the job as read, which may be newer than the look's.
        shown, job = found
        if watch.held.get(job_id) == state_token(shown):
            continue
        yield format_event("job", job, event_id=watch.hold(job_id, shown))


def _job_now(services: Services, job_id: int) -> tuple[Shown, str] | None:
    """The job as GET /api/jobs/{id} gives it, with what it shows, read together."""
    item = reads.get_job(services.db, job_id=job_id)
    if item is None:
        return None
    job = item.job
    shown = (JobStatus(job.status), job.error, job.credit_cost, job.stopped_at is not None)
    return shown, job_public(item).model_dump_json()

"""PixelDojo's callback when a job ends (app/features/jobs/callbacks.py holds the rules; this route
is thin).

Answered to anyone who has the signed URL, without sign-in or the cross-site check
(app/web/gate.py): its signature is its permission, and all it can do is bring one
status poll forward.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.core import metrics
from app.core.errors import NotFoundError
from app.features.jobs import callbacks as webhooks
from app.storage.db.tables import ROW_ID_MAX, utcnow
from app.web.deps import ServicesDep

router = APIRouter(tags=["webhooks"])


@router.post(
    webhooks.PATH_PREFIX + "{job_id}/{signature}", status_code=204, include_in_schema=False
)
async def pixeldojo_callback(job_id: int, signature: str, services: ServicesDep) -> Response:
    """PixelDojo says the job ended. Its body is not read: the poll that follows asks.
    A signed address whose job is gone (deleted) is answered 204 all the same."""
    if (
        # Off, nothing is sent with runs, so no address can be owed an answer.
        services.submitter.callback_base.url is None
        or not 0 < job_id <= ROW_ID_MAX
        or not webhooks.signature_valid(services.access.signer, job_id, signature)
    ):
        # One answer for a wrong signature and an unknown job: it tells nothing.
        metrics.CALLBACKS.labels(outcome="refused").inc()
        raise NotFoundError(webhooks.NOT_FOUND_MESSAGE)
    metrics.CALLBACKS.labels(outcome="accepted").inc()
    if await run_in_threadpool(webhooks.record_callback, services.db, job_id=job_id, now=utcnow()):
        # This process's poller at once; the others hear the change through the database.
        services.poller.wake()
    return Response(status_code=204)

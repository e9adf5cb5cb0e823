"""Submitting a job: validate, write the row, then (and only then) call the upstream once.

Every path that submits (the form, the API, try-all, new seed, remix, anything added
later) comes through `submit_job`, which checks the run against the rules in force
for its model (PixelDojo's live schema over the built-in rules, app/features/models/live_rules.py)
before anything else, and draws the seed when the person left it random, so the
seed that made every image is sent and recorded.

What happens to the job depends on what the upstream's answer tells us:

    accepted (2xx)                        -> pending: the poller takes it from here
    refused (4xx): nothing was created    -> failed, with the upstream's reason
    no connection was ever made           -> failed: nothing was sent, nothing charged
    answer lost (timeout, dropped, 5xx,   -> reconciling: looked for in PixelDojo's
      unreadable 2xx)                         recent jobs, never sent a second time
    not sent: a reference unreadable, or  -> failed: nothing was sent, nothing charged
      not ready within the deadline

While it is submitted the job is leased to the submitter, under an id of its own (kept
alive by its process's heartbeat, app/worker/poller.py) and the token the row was written with;
every write it makes names both, as a worker's do, so a job taken over meanwhile (its
heartbeat ran late) is left to the worker that took it, which looks for it upstream. One
deadline, set before the row is written and so ending before its lease, covers reading
the reference images and the request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from app.core.errors import (
    IdempotencyKeyReused,
    InvalidParameters,
    KeyRefused,
    OverBudget,
    SubmissionFailed,
)
from app.core.signing import Signer
from app.domain.model_params import RunParams
from app.domain.rules import ImageInput
from app.domain.runs import check_run, with_known_seed
from app.features.gallery.listing import GalleryEntry
from app.features.jobs import callbacks as webhooks
from app.features.jobs import creation, queue, reads, references, stopping
from app.features.jobs.submission_answers import (
    answer_was_lost,
    as_submission_failed,
    failure_message,
)
from app.features.models.catalogue import ModelCatalogue
from app.features.models.key_status import KeyHealth
from app.features.models.live_rules import LiveRules, RulesInForce
from app.features.people import audit
from app.features.people.budgets import BudgetExceeded
from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus, User
from app.upstream import (
    AuthenticationFailed,
    PixelDojoClient,
    UpstreamError,
    UpstreamUnreachable,
)

log = logging.getLogger(__name__)

# The submitter's lease outlives everything it does before the answer (reading reference
# images, the rate-limit wait, the request), so no worker takes a job still being submitted.
SUBMIT_LEASE_MARGIN_SECONDS = 30.0
# A job whose submit answer was lost may still be on its way into PixelDojo's records.
LOOK_UPSTREAM_AFTER_SECONDS = 2.0


class PollScheduler(Protocol):
    """What submitting needs of the workers: when to poll a job first, and a nudge that
    one is waiting. The poller is one; a process that does not poll can hand in anything
    that answers these two."""

    def first_poll_delay(
        self, *, model: str, image_size: str, num_images: int, callback: bool = False
    ) -> float: ...

    def wake(self) -> None: ...


@dataclass(frozen=True)
class Submitter:
    """The parts of the running app a submission uses, and nothing else."""

    db: Database
    client: PixelDojoClient
    key_health: KeyHealth
    # The rules in force for each model, checked before anything is written.
    rules: LiveRules
    scheduler: PollScheduler
    # Who holds a job's lease while it is being submitted: an id of its own, kept alive by
    # this process's heartbeat (app.worker.poller), never the id its worker claims jobs with.
    owner: str
    # The longest one submission may take: its wait for the rate limit and its request.
    submit_window_seconds: float
    # The upstream's model catalogue: which models there are, what a run is estimated to cost.
    catalogue: ModelCatalogue
    # The model a run names when it names none (always allowed, listed or not).
    default_model: str
    # Where reference images are read from, and where links to them point.
    blobs: BlobStore
    public_url: str | None
    # What signs reference links and callback URLs.
    signer: Signer
    # Where PixelDojo calls back when a job ends (app/features/jobs/callbacks.py).
    callback_base: webhooks.CallbackBase = field(default_factory=webhooks.CallbackBase)


async def rules_for_run(submitter: Submitter, model: str) -> RulesInForce:
    """The rules a run of `model` is checked against. A model PixelDojo does not serve is
    refused here, named as the `model` field, before anything is sent: when the catalogue
    is known, before its schema is even asked for (so made-up names cost no request)."""
    if references.is_upload(model):
        raise InvalidParameters({"model": "marks uploaded images; it is not a PixelDojo model"})
    if model != submitter.default_model and submitter.catalogue.in_force().lists(model) is False:
        raise InvalidParameters(
            {"model": f"PixelDojo lists no model {model!r}; GET /api/models lists those it has"}
        )
    in_force = await submitter.rules.for_submission(model)
    if in_force.model_found is False:
        raise InvalidParameters({"model": f"PixelDojo has no model {model!r}"})
    return in_force


async def submit_job(
    submitter: Submitter,
    *,
    params: RunParams,
    model: str,
    preset: str | None,
    idempotency_key: str | None = None,
    user: User | None = None,
    ip: str | None = None,
    remix_of: creation.RemixSource | None = None,
    reference_images: Sequence[int] = (),
) -> tuple[Job, bool]:
    """Create the job and submit it at most once; returns the job and whether it is new.

    A request repeating an idempotency key gets the first request's job back and
    causes no upstream call. A refused API key, or a job over the person's budget,
    stops the submission before any upstream request. `reference_images` are gallery
    image ids sent through the model's image input (refused, before anything is sent,
    for a model that has none).
    """
    in_force = await rules_for_run(submitter, model)
    check_run(params, in_force.rules, references=len(reference_images))
    entries = await anyio.to_thread.run_sync(
        lambda: references.load_references(submitter.db, list(reference_images))
    )
    problem = await anyio.to_thread.run_sync(submitter.key_health.problem)
    if problem is not None:
        raise KeyRefused(problem)
    lease_seconds = submitter.submit_window_seconds + SUBMIT_LEASE_MARGIN_SECONDS
    if idempotency_key is not None and user is not None:
        # Keys are each person's own: the same key from two people names two jobs.
        idempotency_key = f"u{user.id}:{idempotency_key}"
    params = with_known_seed(params, in_force.rules, key=idempotency_key)
    estimated = submitter.catalogue.in_force().estimate(model, params.num_images)
    image_input = in_force.image_input
    kept_body = params.upstream_body()
    if entries:
        assert image_input is not None  # check_run refused references without one
        kept_body[image_input.name] = image_input.body_value(
            [references.placeholder(entry.image_id) for entry in entries]
        )
    # Everything from here to the submit's answer ends before the lease can: the deadline is
    # taken now, so the lease written next (from a later moment) outlasts it.
    budget = submitter.submit_window_seconds + SUBMIT_LEASE_MARGIN_SECONDS / 2
    deadline = asyncio.get_running_loop().time() + budget
    try:
        job, created = await anyio.to_thread.run_sync(
            lambda: creation.create_job(
                submitter.db,
                params=params,
                model=model,
                preset=preset,
                owner=submitter.owner,
                lease_seconds=lease_seconds,
                idempotency_key=idempotency_key,
                user=user,
                remix_of=remix_of,
                reference_images=list(reference_images),
                estimated_credits=estimated,
                request_body=kept_body,
            )
        )
    except creation.IdempotencyConflict as conflict:
        raise IdempotencyKeyReused(conflict.job_id) from None
    except BudgetExceeded as over:
        raise OverBudget(over.message) from None
    if not created:
        return job, False
    assert job.id is not None
    job_id, token = job.id, job.lease_token
    await anyio.to_thread.run_sync(
        lambda: audit.record(
            submitter.db,
            action=audit.Action.SUBMIT,
            user=user,
            ip=ip,
            detail=f"job {job_id}: {params.num_images} image(s), {model}, "
            f"{estimated:g} credit(s) estimated"
            + (f", {len(entries)} reference image(s)" if entries else ""),
        )
    )
    body = params.upstream_body()

    async def still_wanted() -> None:
        # The person may have stopped it while it waited for the rate limit.
        await anyio.to_thread.run_sync(
            functools.partial(stopping.refuse_if_stopped, submitter.db, job_id=job_id)
        )

    sending = False
    try:
        async with asyncio.timeout_at(deadline):
            if entries:
                assert image_input is not None
                body[image_input.name] = await _reference_values(submitter, entries, image_input)
            sending = True
            upstream = await submitter.client.submit(
                model, _with_callback(submitter, body, job_id), before_send=still_wanted
            )
    except stopping.StoppedBeforeSending:
        stopped = _NotSent(stopping.STOPPED_UNSENT, status_code=409, code="stopped")
        return await _fail_unsent(submitter, job_id, token, stopped), True
    except _NotSent as unsent:
        return await _fail_unsent(submitter, job_id, token, unsent), True
    except TimeoutError:
        if not sending:
            late = _NotSent(
                f"The job was not ready to send within {budget:g} s"
                + (" (reading its reference images took too long)" if entries else "")
                + ". Nothing was sent to PixelDojo, nothing was charged.",
                status_code=503,
                code="submission_timeout",
            )
            return await _fail_unsent(submitter, job_id, token, late), True
        lost = UpstreamUnreachable("the submission took too long", request_sent=True)
        return await _record_lost_answer(submitter, job_id, token, lost), True
    except UpstreamError as exc:
        if answer_was_lost(exc):
            return await _record_lost_answer(submitter, job_id, token, exc), True
        await _record_refusal(submitter, job_id, token, exc)
        raise as_submission_failed(exc, job_id=job_id) from None

    await anyio.to_thread.run_sync(submitter.key_health.accepted)
    callback = submitter.callback_base.url is not None
    first_poll_in = await anyio.to_thread.run_sync(
        lambda: submitter.scheduler.first_poll_delay(
            model=model,
            image_size=params.image_size,
            num_images=params.num_images,
            callback=callback,
        )
    )
    try:
        job = await anyio.to_thread.run_sync(
            lambda: creation.record_submitted(
                submitter.db,
                job_id=job_id,
                owner=submitter.owner,
                token=token,
                upstream=upstream,
                first_poll_in=first_poll_in,
                webhook_requested=callback,
            )
        )
    except creation.LeaseLost:
        return await _taken_over(submitter, job_id), True
    submitter.scheduler.wake()
    return job, True


def _with_callback(submitter: Submitter, body: dict[str, Any], job_id: int) -> dict[str, Any]:
    """The run body as sent: with the job's signed callback URL when callbacks are on. Kept
    out of the body the job stores (that URL is a permission, not a parameter)."""
    base = submitter.callback_base.url
    if base is None:
        return body
    url = webhooks.callback_url(base, submitter.signer, job_id)
    return {**body, webhooks.RUN_FIELD: url}


class _NotSent(Exception):
    """The job ends here, failed, and nothing was sent upstream (nothing was charged)."""

    def __init__(self, message: str, *, status_code: int, code: str) -> None:
        super().__init__(message)
        self.message, self.status_code, self.code = message, status_code, code


async def _reference_values(
    submitter: Submitter, entries: list[GalleryEntry], image_input: ImageInput
) -> object:
    """The image input's value: each reference made to fit and encoded (a data: URI), or a
    signed link to it. A reference whose bytes cannot be read fails the job unsent."""
    try:
        values = await anyio.to_thread.run_sync(
            lambda: references.body_references(
                submitter.blobs,
                entries,
                image_input,
                public_url=submitter.public_url,
                signer=submitter.signer,
            ),
            # The submission's deadline ends a read that hangs: its thread finishes alone.
            abandon_on_cancel=True,
        )
    except Exception as exc:  # a missing blob, an image Pillow cannot read again
        raise _NotSent(
            f"A reference image could not be read ({exc.__class__.__name__}). "
            "Nothing was sent to PixelDojo, nothing was charged.",
            status_code=500,
            code="reference_unreadable",
        ) from exc
    return image_input.body_value(values)


async def _fail_unsent(submitter: Submitter, job_id: int, token: int, unsent: _NotSent) -> Job:
    """Fail the job, which was never sent, and say why (SubmissionFailed); or, if it was
    taken over meanwhile, leave it to its new holder and answer with it."""
    failed = await anyio.to_thread.run_sync(
        lambda: queue.finish(
            submitter.db,
            job_id=job_id,
            status=JobStatus.FAILED,
            error=unsent.message,
            owner=submitter.owner,
            token=token,
        )
    )
    if not failed:
        return await _taken_over(submitter, job_id)
    raise SubmissionFailed(
        unsent.message, job_id=job_id, status_code=unsent.status_code, code=unsent.code
    ) from unsent


async def _taken_over(submitter: Submitter, job_id: int) -> Job:
    """The job as it stands after another worker took it over mid-submit.

    That happens when this process's heartbeat ran late and it looked dead to the other
    worker, which looks for the job among PixelDojo's recent jobs and never sends it
    again: nothing is paid twice, and the person gets the job, not a server error.
    """
    log.warning("job %s was taken over by another worker while it was submitted", job_id)
    item = await anyio.to_thread.run_sync(lambda: reads.get_job(submitter.db, job_id=job_id))
    assert item is not None
    return item.job


async def _record_lost_answer(
    submitter: Submitter, job_id: int, token: int, exc: UpstreamError
) -> Job:
    note = (
        f"PixelDojo's answer to the submission was lost ({exc.message}). Looking for the "
        "job in PixelDojo's recent jobs; it will not be sent again, to avoid paying twice."
    )
    try:
        await anyio.to_thread.run_sync(
            lambda: creation.record_lost_submission(
                submitter.db,
                job_id=job_id,
                owner=submitter.owner,
                token=token,
                note=note,
                first_look_in=LOOK_UPSTREAM_AFTER_SECONDS,
            )
        )
    except creation.LeaseLost:
        return await _taken_over(submitter, job_id)
    submitter.scheduler.wake()
    item = await anyio.to_thread.run_sync(lambda: reads.get_job(submitter.db, job_id=job_id))
    assert item is not None
    return item.job


async def _record_refusal(
    submitter: Submitter, job_id: int, token: int, exc: UpstreamError
) -> None:
    if isinstance(exc, AuthenticationFailed):
        refusal = exc.message
        await anyio.to_thread.run_sync(lambda: submitter.key_health.refused(refusal))
    message = failure_message(exc)
    await anyio.to_thread.run_sync(
        lambda: queue.finish(
            submitter.db,
            job_id=job_id,
            status=JobStatus.FAILED,
            error=message,
            owner=submitter.owner,
            token=token,
        )
    )

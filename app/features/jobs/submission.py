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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from app.core.errors import (
    IdempotencyKeyReused,
    InvalidParameters,
    KeyRefused,
    NotFoundError,
    OverBudget,
    SubmissionFailed,
)
from app.core.signing import Signer
from app.domain.model_params import RunParams, run_from_body
from app.domain.rules import ImageInput, has_builtin_record
from app.domain.runs import check_run, with_known_seed
from app.features.gallery import listing as gallery
from app.features.gallery.listing import GalleryEntry
from app.features.jobs import callbacks as webhooks
from app.features.jobs import creation, queue, reads, references
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
    InsufficientCredits,
    InvalidRequest,
    LocalRateLimit,
    MalformedResponse,
    PixelDojoClient,
    RateLimited,
    ServerError,
    UpstreamError,
    UpstreamUnreachable,
)

log = logging.getLogger(__name__)

# The submitter's lease outlives its request (timeout and rate-limit wait), so the
# poller never takes a job whose submit is still under way.
SUBMIT_LEASE_MARGIN_SECONDS = 30.0
BUY_CREDITS_URL = "https://pixeldojo.ai"
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
    # Who holds a job's lease while it is being submitted (this process's worker id).
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
    # Where PixelDojo calls back when a job ends (app/features/jobs/callbacks.py): the public
    # URL when callbacks are on, else None (poll only).
    callback_base_url: str | None = None


async def rules_for_run(submitter: Submitter, model: str) -> RulesInForce:
    """The rules a run of `model` is checked against. A model PixelDojo does not serve is
    refused here, named as the `model` field, before anything is sent: when the catalogue
    is known, before its schema is even asked for (so made-up names cost no request)."""
    if references.is_upload(model):
        raise InvalidParameters({"model": "marks uploaded images; it is not a PixelDojo model"})
    catalogue = submitter.catalogue.in_force()
    if (
        catalogue.source != "none"
        and model != submitter.default_model
        and catalogue.get(model) is None
    ):
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
    job_id = job.id
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
    if entries:
        assert image_input is not None
        body[image_input.name] = await _reference_values(submitter, job_id, entries, image_input)
    try:
        # Bounded within the lease, so the row is never taken over while its submit runs.
        async with asyncio.timeout(
            submitter.submit_window_seconds + SUBMIT_LEASE_MARGIN_SECONDS / 2
        ):
            upstream = await submitter.client.submit(model, _with_callback(submitter, body, job_id))
    except TimeoutError:
        lost = UpstreamUnreachable("the submission took too long", request_sent=True)
        return await _record_lost_answer(submitter, job_id, lost), True
    except UpstreamError as exc:
        if answer_was_lost(exc):
            return await _record_lost_answer(submitter, job_id, exc), True
        await _record_refusal(submitter, job_id, exc)
        raise _as_submission_failed(exc, job_id=job_id) from None

    await anyio.to_thread.run_sync(submitter.key_health.accepted)
    callback = submitter.callback_base_url is not None
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
                upstream=upstream,
                first_poll_in=first_poll_in,
                webhook_requested=callback,
            )
        )
    except creation.LeaseLost:
        return await _taken_over(submitter, job_id), True
    submitter.scheduler.wake()
    return job, True


async def submit_new_seed(
    submitter: Submitter,
    job_id: int,
    *,
    token: str | None = None,
    user: User | None = None,
    ip: str | None = None,
) -> tuple[Job, bool]:
    """Submit a job's parameters again with a new seed ("same prompt, new seed"); at most
    once per token. The new job says it came from the old one."""
    job = await anyio.to_thread.run_sync(
        lambda: gallery.get_job_detail(submitter.db, job_id=job_id)
    )
    if job is None:
        raise NotFoundError(f"There is no job {job_id}.")
    key = f"new-seed:{job_id}:{token}" if token else None
    # The body it sent, with a seed drawn afresh: the key's own, so a repeat asks the same;
    # its references go again (the body keeps only notes naming them).
    in_force = await rules_for_run(submitter, job.model)
    body = {name: value for name, value in job.request_body.items() if name != "seed"}
    if in_force.image_input is not None and job.reference_images:
        body.pop(in_force.image_input.name, None)
    params = run_from_body(body, builtin_record=has_builtin_record(job.model))
    params = with_known_seed(params, in_force.rules, key=key, avoid=job.seed)
    return await submit_job(
        submitter,
        params=params,
        model=job.model,
        preset=job.preset,
        idempotency_key=key,
        user=user,
        ip=ip,
        remix_of=creation.RemixSource(job_id=job_id),
        reference_images=job.reference_images or (),
    )


def _with_callback(submitter: Submitter, body: dict[str, Any], job_id: int) -> dict[str, Any]:
    """The run body as sent: with the job's signed callback URL when callbacks are on. Kept
    out of the body the job stores (that URL is a permission, not a parameter)."""
    if submitter.callback_base_url is None:
        return body
    url = webhooks.callback_url(submitter.callback_base_url, submitter.signer, job_id)
    return {**body, webhooks.RUN_FIELD: url}


async def _reference_values(
    submitter: Submitter, job_id: int, entries: list[GalleryEntry], image_input: ImageInput
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
            )
        )
    except Exception as exc:  # a missing blob, an image Pillow cannot read again
        message = (
            f"A reference image could not be read ({exc.__class__.__name__}). "
            "Nothing was sent to PixelDojo, nothing was charged."
        )
        await anyio.to_thread.run_sync(
            lambda: queue.finish(
                submitter.db,
                job_id=job_id,
                status=JobStatus.FAILED,
                error=message,
                owner=submitter.owner,
            )
        )
        raise SubmissionFailed(
            message, job_id=job_id, status_code=500, code="reference_unreadable"
        ) from exc
    return image_input.body_value(values)


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


def answer_was_lost(exc: UpstreamError) -> bool:
    """Whether the upstream may have created the job although we have no answer saying so."""
    if isinstance(exc, UpstreamUnreachable):
        return exc.request_sent
    return isinstance(exc, MalformedResponse | ServerError)


async def _record_lost_answer(submitter: Submitter, job_id: int, exc: UpstreamError) -> Job:
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


async def _record_refusal(submitter: Submitter, job_id: int, exc: UpstreamError) -> None:
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
        )
    )


def failure_message(exc: UpstreamError) -> str:
    """What the person is told when PixelDojo did not take the job."""
    if isinstance(exc, UpstreamUnreachable):
        return f"Could not reach PixelDojo ({exc.message}). Nothing was sent, nothing was charged."
    if isinstance(exc, AuthenticationFailed):
        return (
            f"PixelDojo refused the API key: {exc.message}. Fix PIXELDOJO_API_KEY; "
            "no further jobs are sent until the key works."
        )
    if isinstance(exc, InsufficientCredits):
        balance = (
            f" Your balance is {exc.credits_remaining:g} credits."
            if exc.credits_remaining is not None
            else ""
        )
        return (
            f"Not enough PixelDojo credits: {exc.message}{balance} "
            f"Buy credits at {BUY_CREDITS_URL} and try again. Nothing was charged."
        )
    if isinstance(exc, LocalRateLimit):
        return exc.message
    if isinstance(exc, RateLimited):
        wait = f" Try again in {exc.retry_after:.0f} s." if exc.retry_after else ""
        return f"PixelDojo is limiting requests: {exc.message}. Nothing was charged.{wait}"
    return f"PixelDojo refused the job: {exc.message}"


def _as_submission_failed(exc: UpstreamError, *, job_id: int) -> SubmissionFailed:
    message = failure_message(exc)
    retry_after = exc.retry_after if isinstance(exc, RateLimited | LocalRateLimit) else None
    status_code, code = _answer_for(exc)
    return SubmissionFailed(
        message, job_id=job_id, status_code=status_code, code=code, retry_after=retry_after
    )


def _answer_for(exc: UpstreamError) -> tuple[int, str]:
    """The status and code our API answers with when PixelDojo did not take the job."""
    if isinstance(exc, InsufficientCredits):
        return 402, "insufficient_credits"
    if isinstance(exc, RateLimited | LocalRateLimit):
        return 429, "rate_limited"
    if isinstance(exc, InvalidRequest):
        return 422, "upstream_invalid"
    if isinstance(exc, AuthenticationFailed):
        return 502, "api_key_refused"
    if isinstance(exc, UpstreamUnreachable):
        return 502, "upstream_unreachable"
    return 502, "upstream_error"

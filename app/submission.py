"""Submitting a job: validate, write the row, then (and only then) call the upstream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio
from pydantic import ValidationError

from app import jobs
from app.errors import InvalidParameters, SubmissionFailed
from app.models import Job, JobStatus
from app.parameters import GenerationParams
from app.services import Services
from app.upstream import (
    AuthenticationFailed,
    InsufficientCredits,
    InvalidRequest,
    MalformedResponse,
    RateLimited,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamUnreachable,
)

# The submitter's lease outlives its request timeout, so the poller never takes a
# job whose submit is still under way.
SUBMIT_LEASE_MARGIN_SECONDS = 30.0


def validate_parameters(values: Mapping[str, Any]) -> GenerationParams:
    """Check run parameters; the error names every field that is wrong."""
    try:
        return GenerationParams.model_validate(dict(values))
    except ValidationError as exc:
        raise InvalidParameters(field_errors(exc.errors(include_input=False))) from None


def field_errors(errors: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Pydantic's error list as {field name: message}, the first message per field."""
    by_field: dict[str, str] = {}
    for error in errors:
        where = [str(part) for part in error["loc"] if part not in ("body", "query", "path")]
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a parameter of this model"
        by_field.setdefault(".".join(where) or "body", message)
    return by_field


async def submit_job(
    services: Services, *, params: GenerationParams, model: str, preset: str | None
) -> Job:
    """Create the job and submit it once. Never retried: a second submit could be paid twice."""
    settings = services.settings
    job = await anyio.to_thread.run_sync(
        lambda: jobs.create_job(
            services.db,
            params=params,
            model=model,
            preset=preset,
            owner=services.worker_id,
            lease_seconds=settings.request_timeout_seconds + SUBMIT_LEASE_MARGIN_SECONDS,
        )
    )
    assert job.id is not None
    job_id = job.id
    try:
        upstream = await services.client.submit(model, params.upstream_body())
    except UpstreamError as exc:
        status, message = _outcome_of(exc)
        await anyio.to_thread.run_sync(
            lambda: jobs.finish(services.db, job_id=job_id, status=status, error=message)
        )
        raise _as_submission_failed(exc, job_id=job_id, message=message) from None

    job = await anyio.to_thread.run_sync(
        lambda: jobs.record_submitted(
            services.db,
            job_id=job_id,
            upstream=upstream,
            first_poll_in=settings.poll_initial_seconds,
        )
    )
    services.poller.wake()
    return job


def _outcome_of(exc: UpstreamError) -> tuple[JobStatus, str]:
    if isinstance(exc, UpstreamUnreachable) and not exc.request_sent:
        return JobStatus.FAILED, f"Could not reach PixelDojo ({exc.message}). Nothing was charged."
    if isinstance(exc, UpstreamUnreachable | MalformedResponse):
        return JobStatus.UNKNOWN, (
            f"PixelDojo's answer to the submission was lost ({exc.message}), so whether it "
            "accepted the job is unknown. It was not sent again, to avoid paying twice."
        )
    if isinstance(exc, AuthenticationFailed):
        return JobStatus.FAILED, f"PixelDojo refused the API key: {exc.message}"
    if isinstance(exc, InsufficientCredits):
        balance = (
            f" Your balance is {exc.credits_remaining:g} credits."
            if exc.credits_remaining is not None
            else ""
        )
        return JobStatus.FAILED, (
            f"Not enough PixelDojo credits: {exc.message}.{balance} "
            "Buy credits at https://pixeldojo.ai and try again."
        )
    if isinstance(exc, RateLimited):
        return JobStatus.FAILED, f"PixelDojo is rate limiting requests: {exc.message}"
    return JobStatus.FAILED, f"PixelDojo refused the job: {exc.message}"


def _as_submission_failed(exc: UpstreamError, *, job_id: int, message: str) -> SubmissionFailed:
    if isinstance(exc, InsufficientCredits):
        return SubmissionFailed(
            message, job_id=job_id, status_code=402, code="insufficient_credits"
        )
    if isinstance(exc, RateLimited):
        return SubmissionFailed(
            message,
            job_id=job_id,
            status_code=429,
            code="rate_limited",
            retry_after=exc.retry_after,
        )
    if isinstance(exc, InvalidRequest):
        return SubmissionFailed(message, job_id=job_id, status_code=422, code="upstream_invalid")
    if isinstance(exc, AuthenticationFailed):
        return SubmissionFailed(message, job_id=job_id, status_code=502, code="upstream_auth")
    if isinstance(exc, UpstreamHTTPError):
        return SubmissionFailed(message, job_id=job_id, status_code=502, code="upstream_error")
    if isinstance(exc, UpstreamUnreachable) and not exc.request_sent:
        return SubmissionFailed(
            message, job_id=job_id, status_code=502, code="upstream_unreachable"
        )
    return SubmissionFailed(message, job_id=job_id, status_code=502, code="outcome_unknown")

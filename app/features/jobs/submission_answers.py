"""What a submission PixelDojo did not take tells the person, and whether it was sent at all.

PixelDojo's refusals become `SubmissionFailed` (app/core/errors.py) with the status and code
our API answers with; an answer that never came means the job may exist upstream.
"""

from __future__ import annotations

from app.core.errors import SubmissionFailed
from app.upstream import (
    AuthenticationFailed,
    InsufficientCredits,
    InvalidRequest,
    LocalRateLimit,
    MalformedResponse,
    RateLimited,
    ServerError,
    UpstreamError,
    UpstreamUnreachable,
)

BUY_CREDITS_URL = "https://pixeldojo.ai"


def answer_was_lost(exc: UpstreamError) -> bool:
    """Whether the upstream may have created the job although we have no answer saying so."""
    if isinstance(exc, UpstreamUnreachable):
        return exc.request_sent
    return isinstance(exc, MalformedResponse | ServerError)


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


def as_submission_failed(exc: UpstreamError, *, job_id: int) -> SubmissionFailed:
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

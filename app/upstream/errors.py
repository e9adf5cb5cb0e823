"""What can go wrong talking to PixelDojo, as a small tree of exceptions.

UpstreamError                    `message` is safe to show a person
├── UpstreamHTTPError            the upstream answered with an error status
│   ├── AuthenticationFailed     401: missing or wrong key
│   ├── PermissionDenied         403 other than credits
│   ├── InsufficientCredits      402, or 403 `insufficient_credits`
│   ├── InvalidRequest           400, 422: the parameters were refused
│   ├── NotFound                 404: unknown job or model
│   ├── RateLimited              429, with the delay the server asked for
│   └── ServerError              5xx
├── UpstreamUnreachable          no usable answer: network failure or timeout
├── MalformedResponse            an answer we cannot make sense of
├── DownloadRefused              an image we will not store, whatever retrying does
└── LocalRateLimit               our own limiter would make the caller wait too long
"""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any

import httpx

MESSAGE_MAX_CHARS = 500
# X-RateLimit-Reset is either seconds from now or a Unix time, in seconds or milliseconds:
# told apart by size (a reset a few minutes away is far below any Unix time since 1973).
_UNIX_SECONDS_FROM = 1e8
_UNIX_MILLISECONDS_FROM = 1e11
# However long a server asks us to wait, wait no longer than this: a Retry-After of a
# day, or an X-RateLimit-Reset in milliseconds, must not stall every job for that long.
MAX_RETRY_DELAY_SECONDS = 300.0


class UpstreamError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UpstreamHTTPError(UpstreamError):
    def __init__(self, message: str, *, status_code: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class AuthenticationFailed(UpstreamHTTPError):
    pass


class PermissionDenied(UpstreamHTTPError):
    pass


class InsufficientCredits(UpstreamHTTPError):
    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        credits_remaining: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code)
        self.credits_remaining = credits_remaining


class InvalidRequest(UpstreamHTTPError):
    pass


class NotFound(UpstreamHTTPError):
    pass


class RateLimited(UpstreamHTTPError):
    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code)
        self.retry_after = retry_after


class ServerError(UpstreamHTTPError):
    pass


class UpstreamUnreachable(UpstreamError):
    """No usable answer arrived.

    `request_sent` tells whether the upstream may have acted on the request:
    False only when the connection was never made, so a retry cannot double it.
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class MalformedResponse(UpstreamError):
    pass


class DownloadRefused(UpstreamError):
    """The image was not stored, for a reason that retrying will not change."""


class LocalRateLimit(UpstreamError):
    """Nothing was sent: our own limiter would have made the caller wait too long."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_from_response(response: httpx.Response, secret: str = "") -> UpstreamHTTPError:
    """Turn an error answer into the typed error, keeping the upstream's own words."""
    status = response.status_code
    code: str | None = None
    message: str | None = None
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            code = _str_or_none(error.get("code"))
        code = code or _str_or_none(payload.get("code"))
        message = error_text(error) or _str_or_none(payload.get("message"))
    # Codes are matched whatever their case: INSUFFICIENT_CREDITS is insufficient_credits.
    code = code.strip().lower() if code else None
    if message is None:
        message = snippet(response.text, secret) or f"HTTP {status}"
    message = redact(message, secret)

    if status == 401:
        return AuthenticationFailed(message, status_code=status, code=code)
    if status == 402 or (400 <= status < 500 and code == "insufficient_credits"):
        remaining = payload.get("creditsRemaining") if isinstance(payload, dict) else None
        return InsufficientCredits(
            message,
            status_code=status,
            code=code,
            credits_remaining=float(remaining) if isinstance(remaining, int | float) else None,
        )
    if status == 403:
        return PermissionDenied(message, status_code=status, code=code)
    if status in (400, 422):
        return InvalidRequest(message, status_code=status, code=code)
    if status == 404:
        return NotFound(message, status_code=status, code=code)
    if status == 429:
        return RateLimited(
            message, status_code=status, code=code, retry_after=retry_delay(response.headers)
        )
    if status >= 500:
        return ServerError(message, status_code=status, code=code)
    return UpstreamHTTPError(message, status_code=status, code=code)


def retry_delay(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait (bounded): Retry-After or X-RateLimit-Reset."""
    asked = _asked_delay(headers, now=time.time() if now is None else now)
    return None if asked is None else min(asked, MAX_RETRY_DELAY_SECONDS)


def _asked_delay(headers: httpx.Headers, *, now: float) -> float | None:
    retry_after = headers.get("retry-after")
    if retry_after:
        value = retry_after.strip()
        seconds = _finite(value)
        if seconds is not None:  # seconds, fractional ones too
            return max(0.0, seconds)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            return max(0.0, when.timestamp() - now)
    reset = _finite(headers.get("x-ratelimit-reset", ""))
    if reset is None:
        return None
    if reset >= _UNIX_MILLISECONDS_FROM:
        return max(0.0, reset / 1000 - now)
    if reset >= _UNIX_SECONDS_FROM:
        return max(0.0, reset - now)
    return max(0.0, reset)


def _finite(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def error_text(error: Any) -> str | None:
    """The human part of an `error` field, whichever shape it came in."""
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or error.get("code")
        return str(message) if message else None
    return None


def snippet(text: str, secret: str) -> str:
    return redact(text.strip()[:MESSAGE_MAX_CHARS], secret)


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

"""The PixelDojo async job API client: submit, poll, download.

One `PixelDojoClient` per app. Its API client carries the key and talks only to
the configured base URL; image downloads go through a second client that has
no auth header at all, so a temporary image host never sees the key.

Errors form a small tree, each carrying the upstream's own message:

    UpstreamError
    ├── UpstreamHTTPError            the upstream answered with an error status
    │   ├── AuthenticationFailed     401: missing or wrong key
    │   ├── PermissionDenied         403 other than credits
    │   ├── InsufficientCredits      402, or 403 `insufficient_credits`
    │   ├── InvalidRequest           400, 422: the parameters were refused
    │   ├── NotFound                 404: unknown job or model
    │   ├── RateLimited              429, with the delay the server asked for
    │   └── ServerError              5xx
    ├── UpstreamUnreachable          network failure or timeout
    └── MalformedResponse            an answer we cannot make sense of
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

import httpx
from pydantic import SecretStr

USER_AGENT = "seedream-playground"
MESSAGE_MAX_CHARS = 500
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


# --- Errors ----------------------------------------------------------------------


class UpstreamError(Exception):
    """Anything that went wrong talking to PixelDojo; `message` is safe to show a user."""

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
        status_code: int,
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


# --- Answers -----------------------------------------------------------------------


class UpstreamState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


# The contract evidences pending/completed/failed; anything unknown is still running.
_FAILED_STATUSES = frozenset({"failed", "error", "cancelled", "canceled", "expired"})


@dataclass(frozen=True)
class UpstreamJob:
    job_id: str
    status: str
    state: UpstreamState
    image_urls: list[str] = field(default_factory=list)
    credit_cost: float | None = None
    credits_remaining: float | None = None
    expires_at: datetime | None = None
    error: str | None = None


# --- The client --------------------------------------------------------------------


class PixelDojoClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: SecretStr,
        image_hosts: Iterable[str] = (),
        timeout_seconds: float = 60.0,
        download_timeout_seconds: float = 120.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Images may come from the API's own host and the hosts named here, no others.
        self.image_hosts = frozenset(
            {(urlsplit(self.base_url).hostname or "").lower()}
            | {host.lower() for host in image_hosts}
        )
        self._secret = api_key.get_secret_value()
        timeout = httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds))
        self._api = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={"Authorization": f"Bearer {self._secret}", "User-Agent": USER_AGENT},
            timeout=timeout,
            follow_redirects=False,
        )
        self._downloads = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(download_timeout_seconds, connect=10.0),
            follow_redirects=False,
        )
        self.download_timeout_seconds = download_timeout_seconds

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._downloads.aclose()

    async def submit(self, model: str, body: dict[str, Any]) -> UpstreamJob:
        response = await self._request("POST", f"models/{quote(model, safe='')}/run", json=body)
        if response.status_code not in (200, 201, 202):
            raise error_from_response(response, self._secret)
        return parse_job(self._json(response), self._secret)

    async def get_job(self, job_id: str) -> UpstreamJob:
        # The status URL is rebuilt from our base: a statusUrl pointing elsewhere never
        # receives the key.
        response = await self._request("GET", f"jobs/{quote(job_id, safe='')}")
        if response.status_code != 200:
            raise error_from_response(response, self._secret)
        return parse_job(self._json(response), self._secret)

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._api.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise UpstreamUnreachable(
                f"could not connect to PixelDojo: {exc.__class__.__name__}", request_sent=False
            ) from None
        except httpx.ConnectTimeout:
            raise UpstreamUnreachable(
                "timed out connecting to PixelDojo", request_sent=False
            ) from None
        except httpx.TimeoutException:
            raise UpstreamUnreachable(
                "PixelDojo did not answer in time", request_sent=True
            ) from None
        except httpx.TransportError as exc:
            raise UpstreamUnreachable(
                f"the connection to PixelDojo broke: {exc.__class__.__name__}", request_sent=True
            ) from None

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise MalformedResponse(
                f"PixelDojo answered {response.status_code} with a body that is not JSON: "
                f"{_snippet(response.text, self._secret)!r}"
            ) from None

    def check_image_url(self, url: str) -> None:
        """Refuse image URLs off the allowed hosts before any byte is requested."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or host not in self.image_hosts:
            raise DownloadRefused(
                f"the image URL's host {host or '(none)'!r} is not an allowed image host"
            )

    async def download(self, url: str, destination: BinaryIO, *, max_bytes: int) -> Download:
        """Stream `url` into `destination`, hashing as it goes, refusing more than `max_bytes`.

        Runs on the key-less client; redirects are not followed, so the bytes come
        from the allowed host or not at all.
        """
        self.check_image_url(url)
        deadline = time.monotonic() + self.download_timeout_seconds
        digest = hashlib.sha256()
        size = 0
        try:
            async with self._downloads.stream("GET", url) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise error_from_response(response, self._secret)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise DownloadRefused(
                        f"the image is {int(declared):,} bytes, over the {max_bytes:,}-byte cap"
                    )
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadRefused(f"the image is over the {max_bytes:,}-byte cap")
                    if time.monotonic() > deadline:
                        raise UpstreamUnreachable("the image download timed out", request_sent=True)
                    digest.update(chunk)
                    destination.write(chunk)
        except httpx.TimeoutException:
            raise UpstreamUnreachable("the image download timed out", request_sent=True) from None
        except httpx.TransportError as exc:
            raise UpstreamUnreachable(
                f"the image download broke: {exc.__class__.__name__}", request_sent=True
            ) from None
        return Download(byte_size=size, sha256=digest.hexdigest())


@dataclass(frozen=True)
class Download:
    byte_size: int
    sha256: str


class DownloadRefused(UpstreamError):
    """The image was not stored, for a reason that retrying will not change."""


# --- Parsing -------------------------------------------------------------------------


def parse_job(payload: Any, secret: str = "") -> UpstreamJob:
    """Read a submit or job answer, in every shape the contract has seen."""
    if not isinstance(payload, dict):
        raise MalformedResponse("PixelDojo's answer is not a JSON object")
    job_id = payload.get("jobId") or payload.get("id")
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
        raise MalformedResponse("PixelDojo's answer has no usable jobId")
    status = payload.get("status")
    if not isinstance(status, str) or not status:
        raise MalformedResponse(f"PixelDojo's answer for {job_id} has no status")
    status = status.lower()
    if status == "completed":
        state = UpstreamState.COMPLETED
    elif status in _FAILED_STATUSES:
        state = UpstreamState.FAILED
    else:
        state = UpstreamState.RUNNING
    image_urls = _image_urls(payload) if state is UpstreamState.COMPLETED else []
    if state is UpstreamState.COMPLETED and not image_urls:
        raise MalformedResponse(f"PixelDojo says {job_id} is completed but lists no image")
    error = None
    if state is UpstreamState.FAILED:
        error = _redact(_error_text(payload.get("error")) or f"the job {status}", secret)
    return UpstreamJob(
        job_id=job_id,
        status=status,
        state=state,
        image_urls=image_urls,
        credit_cost=_number(payload.get("creditCost")),
        credits_remaining=_number(payload.get("creditsRemaining")),
        expires_at=_timestamp(payload.get("expiresAt")),
        error=error,
    )


def _image_urls(payload: dict[str, Any]) -> list[str]:
    # output.images (the page), output.image (other models), assets[].url (the SDK),
    # lists of {url} objects (fal): all accepted.
    candidates: list[Any] = []
    output = payload.get("output")
    if isinstance(output, dict):
        for key in ("images", "image"):
            value = output.get(key)
            candidates.extend(value if isinstance(value, list) else [value])
    elif isinstance(output, list):
        candidates.extend(output)
    assets = payload.get("assets")
    if isinstance(assets, list):
        candidates.extend(assets)
    urls: list[str] = []
    for item in candidates:
        url = item.get("url") if isinstance(item, dict) else item
        if isinstance(url, str) and urlsplit(url).scheme in ("http", "https") and url not in urls:
            urls.append(url)
    return urls


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _error_text(error: Any) -> str | None:
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or error.get("code")
        return str(message) if message else None
    return None


def _snippet(text: str, secret: str) -> str:
    return _redact(text.strip()[:MESSAGE_MAX_CHARS], secret)


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


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
        message = _error_text(error) or _str_or_none(payload.get("message"))
    if message is None:
        message = _snippet(response.text, secret) or f"HTTP {status}"
    message = _redact(message, secret)

    if status == 401:
        return AuthenticationFailed(message, status_code=status, code=code)
    if status == 402 or (status == 403 and code == "insufficient_credits"):
        remaining = _number(payload.get("creditsRemaining")) if isinstance(payload, dict) else None
        return InsufficientCredits(
            message, status_code=status, code=code, credits_remaining=remaining
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
    """Seconds the server asked us to wait: Retry-After (seconds or date) or X-RateLimit-Reset."""
    now = time.time() if now is None else now
    retry_after = headers.get("retry-after")
    if retry_after:
        value = retry_after.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(0.0, when.timestamp() - now)
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            return None
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

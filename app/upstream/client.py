"""The PixelDojo client: submit, poll, list, download.

One `PixelDojoClient` per app. Its API client carries the key and talks only to
the configured base URL; image downloads go through a second client that has
no auth header at all, so a temporary image host never sees the key.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin, urlsplit

import httpx
from pydantic import SecretStr

from app.core import metrics
from app.upstream.answers import ListedJob, UpstreamJob, parse_job, parse_job_list
from app.upstream.errors import (
    DownloadRefused,
    MalformedResponse,
    RateLimited,
    UpstreamUnreachable,
    error_from_response,
    snippet,
)
from app.upstream.hosts import ImageHosts
from app.upstream.ratelimit import RateLimiter

USER_AGENT = "seedream-playground"
MAX_REDIRECTS = 3
# A 429 on submit without a delay of its own: wait this long before the one retry.
DEFAULT_RATE_LIMIT_PAUSE = 5.0


@dataclass(frozen=True)
class Download:
    byte_size: int
    sha256: str


class PixelDojoClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: SecretStr,
        image_hosts: Iterable[str] = (),
        timeout_seconds: float = 60.0,
        download_timeout_seconds: float = 120.0,
        rate_limit_per_minute: float | None = None,
        max_submit_wait_seconds: float = 30.0,
        limiter: RateLimiter | None = None,
        on_response: Callable[[httpx.Response], Awaitable[None]] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Images may come from the API's domain and the hosts named here, no others.
        self.image_hosts = ImageHosts(urlsplit(self.base_url).hostname or "", image_hosts)
        self._secret = api_key.get_secret_value()
        timeout = httpx.Timeout(timeout_seconds, connect=min(10.0, timeout_seconds))
        # `on_response` sees every API answer (doctor reads rate-limit headers and Date).
        hooks = {"response": [on_response]} if on_response is not None else {}
        self._api = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={"Authorization": f"Bearer {self._secret}", "User-Agent": USER_AGENT},
            timeout=timeout,
            follow_redirects=False,
            event_hooks=hooks,
        )
        self._downloads = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(download_timeout_seconds, connect=10.0),
            follow_redirects=False,
        )
        self.download_timeout_seconds = download_timeout_seconds
        # The app hands in one shared by every process (app.features.models.rate_budget); else this
        # process's.
        self.limiter = limiter if limiter is not None else RateLimiter(rate_limit_per_minute)
        self.max_submit_wait_seconds = max_submit_wait_seconds

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._downloads.aclose()

    async def submit(
        self,
        model: str,
        body: dict[str, Any],
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> UpstreamJob:
        """Submit once. Retried only where the upstream certainly did not take it:
        a 429 (bounded by `max_submit_wait_seconds`) or a connection never made.
        `before_send`, awaited after each wait for the rate limit and before the request
        goes, may raise to give up while nothing has been sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_submit_wait_seconds
        path = f"models/{quote(model, safe='')}/run"
        refused_connections = 0
        while True:
            try:
                response = await self._request(
                    "POST",
                    path,
                    endpoint="submit",
                    submit=True,
                    max_wait=max(0.0, deadline - loop.time()),
                    before_send=before_send,
                    json=body,
                )
            except UpstreamUnreachable as exc:
                if exc.request_sent or refused_connections >= 1:
                    raise
                refused_connections += 1
                metrics.UPSTREAM_RETRIES.labels(reason="connection_refused").inc()
                continue
            if response.status_code in (200, 201, 202):
                # An accepted job with no status word is pending, never a lost answer.
                return parse_job(self._json(response), self._secret, default_status="pending")
            error = error_from_response(response, self._secret)
            if not isinstance(error, RateLimited):
                raise error
            pause = error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT_PAUSE
            await self.limiter.hold(pause)
            if loop.time() + pause > deadline:
                raise error
            metrics.UPSTREAM_RETRIES.labels(reason="rate_limited").inc()

    async def get_job(self, job_id: str) -> UpstreamJob:
        # The status URL is rebuilt from our base: a statusUrl pointing elsewhere never
        # receives the key.
        response = await self._limited("GET", f"jobs/{quote(job_id, safe='')}", endpoint="job")
        return parse_job(self._json(response), self._secret)

    async def list_jobs(self, *, limit: int = 50) -> list[ListedJob]:
        """Recent jobs of this key (the listing's path is the contract's best guess)."""
        response = await self._limited("GET", "jobs", endpoint="jobs", params={"limit": limit})
        return parse_job_list(self._json(response))

    async def check_key(self, *, max_wait: float | None = None) -> None:
        """Raise AuthenticationFailed if the key is refused; a cheap read with no side effect
        (a job that cannot exist: 404 with a good key, 401 with a bad one). With `max_wait`,
        LocalRateLimit rather than wait longer than that for the budget."""
        await self._limited(
            "GET",
            "jobs/job_keycheck",
            endpoint="key_check",
            answered=(200, 404),
            max_wait=max_wait,
        )

    async def list_models(self) -> Any:
        """The catalogue (`GET /models`), as PixelDojo answers it (app/features/models/catalogue.py
        reads it)."""
        response = await self._limited("GET", "models", endpoint="models")
        return self._json(response)

    async def model(self, model: str) -> dict[str, Any]:
        """The model's card: name, modality, credit cost (NotFound for an unknown model)."""
        response = await self._limited("GET", f"models/{quote(model, safe='')}", endpoint="model")
        payload = self._json(response)
        if not isinstance(payload, dict):
            raise MalformedResponse("PixelDojo's model answer is not a JSON object")
        return payload

    async def model_schema(self, model: str) -> Any:
        """The JSON Schema of the model's run body, as PixelDojo answers it."""
        response = await self._limited(
            "GET", f"models/{quote(model, safe='')}/schema", endpoint="model_schema"
        )
        return self._json(response)

    async def _limited(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        answered: tuple[int, ...] = (200,),
        max_wait: float | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A read: raises the upstream's error for any status but `answered` (a 429 holds
        every caller for as long as the server asked)."""
        response = await self._request(method, path, endpoint=endpoint, max_wait=max_wait, **kwargs)
        if response.status_code not in answered:
            error = error_from_response(response, self._secret)
            if isinstance(error, RateLimited):
                await self.limiter.hold(
                    error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT_PAUSE
                )
            raise error
        return response

    async def _request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        submit: bool = False,
        max_wait: float | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """The one way a request carrying the key leaves: each takes its token from the
        budget first (for the app, one budget per key shared by every process, whatever the
        call), so no caller can spend the key's rate limit around it. `before_send` runs
        between the wait for the budget and the request, and may raise to send nothing.
        Counted by `endpoint` (a name, never the path: job ids would make a series each)
        and its answer."""
        await self.limiter.acquire(submit=submit, max_wait=max_wait)
        if before_send is not None:
            await before_send()
        try:
            response = await self._api.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            metrics.UPSTREAM_REQUESTS.labels(endpoint=endpoint, status="unreachable").inc()
            raise UpstreamUnreachable(
                f"could not connect to PixelDojo ({exc.__class__.__name__})", request_sent=False
            ) from None
        except httpx.TimeoutException:
            metrics.UPSTREAM_REQUESTS.labels(endpoint=endpoint, status="unreachable").inc()
            raise UpstreamUnreachable(
                "PixelDojo did not answer in time", request_sent=True
            ) from None
        except httpx.TransportError as exc:
            metrics.UPSTREAM_REQUESTS.labels(endpoint=endpoint, status="unreachable").inc()
            raise UpstreamUnreachable(
                f"the connection to PixelDojo broke ({exc.__class__.__name__})", request_sent=True
            ) from None
        metrics.UPSTREAM_REQUESTS.labels(endpoint=endpoint, status=str(response.status_code)).inc()
        if response.status_code == 429:
            metrics.UPSTREAM_RATE_LIMITED.labels(endpoint=endpoint).inc()
        return response

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise MalformedResponse(
                f"PixelDojo answered {response.status_code} with a body that is not JSON: "
                f"{snippet(response.text, self._secret)!r}"
            ) from None

    def check_image_url(self, url: str) -> None:
        """Refuse image URLs off the allowed hosts before any byte is requested."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not self.image_hosts.allows(host):
            raise DownloadRefused(self.image_hosts.refusal(host))

    async def download(self, url: str, destination: BinaryIO, *, max_bytes: int) -> Download:
        """Stream `url` into `destination`, hashing as it goes.

        On the key-less client, from allowed hosts only (redirects are followed only
        to allowed hosts), at most `max_bytes`, within one overall deadline.
        """
        try:
            downloaded = await self._fetch(url, destination, max_bytes=max_bytes)
        except DownloadRefused:
            metrics.DOWNLOADS.labels(outcome="refused").inc()
            raise
        except Exception:
            metrics.DOWNLOADS.labels(outcome="failed").inc()
            raise
        metrics.DOWNLOADS.labels(outcome="ok").inc()
        metrics.DOWNLOAD_BYTES.inc(downloaded.byte_size)
        return downloaded

    async def _fetch(self, url: str, destination: BinaryIO, *, max_bytes: int) -> Download:
        try:
            async with asyncio.timeout(self.download_timeout_seconds):
                return await self._download(url, destination, max_bytes=max_bytes)
        except TimeoutError:
            raise UpstreamUnreachable("the image download timed out", request_sent=True) from None
        except httpx.TimeoutException:
            raise UpstreamUnreachable("the image download timed out", request_sent=True) from None
        except httpx.TransportError as exc:
            raise UpstreamUnreachable(
                f"the image download broke ({exc.__class__.__name__})", request_sent=True
            ) from None

    async def _download(self, url: str, destination: BinaryIO, *, max_bytes: int) -> Download:
        for _ in range(MAX_REDIRECTS + 1):
            self.check_image_url(url)
            async with self._downloads.stream("GET", url) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code != 200:
                    await response.aread()
                    raise error_from_response(response, self._secret)
                return await _save_body(response, destination, max_bytes=max_bytes)
        raise DownloadRefused("the image host redirected too many times")


async def _save_body(
    response: httpx.Response, destination: BinaryIO, *, max_bytes: int
) -> Download:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise DownloadRefused(
            f"the image is {int(declared):,} bytes, over the {max_bytes:,}-byte cap"
        )
    digest = hashlib.sha256()
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise DownloadRefused(f"the image is over the {max_bytes:,}-byte cap")
        digest.update(chunk)
        destination.write(chunk)
    return Download(byte_size=size, sha256=digest.hexdigest())

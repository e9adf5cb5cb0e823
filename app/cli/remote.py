"""Talking to a running playground over its JSON API: what the command line's
`generate`, `batch` and `grid` are built on.

Every failure becomes one `RemoteError` whose message is a sentence a person can act
on. A submission lost on the way (a dropped connection, a timeout) is sent again
with the same Idempotency-Key, which the server answers with the job it already
has: retrying never pays twice.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8000"
TOKEN_VARIABLE = "PLAYGROUND_TOKEN"
REQUEST_TIMEOUT_SECONDS = 90.0
SEND_ATTEMPTS = 4
POLL_SECONDS = 0.5
POLL_MAX_SECONDS = 2.0
DOWNLOAD_CHUNK = 1 << 16


class RemoteError(Exception):
    """Something the person must hear about, in one line; `code` is the server's, if any."""

    def __init__(self, message: str, *, code: str = "error", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def token_from_environment() -> str | None:
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    return token or None


class Remote:
    """One server, one connection pool; use as `async with Remote(url) as remote:`."""

    def __init__(self, server: str, *, token: str | None = None) -> None:
        self.server = server.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "seedream-playground-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.AsyncClient(
            base_url=self.server,
            headers=headers,
            timeout=httpx.Timeout(REQUEST_TIMEOUT_SECONDS, connect=10.0),
        )

    async def __aenter__(self) -> Remote:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    # --- Requests ----------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        retry: bool = False,
    ) -> httpx.Response:
        """One request; with `retry` (safe: a GET, or a POST with an Idempotency-Key),
        a lost answer or a 429 is tried again a few times."""
        for attempt in range(SEND_ATTEMPTS):
            try:
                answer = await self._client.request(
                    method, path, json=json, headers=headers, params=params
                )
            except httpx.ConnectError:
                raise RemoteError(
                    f"Cannot reach {self.server}: is `seedream-playground serve` running there? "
                    "(--server names another)",
                    code="unreachable",
                ) from None
            except httpx.TransportError as exc:
                if not retry or attempt == SEND_ATTEMPTS - 1:
                    raise RemoteError(
                        f"The connection to {self.server} failed ({type(exc).__name__})",
                        code="connection_lost",
                    ) from None
                await asyncio.sleep(2**attempt)
                continue
            if answer.status_code == 429 and retry and attempt < SEND_ATTEMPTS - 1:
                await asyncio.sleep(_retry_after(answer))
                continue
            if answer.status_code >= 400:
                raise self._error(answer)
            return answer
        raise AssertionError("unreachable")

    def _error(self, answer: httpx.Response) -> RemoteError:
        try:
            error = answer.json().get("error", {})
        except ValueError:
            error = {}
        code = str(error.get("code") or f"http_{answer.status_code}")
        message = str(error.get("message") or answer.text.strip() or answer.reason_phrase)
        if answer.status_code == 401:
            if code == "invalid_token":
                message = f"The token in {TOKEN_VARIABLE} is not valid or was revoked."
            else:
                message = (
                    f"{self.server} needs sign-in: set {TOKEN_VARIABLE} to an API token "
                    "(make one on your account page)."
                )
        elif code == "invalid_parameters" and isinstance(error.get("fields"), dict):
            fields = "; ".join(f"{name}: {text}" for name, text in error["fields"].items())
            message = f"Invalid parameters: {fields}"
        message = " ".join(message.split())
        return RemoteError(message, code=code, status=answer.status_code)

    async def get_json(self, path: str, **params: Any) -> Any:
        answer = await self._send("GET", path, params=params or None, retry=True)
        return answer.json()

    async def post_json(self, path: str, body: Any, *, key: str | None = None) -> Any:
        headers = {"Idempotency-Key": key} if key else None
        answer = await self._send("POST", path, json=body, headers=headers, retry=key is not None)
        return answer.json()

    # --- What the commands use ---------------------------------------------------------

    async def presets(self) -> dict[str, dict[str, Any]]:
        return {preset["slug"]: preset for preset in await self.get_json("/api/presets")}

    async def submit_job(self, body: dict[str, Any], *, key: str) -> dict[str, Any]:
        job: dict[str, Any] = await self.post_json("/api/jobs", body, key=key)
        return job

    async def job(self, job_id: int) -> dict[str, Any]:
        job: dict[str, Any] = await self.get_json(f"/api/jobs/{job_id}")
        return job

    async def wait_for_job(self, job_id: int, *, on_change: Any = None) -> dict[str, Any]:
        """Poll until the job has finished; `on_change(job)` hears each new state."""
        delay, seen = POLL_SECONDS, None
        while True:
            job = await self.job(job_id)
            state = (job["status"], len(job["images"]))
            if state != seen:
                seen, delay = state, POLL_SECONDS
                if on_change is not None:
                    on_change(job)
            if job["finished"]:
                return job
            await asyncio.sleep(delay)
            delay = min(POLL_MAX_SECONDS, delay * 1.5)

    async def download(self, path: str, folder: Path, *, prefix: str = "") -> Path:
        """Save what `path` serves into `folder` under the server's file name, whole or not
        at all (written aside, then renamed)."""
        folder.mkdir(parents=True, exist_ok=True)
        for attempt in range(SEND_ATTEMPTS):
            try:
                async with self._client.stream("GET", path) as answer:
                    if answer.status_code >= 400:
                        await answer.aread()
                        raise self._error(answer)
                    name = prefix + _file_name(answer, default=Path(path).name)
                    target = folder / name
                    partial = folder / f".{name}.part"
                    with partial.open("wb") as out:
                        async for chunk in answer.aiter_bytes(DOWNLOAD_CHUNK):
                            out.write(chunk)
                    os.replace(partial, target)
                    return target
            except httpx.ConnectError:
                raise RemoteError(f"Cannot reach {self.server}", code="unreachable") from None
            except httpx.TransportError:
                if attempt == SEND_ATTEMPTS - 1:
                    raise RemoteError(
                        f"Downloading {path} from {self.server} kept failing",
                        code="connection_lost",
                    ) from None
                await asyncio.sleep(2**attempt)
        raise AssertionError("unreachable")


def _retry_after(answer: httpx.Response) -> float:
    try:
        return min(60.0, max(1.0, float(answer.headers.get("retry-after", "2"))))
    except ValueError:
        return 2.0


SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _file_name(answer: httpx.Response, *, default: str) -> str:
    """The name the server gives (Content-Disposition), made safe to write anywhere."""
    found = re.search(r'filename="([^"]+)"', answer.headers.get("content-disposition", ""))
    name = SAFE_NAME.sub("-", found.group(1) if found else default).strip(".-")
    return name or "download"

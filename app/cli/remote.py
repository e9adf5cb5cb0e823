"""Talking to a running playground over its JSON API: what the command line's `generate`,
`batch`, `grid`, `jobs`, `models`, `presets` and `login` are built on.

Every failure becomes one `RemoteError` whose message is a sentence a person can act
on, in the command line's words (`--size`, not `customWidth`). A server that answers
but not as a playground (another service on that port, a path that is not one) is said
to be so, instead of failing on its answer. A submission lost on the way (a dropped
connection, a timeout) is sent again with the same Idempotency-Key, which the server
answers with the job it already has: retrying never pays twice.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from app.cli.credentials import SERVER_VARIABLE, TOKEN_VARIABLE, BadServer, server_from
from app.web import urls

REQUEST_TIMEOUT_SECONDS = 90.0
SEND_ATTEMPTS = 4
POLL_SECONDS = 0.5
POLL_MAX_SECONDS = 2.0
DOWNLOAD_CHUNK = 1 << 16
# Codes after which nothing else sent to the server can work either.
FATAL_CODES = frozenset(
    {"unreachable", "connection_lost", "sign_in_required", "invalid_token", "not_a_playground"}
)
# What the API's words are on the command line.
CLI_WORDS = (
    ("GET /api/models lists those it has", "`seedream-playground models` lists those it has"),
    ("GET /api/models", "`seedream-playground models`"),
    ("GET /api/presets", "`seedream-playground presets`"),
)


class RemoteError(Exception):
    """Something the person must hear about, in one line; `code` is the server's, if any."""

    def __init__(self, message: str, *, code: str = "error", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def chosen_server(option: str | None) -> str:
    """The playground a command talks to (--server, PLAYGROUND_SERVER or the default); a
    RemoteError naming --server when it is not a playground's address."""
    try:
        return server_from(option)
    except BadServer as bad:
        raise RemoteError(f"--server {bad}") from None


def in_cli_words(message: str) -> str:
    for api, cli in CLI_WORDS:
        message = message.replace(api, cli)
    return message


class Remote:
    """One server, one connection pool; use as `async with Remote(url) as remote:`.

    `field_names` says what the command line calls the API's fields in errors
    (`{"customWidth": "--size"}`); fields it does not name keep their own names.
    """

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        field_names: Mapping[str, str] | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.field_names = dict(field_names or {})
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
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        retry: bool = False,
    ) -> httpx.Response:
        """One request; with `retry` (safe: a GET, or a POST with an Idempotency-Key),
        a lost answer or a 429 is tried again a few times."""
        for attempt in range(SEND_ATTEMPTS):
            try:
                answer = await self._client.request(
                    method, path, json=json, content=content, headers=headers, params=params
                )
            except httpx.ConnectError:
                raise self.unreachable() from None
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise RemoteError(
                    f"{self.server} cannot be used: {exc}", code="unreachable"
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
                raise self._error(answer, method, path)
            return answer
        raise AssertionError("unreachable")

    def unreachable(self) -> RemoteError:
        return RemoteError(
            f"Cannot reach {self.server}: is `seedream-playground serve` running there? "
            f"(--server or {SERVER_VARIABLE} names another)",
            code="unreachable",
        )

    def not_a_playground(self, method: str, path: str, what: str) -> RemoteError:
        return RemoteError(
            f"{self.server} answers, but not as a Seedream Playground ({method} {path}: "
            f"{what}); is --server right?",
            code="not_a_playground",
        )

    def _error(self, answer: httpx.Response, method: str, path: str) -> RemoteError:
        try:
            document = answer.json()
        except ValueError:
            document = None
        error = document.get("error") if isinstance(document, dict) else None
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            # Every error of a playground's API is `{"error": {"code", "message"}}`.
            return self.not_a_playground(method, path, f"HTTP {answer.status_code}")
        code = str(error.get("code") or f"http_{answer.status_code}")
        message = str(error["message"])
        if answer.status_code == 401:
            if code == "invalid_token":
                message = f"The API token ({TOKEN_VARIABLE} or login) is not valid or was revoked."
            elif code == "sign_in_required":
                message = (
                    f"{self.server} needs sign-in: run `seedream-playground login`, or set "
                    f"{TOKEN_VARIABLE} to an API token (make one on your account page)."
                )
        elif code == "invalid_parameters" and isinstance(error.get("fields"), dict):
            named: dict[str, str] = {}
            for name, text in error["fields"].items():
                named.setdefault(self._field_name(str(name)), str(text))
            message = "Invalid parameters: " + "; ".join(f"{n}: {t}" for n, t in named.items())
        message = in_cli_words(" ".join(message.split()))
        return RemoteError(message, code=code, status=answer.status_code)

    def _field_name(self, name: str) -> str:
        head, dot, rest = name.rpartition(".")
        return f"{head}{dot}{self.field_names.get(rest, rest)}"

    def _document(self, answer: httpx.Response, method: str, path: str, kind: type) -> Any:
        try:
            document = answer.json()
        except ValueError:
            raise self.not_a_playground(method, path, "not JSON") from None
        if not isinstance(document, kind):
            raise self.not_a_playground(method, path, "an unexpected answer")
        return document

    async def get_json(self, path: str, *, kind: type = dict, **params: Any) -> Any:
        given = {name: value for name, value in params.items() if value is not None}
        answer = await self._send("GET", path, params=given or None, retry=True)
        return self._document(answer, "GET", path, kind)

    async def post_json(self, path: str, body: Any, *, key: str | None = None) -> Any:
        headers = {"Idempotency-Key": key} if key else None
        answer = await self._send("POST", path, json=body, headers=headers, retry=key is not None)
        return self._document(answer, "POST", path, dict)

    # --- What the commands use ---------------------------------------------------------

    async def presets(self) -> dict[str, dict[str, Any]]:
        listed = await self.get_json("/api/presets", kind=list)
        found = {str(p.get("slug")): p for p in listed if isinstance(p, dict) and "slug" in p}
        if len(found) != len(listed):
            raise self.not_a_playground("GET", "/api/presets", "an unexpected answer")
        return found

    async def submit_job(self, body: dict[str, Any], *, key: str) -> tuple[dict[str, Any], bool]:
        """The job the server made for `body`, and whether it had made it before (the same
        key: this answer is the earlier job's, and nothing was paid again)."""
        answer = await self._send(
            "POST", "/api/jobs", json=body, headers={"Idempotency-Key": key}, retry=True
        )
        job = self._job(self._document(answer, "POST", "/api/jobs", dict), "POST /api/jobs")
        return job, answer.headers.get("idempotent-replayed") == "true"

    async def job(self, job_id: int) -> dict[str, Any]:
        path = urls.job_api(job_id)
        return self._job(await self.get_json(path), f"GET {path}")

    def _job(self, document: dict[str, Any], where: str) -> dict[str, Any]:
        if not {"id", "status", "finished", "images", "parameters"} <= set(document):
            method, path = where.split(" ", 1)
            raise self.not_a_playground(method, path, "not a job")
        return document

    async def upload(self, path: Path) -> int:
        """Keep an image file in the server's gallery as an upload; its image id (the same
        bytes give the same id every time)."""
        kind = image_type(path)
        if kind is None:
            raise RemoteError(f"--reference {path}: not a PNG, JPEG or WebP image")
        answer = await self._send(
            "POST",
            "/api/uploads",
            content=path.read_bytes(),
            params={"name": path.name},
            headers={"Content-Type": kind},
            retry=True,
        )
        document = self._document(answer, "POST", "/api/uploads", dict)
        return int(document["image_id"])

    async def wait_for_job(
        self, job_id: int, *, on_change: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, Any]:
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
        for attempt in range(SEND_ATTEMPTS):
            try:
                async with self._client.stream("GET", path) as answer:
                    if answer.status_code >= 400:
                        await answer.aread()
                        raise self._error(answer, "GET", path)
                    name = prefix + _file_name(answer, default=Path(path).name)
                    target = folder / name
                    partial = folder / f".{name}.part"
                    with partial.open("wb") as out:
                        async for chunk in answer.aiter_bytes(DOWNLOAD_CHUNK):
                            out.write(chunk)
                    os.replace(partial, target)
                    return target
            except httpx.ConnectError:
                raise self.unreachable() from None
            except httpx.TransportError:
                if attempt == SEND_ATTEMPTS - 1:
                    raise RemoteError(
                        f"Downloading {path} from {self.server} kept failing",
                        code="connection_lost",
                    ) from None
                await asyncio.sleep(2**attempt)
        raise AssertionError("unreachable")


def image_type(path: Path) -> str | None:
    """The image type a file's first bytes say it is, if it is one the gallery keeps."""
    with path.open("rb") as stream:
        head = stream.read(12)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


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

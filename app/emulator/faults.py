"""Scripted faults for the emulator: what the real service might do on a bad day.

A `Fault` names a route (`run`, `job`, `jobs`, `image`, `models`, `schema`, or
`*`) and what happens to the next `times` requests to it:

- `delay`: the answer comes late (longer than a client's timeout, if you like);
- `status`: an error status with its headers (a 429 with Retry-After, a burst
  of 5xx, a 302 to another host);
- `malformed`: a 200 whose body cannot be read: an HTML error page by default,
  or `body` as given (truncated JSON, an empty body);
- `truncate`: the connection breaks mid-answer, before anything was done;
- `lose_answer`: the request is carried out (the job exists, credits are
  spent), then the answer is cut off;
- `payload`: any body, say an oversized or non-image download;
- `edit`: the request is carried out, and its JSON answer changed: the keys in
  `drop` removed, `body` (a dict) merged in (a submit answer without `status`, a
  poll answer whose status word is odd).

Jobs that fail or never finish are asked for by prompt markers (`[[fail]]`,
`[[never]]`); expired or foreign image URLs by the `retention_seconds` and
`image_base_url` settings.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

FaultKind = Literal["status", "malformed", "truncate", "delay", "payload", "lose_answer", "edit"]
# Faults that act on the normal answer, after the request was processed.
LATE_KINDS = frozenset({"lose_answer", "edit"})


@dataclass
class Fault:
    route: str
    kind: FaultKind = "status"
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    times: int = 1
    # For "payload": answer 200 with this many bytes of junk (or `body`) as `content_type`.
    size: int = 0
    content_type: str = "image/png"
    # For "edit": keys removed from the JSON answer.
    drop: list[str] = field(default_factory=list)

    def spoil(self, answer: Response) -> Response:
        """A late fault: the request was carried out, then its answer cut off or changed."""
        if self.kind == "edit":
            payload = json.loads(bytes(answer.body))
            if isinstance(payload, dict):
                for key in self.drop:
                    payload.pop(key, None)
                if isinstance(self.body, dict):
                    payload.update(self.body)
            return JSONResponse(payload, status_code=answer.status_code)
        return TruncatedResponse(bytes(answer.body)[:12])

    def response(self) -> Response | None:
        """The answer that replaces the normal one, or None to carry on after the delay."""
        if self.kind == "delay":
            return None
        if self.kind == "malformed":
            body = self.body if isinstance(self.body, str) else "<html>Bad gateway</html>"
            media = "text/html" if body.lstrip().startswith("<") else "application/json"
            return Response(body, status_code=200, media_type=media)
        if self.kind == "payload":
            junk = b"\x89PNG" + bytes(self.size)  # a PNG signature, then nothing decodable
            data = self.body.encode() if isinstance(self.body, str) else junk
            if isinstance(self.body, bytes):
                data = self.body
            return Response(data, status_code=200, media_type=self.content_type)
        if self.kind == "truncate":
            body = self.body if isinstance(self.body, str) else '{"jobId": "job_'
            return TruncatedResponse(body.encode())
        if self.body is None:
            payload: Any = {
                "error": {"code": f"http_{self.status}", "message": f"Injected fault {self.status}"}
            }
        else:
            payload = self.body
        return JSONResponse(payload, status_code=self.status, headers=self.headers)


class TruncatedResponse(Response):
    """Promises more bytes than it sends, then hangs up: a connection dropped mid-answer."""

    def __init__(self, partial: bytes) -> None:
        super().__init__(partial, status_code=200, media_type="application/json")
        self.headers["content-length"] = str(len(partial) + 1000)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        # Returning without the rest makes the server close the connection.


class FaultPlan:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> int:
        with self._lock:
            return sum(f.times for f in self._faults)

    def take(self, route: str, *, late: bool = False) -> Fault | None:
        """The next fault for `route`: acting before the request is handled, or on its answer."""
        with self._lock:
            for fault in self._faults:
                if (fault.kind in LATE_KINDS) != late:
                    continue
                if fault.route in (route, "*") and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

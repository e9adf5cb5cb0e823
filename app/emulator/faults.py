"""Scripted faults for the emulator: what the real service might do on a bad day.

A `Fault` names a route (`run`, `job`, `jobs`, `image`, `models`, or `*`) and
what happens to the next `times` requests to it: a delay, an error status with
its headers (say 429 with Retry-After), a body that is not JSON, or a
connection that breaks mid-answer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

FaultKind = Literal["status", "malformed", "truncate", "delay"]


@dataclass
class Fault:
    route: str
    kind: FaultKind = "status"
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    times: int = 1

    def response(self) -> Response | None:
        """The answer that replaces the normal one, or None to carry on after the delay."""
        if self.kind == "delay":
            return None
        if self.kind == "malformed":
            body = self.body if isinstance(self.body, str) else "<html>Bad gateway</html>"
            return Response(body, status_code=200, media_type="application/json")
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

    def take(self, route: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.route in (route, "*") and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

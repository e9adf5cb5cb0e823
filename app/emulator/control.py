"""What tests and benchmarks use to watch and steer the emulator: the request log, the
gate each request passes (latency, scripted faults), and the `/_emulator/` routes.

None of it is part of the upstream contract. Every request to the upstream's routes is
recorded before anything else happens to it, so a test can count exactly what the app
sent (zero calls, for a run its rules refuse); scripted faults (app/emulator/faults.py)
then answer in its place, or spoil its answer afterwards.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.emulator.config import EmulatorConfig
from app.emulator.faults import Fault, FaultPlan


@dataclass
class RecordedRequest:
    route: str
    method: str
    path: str
    authorization: str | None
    body: Any
    at: float


class Gate:
    """The way into every upstream route: recorded, delayed, perhaps answered by a fault."""

    def __init__(self, config: EmulatorConfig, faults: FaultPlan) -> None:
        self._config = config
        self._faults = faults
        self.requests: list[RecordedRequest] = []
        self.served_images: dict[str, str] = {}
        self.lock = threading.Lock()

    def to(self, route: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.route == route]

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()

    async def enter(self, request: Request, route: str) -> tuple[Any, Response | None]:
        """Record the request, apply latency and scripted faults: its body (JSON if it
        reads as JSON), and the answer to give at once if a fault fires."""
        raw = await request.body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        with self.lock:
            self.requests.append(
                RecordedRequest(
                    route=route,
                    method=request.method,
                    path=request.url.path,
                    authorization=request.headers.get("authorization"),
                    body=body,
                    at=time.time(),
                )
            )
        if self._config.latency_seconds:
            await asyncio.sleep(self._config.latency_seconds)
        fault = self._faults.take(route)
        if fault is not None:
            if fault.delay_seconds:
                await asyncio.sleep(fault.delay_seconds)
            early = fault.response()
            if early is not None:
                return body, early
        return body, None

    def deliver(self, route: str, payload: Any, status_code: int = 200) -> Response:
        """The route's answer, unless a late fault cuts it off or changes it."""
        answer = JSONResponse(payload, status_code=status_code)
        late = self._faults.take(route, late=True)
        return late.spoil(answer) if late is not None else answer


def control_routes(config: EmulatorConfig, faults: FaultPlan, gate: Gate) -> list[Route]:
    """`/_emulator/requests` (the log), `/_emulator/config` (the knobs), `/_emulator/faults`."""

    async def inspect_requests(request: Request) -> Response:
        with gate.lock:
            log = [asdict(r) for r in gate.requests]
            served = dict(gate.served_images)
        return JSONResponse({"requests": log, "served_images": served})

    async def update_config(request: Request) -> Response:
        if request.method == "POST":
            changes = await request.json()
            known = {f.name for f in fields(EmulatorConfig)}
            for name, value in changes.items():
                if name not in known:
                    return JSONResponse({"error": f"unknown setting {name}"}, status_code=400)
                if name == "api_keys" and value is not None:
                    value = frozenset(value)
                setattr(config, name, value)
        current = asdict(config)
        if current["api_keys"] is not None:
            current["api_keys"] = sorted(current["api_keys"])
        return JSONResponse(current)

    async def add_fault(request: Request) -> Response:
        faults.add(Fault(**await request.json()))
        return JSONResponse({"pending": faults.pending()})

    return [
        Route("/_emulator/requests", inspect_requests, methods=["GET"]),
        Route("/_emulator/config", update_config, methods=["GET", "POST"]),
        Route("/_emulator/faults", add_fault, methods=["POST"]),
    ]

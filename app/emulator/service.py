"""A PixelDojo stand-in, faithful to docs/upstream-contract.md, served as an ASGI app.

It is what demo mode, the tests and the benchmarks talk to over loopback HTTP:
Bearer auth, `POST /models/{apiId}/run` answering 202, jobs that move from
`pending` through `processing` to `completed` (or `failed`) over a configurable
time, real PNGs on a temporary-image path, prepaid credits, and the error
answers the contract lists. Where the contract has a gap, this follows its
policy lines: `aspect_ratio` is accepted and ignored unless `strict`, other
unknown fields are refused by name.

Its model's run schema (`GET /models/seedream-4/schema`) is the app's own built-in
one unless narrowed or widened with `schema_overrides`, and runs are checked
against the schema it serves, as PixelDojo's are: so the app's live-schema code
runs the same in demo mode and in tests. Knobs for answers a strict parser would
choke on: `completed_word`, `expires_format`, `error_codes_upper`, and the `edit`
and `malformed` faults (app/emulator/faults.py).

Knobs live on `EmulatorConfig` (change them at any time, also over HTTP at
`/_emulator/config`); scripted faults on `Emulator.faults`. Everything under
`/_emulator/` is the emulator's own and not part of the upstream contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.emulator.faults import Fault, FaultPlan
from app.emulator.render import render_png
from app.parameters import (
    CREDITS_PER_IMAGE,
    GenerationParams,
    pixel_size,
)
from app.rules import SEEDREAM_RULES, ModelRules

API_PREFIX = "/api/v1"
IMAGE_PREFIX = "/pixeldojotemp"
MODEL_ID = "seedream-4"
# Fields the run body may carry besides the model's parameters.
RUN_EXTRA_FIELDS = frozenset({"webhook_url"})
# Sent by the page's own curl example and the founder's scripts; tolerated unless strict.
TOLERATED_FIELDS = frozenset({"aspect_ratio"})


@dataclass
class EmulatorConfig:
    job_seconds: float = 3.0
    latency_seconds: float = 0.0
    api_keys: frozenset[str] | None = None  # None: any key that looks like `pd_...`
    initial_credits: float = 1000.0
    strict: bool = False
    retention_seconds: float = 24 * 3600.0
    output_shape: Literal["images", "image", "assets", "objects"] = "images"
    error_style: Literal["nested", "flat"] = "nested"
    credits_status: Literal[402, 403] = 403
    # Where image URLs point; None: this server's own origin.
    image_base_url: str | None = None
    # Jobs whose prompt contains these markers fail upstream, or never finish.
    fail_marker: str = "[[fail]]"
    never_marker: str = "[[never]]"
    # The run schema served: per property, keywords to change (a None value removes the
    # keyword; a None property removes the property; an unknown name adds one).
    schema_overrides: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    schema_required: list[str] | None = None
    # `wrapped`: {"apiId": ..., "schema": {...}} (the SDK's `.schema`); `bare`: the schema.
    schema_shape: Literal["wrapped", "bare"] = "wrapped"
    # Odd answers: the word a finished job says, how expiresAt is written, code casing.
    completed_word: str = "completed"
    expires_format: Literal["iso", "unix", "unix_ms"] = "iso"
    error_codes_upper: bool = False


@dataclass
class RecordedRequest:
    route: str
    method: str
    path: str
    authorization: str | None
    body: Any
    at: float


@dataclass
class EmulatedJob:
    job_id: str
    api_key: str
    model: str
    params: dict[str, Any]
    seeds: list[int]
    width: int
    height: int
    created_at: float
    expires_at: float
    credit_cost: float
    will_fail: bool
    never_finishes: bool = False
    refunded: bool = False
    image_names: list[str] = field(default_factory=list)


class Emulator:
    """The upstream, in memory; with `state_file`, its jobs and credits outlive a restart
    (demo mode: a job running when the app stops finishes after it starts again)."""

    def __init__(
        self, config: EmulatorConfig | None = None, *, state_file: Path | None = None
    ) -> None:
        self.config = config or EmulatorConfig()
        self.state_file = state_file
        self.faults = FaultPlan()
        self.requests: list[RecordedRequest] = []
        self.jobs: dict[str, EmulatedJob] = {}
        self.credits: dict[str, float] = {}
        # sha256 of every image body served, by image path: what a client should have stored.
        self.served_images: dict[str, str] = {}
        self._images_by_name: dict[str, tuple[str, int]] = {}
        self._render_cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._restore()
        self.app = Starlette(
            routes=[
                Route(f"{API_PREFIX}/models", self.list_models, methods=["GET"]),
                Route(f"{API_PREFIX}/models/{{api_id}}", self.get_model, methods=["GET"]),
                Route(f"{API_PREFIX}/models/{{api_id}}/schema", self.get_schema, methods=["GET"]),
                Route(f"{API_PREFIX}/models/{{api_id}}/run", self.run, methods=["POST"]),
                Route(f"{API_PREFIX}/jobs", self.list_jobs, methods=["GET"]),
                Route(f"{API_PREFIX}/jobs/{{job_id}}", self.get_job, methods=["GET"]),
                Route(f"{IMAGE_PREFIX}/{{name}}", self.get_image, methods=["GET"]),
                Route("/_emulator/requests", self.inspect_requests, methods=["GET"]),
                Route("/_emulator/config", self.update_config, methods=["GET", "POST"]),
                Route("/_emulator/faults", self.add_fault, methods=["POST"]),
            ]
        )

    # --- Inspection, for tests and benchmarks -------------------------------------

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """Recorded requests for one route: `run`, `job`, `jobs`, `image`, `models` or
        `schema`."""
        with self._lock:
            return [r for r in self.requests if r.route == route]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def balance(self, api_key: str) -> float:
        with self._lock:
            return self.credits.get(api_key, self.config.initial_credits)

    # --- Remembered state ---------------------------------------------------------

    def _restore(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        try:
            saved = json.loads(self.state_file.read_text())
            jobs = [EmulatedJob(**item) for item in saved["jobs"]]
            credits = {str(key): float(value) for key, value in saved["credits"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            # A torn or foreign file is not worth refusing to start over: begin afresh.
            return
        self.credits = credits
        for job in jobs:
            self.jobs[job.job_id] = job
            for index, name in enumerate(job.image_names):
                self._images_by_name[name] = (job.job_id, index)

    def _persist(self) -> None:
        """Write jobs and credits; called with the lock held, after each change."""
        if self.state_file is None:
            return
        now = time.time()
        # Expired jobs are of no use to anyone: the file stays as small as a day's jobs.
        live = [asdict(job) for job in self.jobs.values() if job.expires_at > now]
        # A new file each time, synced, then renamed over the old one: a crash leaves the
        # old state or the new, never half of one.
        handle, scratch = tempfile.mkstemp(dir=self.state_file.parent, prefix=".demo-upstream-")
        try:
            with os.fdopen(handle, "w") as stream:
                json.dump({"jobs": live, "credits": self.credits}, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(scratch, self.state_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
            raise

    # --- Helpers ----------------------------------------------------------------

    async def _enter(self, request: Request, route: str) -> tuple[Any, Response | None]:
        """Record the request, apply latency and scripted faults; answer early if one fires."""
        raw = await request.body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        with self._lock:
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
        if self.config.latency_seconds:
            await asyncio.sleep(self.config.latency_seconds)
        fault = self.faults.take(route)
        if fault is not None:
            if fault.delay_seconds:
                await asyncio.sleep(fault.delay_seconds)
            early = fault.response()
            if early is not None:
                return body, early
        return body, None

    def _deliver(self, route: str, payload: Any, status_code: int = 200) -> Response:
        answer = JSONResponse(payload, status_code=status_code)
        late = self.faults.take(route, late=True)
        return late.spoil(answer) if late is not None else answer

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> JSONResponse:
        if self.config.error_codes_upper:
            code = code.upper()
        if self.config.error_style == "flat":
            payload: dict[str, Any] = {"error": message, "code": code, **extra}
        else:
            payload = {"error": {"code": code, "message": message, "status": status}, **extra}
        return JSONResponse(payload, status_code=status, headers=headers)

    def _authenticate(self, request: Request) -> str | Response:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key:
            return self._error(
                401, "unauthorized", "Missing API key. Send Authorization: Bearer <key>."
            )
        allowed = self.config.api_keys
        valid = key in allowed if allowed is not None else key.startswith("pd_")
        if not valid:
            return self._error(401, "invalid_api_key", "Invalid API key.")
        return key

    def _model_or_404(self, api_id: str) -> Response | None:
        if api_id != MODEL_ID:
            return self._error(404, "model_not_found", f"Model '{api_id}' not found.")
        return None

    def _image_base(self, request: Request) -> str:
        base = self.config.image_base_url or str(request.base_url).rstrip("/")
        return base.rstrip("/") + IMAGE_PREFIX

    def _job_payload(self, request: Request, job: EmulatedJob) -> dict[str, Any]:
        now = time.time()
        elapsed = now - job.created_at
        job_seconds = self.config.job_seconds
        payload: dict[str, Any] = {
            "jobId": job.job_id,
            "statusUrl": f"{str(request.base_url).rstrip('/')}{API_PREFIX}/jobs/{job.job_id}",
            "creditCost": job.credit_cost,
            "expiresAt": self._expiry(job.expires_at),
        }
        if elapsed < job_seconds / 3:
            payload["status"] = "pending"
        elif elapsed < job_seconds or job.never_finishes:
            payload["status"] = "processing"
        elif job.will_fail:
            with self._lock:
                if not job.refunded:
                    job.refunded = True
                    self.credits[job.api_key] = self.credits.get(job.api_key, 0) + job.credit_cost
                    self._persist()
            payload["status"] = "failed"
            payload["error"] = "Generation failed: the model could not complete this request."
        else:
            payload["status"] = self.config.completed_word
            urls = [f"{self._image_base(request)}/{name}" for name in job.image_names]
            payload.update(_output_in_shape(urls, self.config.output_shape))
        return payload

    # --- Routes ---------------------------------------------------------------

    async def list_models(self, request: Request) -> Response:
        _, early = await self._enter(request, "models")
        if early:
            return early
        return JSONResponse(
            {"models": [_model_card()], "total": 1, "imageCount": 1, "videoCount": 0}
        )

    async def get_model(self, request: Request) -> Response:
        _, early = await self._enter(request, "models")
        if early:
            return early
        missing = self._model_or_404(request.path_params["api_id"])
        return missing or JSONResponse(_model_card())

    async def get_schema(self, request: Request) -> Response:
        _, early = await self._enter(request, "schema")
        if early:
            return early
        missing = self._model_or_404(request.path_params["api_id"])
        if missing:
            return missing
        schema = self.served_schema()
        if self.config.schema_shape == "bare":
            return self._deliver("schema", schema)
        return self._deliver("schema", {"apiId": MODEL_ID, "schema": schema})

    def served_schema(self) -> dict[str, Any]:
        """The model's run schema as served: the built-in one with the knobs applied."""
        schema = GenerationParams.model_json_schema()
        schema["additionalProperties"] = False
        properties: dict[str, Any] = schema["properties"]
        for name, change in self.config.schema_overrides.items():
            if change is None:
                properties.pop(name, None)
                continue
            prop = properties.setdefault(name, {})
            for keyword, value in change.items():
                if value is None:
                    prop.pop(keyword, None)
                else:
                    prop[keyword] = value
        if self.config.schema_required is not None:
            schema["required"] = list(self.config.schema_required)
        return schema

    def run_rules(self) -> ModelRules:
        """What a run may hold: the schema served, and Seedream's cross-field checks."""
        return replace(
            ModelRules.from_json_schema(self.served_schema(), model=MODEL_ID),
            extra_checks=SEEDREAM_RULES.extra_checks,
        )

    async def run(self, request: Request) -> Response:
        body, early = await self._enter(request, "run")
        if early:
            return early
        key = self._authenticate(request)
        if isinstance(key, Response):
            return key
        api_id = request.path_params["api_id"]
        missing = self._model_or_404(api_id)
        if missing:
            return missing
        if not isinstance(body, dict):
            return self._error(400, "invalid_request", "The request body must be a JSON object.")
        rules = self.run_rules()
        tolerated = set() if self.config.strict else TOLERATED_FIELDS
        unknown = sorted(set(body) - set(rules.properties) - RUN_EXTRA_FIELDS - tolerated)
        if unknown:
            return self._error(
                400, "invalid_request", f"Unknown parameter(s): {', '.join(unknown)}."
            )
        run_params = {k: v for k, v in body.items() if k in rules.properties}
        problems = rules.check(run_params)
        if problems:
            field_name, message = next(iter(problems.items()))
            return self._error(400, "invalid_request", f"Invalid parameter {field_name}: {message}")
        try:
            params = GenerationParams.from_body(run_params)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            field_name = ".".join(str(part) for part in first["loc"]) or "body"
            return self._error(400, "invalid_request", f"Invalid parameter {field_name}")

        cost = float(params.num_images * CREDITS_PER_IMAGE)
        with self._lock:
            balance = self.credits.get(key, self.config.initial_credits)
            if balance < cost:
                return self._error(
                    self.config.credits_status,
                    "insufficient_credits",
                    f"Insufficient credits: this request costs {cost:g}, you have {balance:g}.",
                    creditsRemaining=balance,
                )
            self.credits[key] = balance - cost
            remaining = balance - cost
            now = time.time()
            job_id = "job_" + secrets.token_hex(12)
            width, height = pixel_size(params.image_size, params.customWidth, params.customHeight)
            base_seed = params.seed if params.seed is not None and params.seed >= 0 else None
            seeds = [
                base_seed + i if base_seed is not None else secrets.randbelow(2**31)
                for i in range(params.num_images)
            ]
            job = EmulatedJob(
                job_id=job_id,
                api_key=key,
                model=api_id,
                params=params.upstream_body(),
                seeds=seeds,
                width=width,
                height=height,
                created_at=now,
                expires_at=now + self.config.retention_seconds,
                credit_cost=cost,
                will_fail=self.config.fail_marker in params.prompt,
                never_finishes=self.config.never_marker in params.prompt,
            )
            for index in range(params.num_images):
                name = f"{int(now)}-{job_id[4:]}{index}.png"
                job.image_names.append(name)
                self._images_by_name[name] = (job_id, index)
            self.jobs[job_id] = job
            self._persist()
        return self._deliver(
            "run",
            {
                "jobId": job_id,
                "status": "pending",
                "statusUrl": f"{str(request.base_url).rstrip('/')}{API_PREFIX}/jobs/{job_id}",
                "creditCost": cost,
                "creditsRemaining": remaining,
                "expiresAt": self._expiry(job.expires_at),
            },
            status_code=202,
        )

    async def get_job(self, request: Request) -> Response:
        _, early = await self._enter(request, "job")
        if early:
            return early
        key = self._authenticate(request)
        if isinstance(key, Response):
            return key
        job = self.jobs.get(request.path_params["job_id"])
        if job is None or job.api_key != key:
            return self._error(404, "job_not_found", "Job not found.")
        return self._deliver("job", self._job_payload(request, job))

    async def list_jobs(self, request: Request) -> Response:
        _, early = await self._enter(request, "jobs")
        if early:
            return early
        key = self._authenticate(request)
        if isinstance(key, Response):
            return key
        limit = min(100, max(1, int(request.query_params.get("limit", "20") or 20)))
        with self._lock:
            mine = [job for job in self.jobs.values() if job.api_key == key]
        mine.sort(key=lambda job: job.created_at, reverse=True)
        # What a listing entry carries beyond the job answer (when it was made, with what)
        # is not documented; these are the fields reconciliation can use if present.
        items = [
            {
                **self._job_payload(request, job),
                "createdAt": _iso(job.created_at),
                "model": job.model,
                "input": job.params,
            }
            for job in mine[:limit]
        ]
        return JSONResponse({"jobs": items, "total": len(mine)})

    def _is_done(self, job: EmulatedJob) -> bool:
        return not job.never_finishes and time.time() - job.created_at >= self.config.job_seconds

    async def get_image(self, request: Request) -> Response:
        _, early = await self._enter(request, "image")
        if early:
            return early
        name = request.path_params["name"]
        found = self._images_by_name.get(name)
        job = self.jobs.get(found[0]) if found else None
        if found is None or job is None or not self._is_done(job):
            return Response("Not Found", status_code=404, media_type="text/plain")
        if time.time() > job.expires_at:
            return Response("Gone: this temporary file has expired", status_code=404)
        data = await run_in_threadpool(self._render, job, found[1], name)
        with self._lock:
            self.served_images[f"{IMAGE_PREFIX}/{name}"] = hashlib.sha256(data).hexdigest()
        return Response(data, media_type="image/png")

    def _render(self, job: EmulatedJob, index: int, name: str) -> bytes:
        with self._lock:
            cached = self._render_cache.get(name)
            if cached is not None:
                self._render_cache.move_to_end(name)
                return cached
        data = render_png(
            prompt=str(job.params["prompt"]),
            seed=job.seeds[index],
            index=index,
            width=job.width,
            height=job.height,
        )
        with self._lock:
            self._render_cache[name] = data
            while len(self._render_cache) > 16:
                self._render_cache.popitem(last=False)
        return data

    async def inspect_requests(self, request: Request) -> Response:
        with self._lock:
            log = [asdict(r) for r in self.requests]
        return JSONResponse({"requests": log, "served_images": dict(self.served_images)})

    async def update_config(self, request: Request) -> Response:
        if request.method == "POST":
            changes = await request.json()
            known = {f.name for f in fields(EmulatorConfig)}
            for name, value in changes.items():
                if name not in known:
                    return JSONResponse({"error": f"unknown setting {name}"}, status_code=400)
                if name == "api_keys" and value is not None:
                    value = frozenset(value)
                setattr(self.config, name, value)
        current = asdict(self.config)
        if current["api_keys"] is not None:
            current["api_keys"] = sorted(current["api_keys"])
        return JSONResponse(current)

    async def add_fault(self, request: Request) -> Response:
        spec = await request.json()
        self.faults.add(Fault(**spec))
        return JSONResponse({"pending": self.faults.pending()})

    def _expiry(self, timestamp: float) -> str | float | int:
        if self.config.expires_format == "unix":
            return int(timestamp)
        if self.config.expires_format == "unix_ms":
            return int(timestamp * 1000)
        return _iso(timestamp)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _output_in_shape(urls: list[str], shape: str) -> dict[str, Any]:
    if shape == "image":
        return {"output": {"image": urls[0]}}
    if shape == "assets":
        return {"assets": [{"url": url, "type": "image"} for url in urls]}
    if shape == "objects":
        return {"output": {"images": [{"url": url} for url in urls]}}
    return {"output": {"images": urls}}


def _model_card() -> dict[str, Any]:
    return {
        "apiId": MODEL_ID,
        "name": "Seedream 4.5",
        "description": "ByteDance Seedream 4.5 (emulated locally)",
        "modality": "image",
        "creditCost": {
            "default": CREDITS_PER_IMAGE,
            "type": "per_image",
            "amount": CREDITS_PER_IMAGE,
        },
    }

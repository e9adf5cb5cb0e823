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

A run's `webhook_url` is called (POST, the job's answer as its body) when the job
ends; the contract documents the field but not the call, so the app reads nothing of
it (app/features/jobs/callbacks.py).

Knobs live on `EmulatorConfig` (change them at any time, also over HTTP at
`/_emulator/config`); scripted faults on `Emulator.faults`. Everything under
`/_emulator/` is the emulator's own and not part of the upstream contract.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import io
import json
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from PIL import Image as PILImage
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.domain.model_params import ModelParams
from app.domain.parameters import NAMED_SIZE_PIXELS, GenerationParams, pixel_size
from app.domain.rules import SEEDREAM_RULES, ModelRules, image_input
from app.emulator.catalogue import SEEDREAM, EmulatedModel, default_models
from app.emulator.faults import Fault, FaultPlan
from app.emulator.render import render_edit_png, render_png

API_PREFIX = "/api/v1"
IMAGE_PREFIX = "/pixeldojotemp"
MODEL_ID = SEEDREAM
# A reference fetched from a URL may be at most this large.
REFERENCE_FETCH_MAX_BYTES = 32 * 1024 * 1024
REFERENCE_FETCH_TIMEOUT_SECONDS = 15.0
# A run's `webhook_url` is called when the job ends, with the job's answer as its body (the
# contract documents the field, not the payload or retries: this is our guess at both),
# tried again after 1 s and 2 s on a failure.
CALLBACK_ATTEMPTS = 3
CALLBACK_TIMEOUT_SECONDS = 10.0
# Outputs whose size the run leaves to the model have this long side (4K: twice it).
AUTO_LONG_SIDE = 2048
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
    # Models added to (or replacing in) the catalogue: apiId -> {"card": {...}, "schema":
    # {...}}; the card needs at least a name.
    extra_models: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Whether references may come as data: URIs, and as URLs (what doctor --run finds out).
    accept_data_uris: bool = True
    accept_reference_urls: bool = True
    # Whether a run's webhook_url is called when its job ends, and how late.
    callbacks: bool = True
    callback_delay_seconds: float = 0.0
    # Demo mode's upstream: every model costs nothing, in its catalogue and in its runs, so
    # the app, its API, the command line and budgets all count the 0 credits demo mode says.
    free: bool = False


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
    # The first reference image (an edit), by sha256: what the output is made from.
    reference_sha: str | None = None
    # Called when the job ends (the run's webhook_url), if any.
    webhook_url: str | None = None


@dataclass(frozen=True)
class Callback:
    """A call the emulator made to a run's webhook_url: HTTP status, or the error."""

    job_id: str
    url: str
    status_code: int | None
    error: str | None
    at: float


@dataclass
class ReceivedReference:
    """A reference image as the emulator received it, decoded."""

    model: str
    position: int
    # "data" (a data: URI) or "url" (fetched from the link sent).
    sent_as: str
    format: str
    width: int
    height: int
    byte_size: int
    sha256: str


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
        # Every reference image received, decoded, in order; their bytes by sha256.
        self.received_references: list[ReceivedReference] = []
        self.reference_bytes: dict[str, bytes] = {}
        self._images_by_name: dict[str, tuple[str, int]] = {}
        self._render_cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        # Calls made to webhook_urls, in order; and the tasks waiting to make them.
        self.callbacks: list[Callback] = []
        self._pending_callbacks: set[asyncio.Task[None]] = set()
        self._callback_client: httpx.AsyncClient | None = None
        self._restore()
        self.app = Starlette(
            lifespan=self._lifespan,
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
            ],
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for task in list(self._pending_callbacks):
                task.cancel()
            await asyncio.gather(*self._pending_callbacks, return_exceptions=True)
            if self._callback_client is not None:
                await self._callback_client.aclose()
                self._callback_client = None

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

    def models(self) -> dict[str, EmulatedModel]:
        """The catalogue: the built-in models, with `extra_models` added or replacing."""
        models = default_models()
        for api_id, spec in self.config.extra_models.items():
            card = {"apiId": api_id, "modality": "image", **spec.get("card", {})}
            card.setdefault("name", api_id)
            models[api_id] = EmulatedModel(card, spec.get("schema"))
        if self.config.free:
            for api_id, model in models.items():
                cost = {**(model.card.get("creditCost") or {}), "default": 0, "amount": 0}
                models[api_id] = EmulatedModel({**model.card, "creditCost": cost}, model.schema)
        return models

    def _model_or_404(self, api_id: str) -> Response | None:
        if api_id not in self.models():
            return self._error(404, "model_not_found", f"Model '{api_id}' not found.")
        return None

    def _image_base(self, base_url: str) -> str:
        base = self.config.image_base_url or base_url.rstrip("/")
        return base.rstrip("/") + IMAGE_PREFIX

    def job_seconds(self, job: EmulatedJob) -> float:
        """How long this job runs upstream: the configured time (the benchmarks vary it)."""
        return self.config.job_seconds

    def _job_payload(self, base_url: str, job: EmulatedJob) -> dict[str, Any]:
        """The job's answer, as this server's `base_url` (a request's) serves it."""
        now = time.time()
        elapsed = now - job.created_at
        job_seconds = self.job_seconds(job)
        payload: dict[str, Any] = {
            "jobId": job.job_id,
            "statusUrl": f"{base_url.rstrip('/')}{API_PREFIX}/jobs/{job.job_id}",
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
            urls = [f"{self._image_base(base_url)}/{name}" for name in job.image_names]
            payload.update(_output_in_shape(urls, self.config.output_shape))
        return payload

    # --- Routes ---------------------------------------------------------------

    async def list_models(self, request: Request) -> Response:
        _, early = await self._enter(request, "models")
        if early:
            return early
        models = list(self.models().values())
        images = sum(1 for model in models if model.makes_images)
        return JSONResponse(
            {
                "models": [model.card for model in models],
                "total": len(models),
                "imageCount": images,
                "videoCount": len(models) - images,
            }
        )

    async def get_model(self, request: Request) -> Response:
        _, early = await self._enter(request, "models")
        if early:
            return early
        api_id = request.path_params["api_id"]
        missing = self._model_or_404(api_id)
        return missing or JSONResponse(self.models()[api_id].card)

    async def get_schema(self, request: Request) -> Response:
        _, early = await self._enter(request, "schema")
        if early:
            return early
        api_id = request.path_params["api_id"]
        missing = self._model_or_404(api_id)
        if missing:
            return missing
        schema = self.schema_of(api_id)
        if self.config.schema_shape == "bare":
            return self._deliver("schema", schema)
        return self._deliver("schema", {"apiId": api_id, "schema": schema})

    def schema_of(self, api_id: str) -> dict[str, Any]:
        model = self.models()[api_id]
        return self.served_schema() if model.schema is None else model.schema

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

    def run_rules(self, api_id: str = MODEL_ID) -> ModelRules:
        """What a run may hold: the schema served (and Seedream's cross-field checks)."""
        rules = ModelRules.from_json_schema(self.schema_of(api_id), model=api_id)
        if api_id != MODEL_ID:
            return rules
        return replace(rules, extra_checks=SEEDREAM_RULES.extra_checks)

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
        model = self.models()[api_id]
        if not model.makes_images:
            return self._error(400, "invalid_request", f"{api_id} is not an image model.")
        rules = self.run_rules(api_id)
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
        found = image_input(rules)
        references: list[bytes] = []
        if found is not None and run_params.get(found.name) is not None:
            sent = run_params[found.name]
            for position, value in enumerate(sent if isinstance(sent, list) else [sent]):
                received = await self._receive_reference(api_id, position, value)
                if isinstance(received, str):
                    return self._error(
                        400,
                        "invalid_request",
                        f"Invalid parameter {found.name}[{position}]: {received}",
                    )
                references.append(received)
            # What is kept of the run: how many references, not their bytes.
            run_params[found.name] = f"{len(references)} reference image(s)"
        if api_id == MODEL_ID:
            try:
                params = GenerationParams.from_body(run_params)
            except ValidationError as exc:
                first = exc.errors(include_url=False, include_input=False)[0]
                field_name = ".".join(str(part) for part in first["loc"]) or "body"
                return self._error(400, "invalid_request", f"Invalid parameter {field_name}")
            kept = params.upstream_body()
            prompt, count, wanted_seed = params.prompt, params.num_images, params.seed
            width, height = pixel_size(params.image_size, params.customWidth, params.customHeight)
        else:
            run = ModelParams(run_params)
            kept = run_params
            prompt, count, wanted_seed = run.prompt, run.num_images, run.seed
            width, height = _output_size(run_params, references[0] if references else None)
        cost = float(model.credits * count if model.per_image else model.credits)
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
            base_seed = wanted_seed if wanted_seed is not None and wanted_seed >= 0 else None
            seeds = [
                base_seed + i if base_seed is not None else secrets.randbelow(2**31)
                for i in range(count)
            ]
            job = EmulatedJob(
                job_id=job_id,
                api_key=key,
                model=api_id,
                params=kept,
                seeds=seeds,
                width=width,
                height=height,
                created_at=now,
                expires_at=now + self.config.retention_seconds,
                credit_cost=cost,
                will_fail=self.config.fail_marker in prompt,
                never_finishes=self.config.never_marker in prompt,
                reference_sha=self._keep_reference(references[0]) if references else None,
            )
            for index in range(count):
                name = f"{int(now)}-{job_id[4:]}{index}.png"
                job.image_names.append(name)
                self._images_by_name[name] = (job_id, index)
            callback = body.get("webhook_url")
            if isinstance(callback, str) and callback.startswith(("http://", "https://")):
                job.webhook_url = callback
            self.jobs[job_id] = job
            self._persist()
        if job.webhook_url is not None:
            self._call_back_later(job, str(request.base_url))
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

    def _call_back_later(self, job: EmulatedJob, base_url: str) -> None:
        task = asyncio.get_running_loop().create_task(self._call_back(job, base_url))
        self._pending_callbacks.add(task)
        task.add_done_callback(self._pending_callbacks.discard)

    async def _call_back(self, job: EmulatedJob, base_url: str) -> None:
        """Call the job's webhook_url when it ends, with its answer as the body."""
        ends_in = job.created_at + self.job_seconds(job) - time.time()
        await asyncio.sleep(max(0.0, ends_in) + self.config.callback_delay_seconds)
        if job.never_finishes or not self.config.callbacks or job.webhook_url is None:
            return
        if self._callback_client is None:
            self._callback_client = httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_SECONDS)
        payload = self._job_payload(base_url, job)
        for attempt in range(CALLBACK_ATTEMPTS):
            status_code: int | None = None
            error: str | None = None
            try:
                response = await self._callback_client.post(job.webhook_url, json=payload)
                status_code = response.status_code
            except httpx.HTTPError as exc:
                error = f"{exc.__class__.__name__}: {exc}"
            with self._lock:
                self.callbacks.append(
                    Callback(job.job_id, job.webhook_url, status_code, error, time.time())
                )
            if status_code is not None and status_code < 500:
                return
            if attempt + 1 < CALLBACK_ATTEMPTS:
                await asyncio.sleep(2**attempt)

    async def _receive_reference(self, api_id: str, position: int, value: Any) -> bytes | str:
        """A reference's bytes, decoded and checked to be an image; or what is wrong with it."""
        if not isinstance(value, str):
            return "must be a URL or a data: URI"
        if value.startswith("data:"):
            if not self.config.accept_data_uris:
                return "data: URIs are not accepted; send a URL"
            header, comma, payload = value.partition(",")
            if not comma or not header.endswith(";base64"):
                return "a data: URI must be base64 (data:image/png;base64,...)"
            try:
                data = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                return "the data: URI is not valid base64"
            sent_as = "data"
        elif value.startswith(("http://", "https://")):
            if not self.config.accept_reference_urls:
                return "URLs are not accepted; send a data: URI"
            fetched = await _fetch_reference(value)
            if isinstance(fetched, str):
                return fetched
            data, sent_as = fetched, "url"
        else:
            return "must be an http(s) URL or a data: URI"
        try:
            with PILImage.open(io.BytesIO(data)) as image:
                image.load()
                kind, (width, height) = image.format or "unknown", image.size
        except Exception as exc:  # anything Pillow cannot decode is not an image
            return f"is not a decodable image ({exc.__class__.__name__})"
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            self.received_references.append(
                ReceivedReference(
                    model=api_id,
                    position=position,
                    sent_as=sent_as,
                    format=kind,
                    width=width,
                    height=height,
                    byte_size=len(data),
                    sha256=digest,
                )
            )
            self.reference_bytes[digest] = data
        return data

    def _keep_reference(self, data: bytes) -> str:
        """Keep a reference the output is made from (in the state folder, if any)."""
        digest = hashlib.sha256(data).hexdigest()
        self.reference_bytes[digest] = data
        folder = self._reference_folder()
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / digest).write_bytes(data)
        return digest

    def _reference_folder(self) -> Path | None:
        if self.state_file is None:
            return None
        return self.state_file.with_name(self.state_file.name + ".references")

    def _reference(self, digest: str) -> bytes | None:
        found = self.reference_bytes.get(digest)
        folder = self._reference_folder()
        if found is None and folder is not None and (folder / digest).is_file():
            found = (folder / digest).read_bytes()
            self.reference_bytes[digest] = found
        return found

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
        return self._deliver("job", self._job_payload(str(request.base_url), job))

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
                **self._job_payload(str(request.base_url), job),
                "createdAt": _iso(job.created_at),
                "model": job.model,
                "input": job.params,
            }
            for job in mine[:limit]
        ]
        return JSONResponse({"jobs": items, "total": len(mine)})

    def _is_done(self, job: EmulatedJob) -> bool:
        return not job.never_finishes and time.time() - job.created_at >= self.job_seconds(job)

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
        reference = self._reference(job.reference_sha) if job.reference_sha else None
        prompt = str(job.params.get("prompt", ""))
        if reference is not None:
            data = render_edit_png(
                reference=reference,
                prompt=prompt,
                seed=job.seeds[index],
                index=index,
                width=job.width,
                height=job.height,
            )
        else:
            data = render_png(
                prompt=prompt,
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


def _output_size(values: dict[str, Any], reference: bytes | None) -> tuple[int, int]:
    """The output's size for a model other than Seedream: a named size, else the first
    reference's shape or the aspect ratio asked for, at AUTO_LONG_SIDE."""
    size = values.get("image_size")
    if isinstance(size, str) and size in NAMED_SIZE_PIXELS and not size.startswith("auto"):
        return NAMED_SIZE_PIXELS[size]
    long_side = AUTO_LONG_SIDE * 2 if size == "auto_4K" else AUTO_LONG_SIDE
    ratio = 1.0
    if reference is not None:
        with PILImage.open(io.BytesIO(reference)) as image:
            ratio = image.width / image.height
    elif isinstance(values.get("aspect_ratio"), str):
        wide, _, high = values["aspect_ratio"].partition(":")
        with contextlib.suppress(ValueError, ZeroDivisionError):
            ratio = float(wide) / float(high)
    ratio = min(16.0, max(1 / 16, ratio))
    if ratio >= 1:
        return long_side, max(1, round(long_side / ratio))
    return max(1, round(long_side * ratio)), long_side


async def _fetch_reference(url: str) -> bytes | str:
    """Fetch a reference sent as a link, as PixelDojo would."""
    try:
        async with (
            httpx.AsyncClient(timeout=REFERENCE_FETCH_TIMEOUT_SECONDS) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                return f"the link answered HTTP {response.status_code}"
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data.extend(chunk)
                if len(data) > REFERENCE_FETCH_MAX_BYTES:
                    return "the linked image is too large"
            return bytes(data)
    except httpx.HTTPError as exc:
        return f"the link could not be fetched ({exc.__class__.__name__})"

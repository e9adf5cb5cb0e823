"""The upstream's API as the contract lists it, each route thin: through the gate (the
log and scripted faults, app/emulator/control.py), the key, then one concern.

`POST /models/{apiId}/run` is the one that does much, in the order PixelDojo must:
check the body against the model's schema and the contract's own rules
(app/emulator/run_rules.py) and decode its reference images, all before anything is
charged; then charge and make the job (app/emulator/jobs.py), answering 202.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.emulator import answers
from app.emulator.answers import API_PREFIX, error
from app.emulator.auth import api_key
from app.emulator.callbacks import Caller
from app.emulator.catalogue import EmulatedModel, models
from app.emulator.config import EmulatorConfig
from app.emulator.contract import contract
from app.emulator.control import Gate
from app.emulator.images import IMAGE_PREFIX, output_size
from app.emulator.jobs import CreditsShort, EmulatedJob, JobBook, JobState, NewJob
from app.emulator.references import ReferenceDesk, reference_field
from app.emulator.run_rules import refusal, run_values

# How long a job runs upstream, and its pictures: the Emulator's own methods, so a
# subclass (the benchmarks') can vary the one and pre-render the other.
JobSeconds = Callable[[EmulatedJob], float]
Render = Callable[[EmulatedJob, int, str], bytes]


@dataclass
class UpstreamApi:
    config: EmulatorConfig
    gate: Gate
    book: JobBook
    references: ReferenceDesk
    caller: Caller
    job_seconds: JobSeconds
    render: Render

    def routes(self) -> list[Route]:
        return [
            Route(f"{API_PREFIX}/models", self.list_models, methods=["GET"]),
            Route(f"{API_PREFIX}/models/{{api_id}}", self.get_model, methods=["GET"]),
            Route(f"{API_PREFIX}/models/{{api_id}}/schema", self.get_schema, methods=["GET"]),
            Route(f"{API_PREFIX}/models/{{api_id}}/run", self.run, methods=["POST"]),
            Route(f"{API_PREFIX}/jobs", self.list_jobs, methods=["GET"]),
            Route(f"{API_PREFIX}/jobs/{{job_id}}", self.get_job, methods=["GET"]),
            Route(f"{IMAGE_PREFIX}/{{name}}", self.get_image, methods=["GET"]),
        ]

    # --- Models -------------------------------------------------------------------

    async def list_models(self, request: Request) -> Response:
        _, early = await self.gate.enter(request, "models")
        if early:
            return early
        listed = list(models(self.config).values())
        images = sum(1 for model in listed if model.makes_images)
        return JSONResponse(
            {
                "models": [model.card for model in listed],
                "total": len(listed),
                "imageCount": images,
                "videoCount": len(listed) - images,
            }
        )

    async def get_model(self, request: Request) -> Response:
        _, early = await self.gate.enter(request, "models")
        if early:
            return early
        model = self._model(request)
        return model if isinstance(model, Response) else JSONResponse(model.card)

    async def get_schema(self, request: Request) -> Response:
        _, early = await self.gate.enter(request, "schema")
        if early:
            return early
        model = self._model(request)
        if isinstance(model, Response):
            return model
        if self.config.schema_shape == "bare":
            return self.gate.deliver("schema", model.schema)
        return self.gate.deliver("schema", {"apiId": model.api_id, "schema": model.schema})

    def _model(self, request: Request) -> EmulatedModel | Response:
        api_id = request.path_params["api_id"]
        found = models(self.config).get(api_id)
        if found is None:
            return error(self.config, 404, "model_not_found", f"Model '{api_id}' not found.")
        return found

    # --- Runs ---------------------------------------------------------------------

    async def run(self, request: Request) -> Response:
        body, early = await self.gate.enter(request, "run")
        if early:
            return early
        key = api_key(self.config, request)
        if isinstance(key, Response):
            return key
        model = self._model(request)
        if isinstance(model, Response):
            return model
        if not isinstance(body, dict):
            return self._invalid("The request body must be a JSON object.")
        if not model.makes_images:
            return self._invalid(f"{model.api_id} is not an image model.")
        refused = refusal(model.api_id, model.schema, body, strict=self.config.strict)
        if refused:
            return self._invalid(refused)
        values = run_values(model.schema, body)
        received = await self._receive_references(model, values)
        if isinstance(received, Response):
            return received
        try:
            job, remaining = self.book.open(self._new_job(key, model, body, values, received))
        except CreditsShort as short:
            return error(
                self.config,
                self.config.credits_status,
                "insufficient_credits",
                f"Insufficient credits: {short}.",
                creditsRemaining=short.balance,
            )
        base_url = str(request.base_url)
        if job.webhook_url is not None:
            ends_in = job.created_at + self.job_seconds(job) - time.time()
            self.caller.later(job, ends_in, lambda: self.job_answer(base_url, job))
        return self.gate.deliver(
            "run",
            {
                "jobId": job.job_id,
                "status": "pending",
                "statusUrl": answers.status_url(base_url, job.job_id),
                "creditCost": job.credit_cost,
                "creditsRemaining": remaining,
                "expiresAt": answers.expiry(self.config, job.expires_at),
            },
            status_code=202,
        )

    def _invalid(self, message: str) -> Response:
        return error(self.config, 400, "invalid_request", message)

    async def _receive_references(
        self, model: EmulatedModel, values: dict[str, Any]
    ) -> list[bytes] | Response:
        """Every reference the run sends, decoded; or the 400 naming the first bad one.
        The job keeps how many there were in their place, never their bytes."""
        name = reference_field(model.schema)
        if name is None or values.get(name) is None:
            return []
        sent = values[name]
        received: list[bytes] = []
        for position, value in enumerate(sent if isinstance(sent, list) else [sent]):
            found = await self.references.receive(model.api_id, position, value)
            if isinstance(found, str):
                return self._invalid(f"Invalid parameter {name}[{position}]: {found}")
            received.append(found)
        values[name] = f"{len(received)} reference image(s)"
        return received

    def _new_job(
        self,
        key: str,
        model: EmulatedModel,
        body: dict[str, Any],
        values: dict[str, Any],
        references: list[bytes],
    ) -> NewJob:
        # The catalogue's models all name these fields so; a model without them makes one
        # image from an empty prompt.
        prompt, count, seed = values.get("prompt"), values.get("num_images"), values.get("seed")
        count = count if isinstance(count, int) and count >= 1 else 1
        webhook = body.get("webhook_url")
        width, height = output_size(contract(), values, references[0] if references else None)
        return NewJob(
            key=key,
            model=model.api_id,
            params=values,
            prompt=prompt.strip() if isinstance(prompt, str) else "",
            count=count,
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
            width=width,
            height=height,
            cost=float(model.credits * count if model.per_image else model.credits),
            reference_sha=self.references.keep(references[0]) if references else None,
            webhook_url=webhook
            if isinstance(webhook, str) and webhook.startswith(("http://", "https://"))
            else None,
        )

    # --- Jobs and their images ----------------------------------------------------

    def job_answer(self, base_url: str, job: EmulatedJob) -> dict[str, Any]:
        """The job's answer, as this server's `base_url` (a request's) serves it."""
        payload: dict[str, Any] = {
            "jobId": job.job_id,
            "statusUrl": answers.status_url(base_url, job.job_id),
            "creditCost": job.credit_cost,
            "expiresAt": answers.expiry(self.config, job.expires_at),
        }
        state = self.book.state(job, self.job_seconds(job))
        if state is JobState.FAILED:
            payload["status"] = "failed"
            payload["error"] = "Generation failed: the model could not complete this request."
        elif state is JobState.COMPLETED:
            payload["status"] = self.config.completed_word
            image_base = (self.config.image_base_url or base_url).rstrip("/") + IMAGE_PREFIX
            urls = [f"{image_base}/{name}" for name in job.image_names]
            payload.update(answers.output_in_shape(urls, self.config.output_shape))
        else:
            payload["status"] = state.value
        return payload

    async def get_job(self, request: Request) -> Response:
        _, early = await self.gate.enter(request, "job")
        if early:
            return early
        key = api_key(self.config, request)
        if isinstance(key, Response):
            return key
        job = self.book.find(request.path_params["job_id"], key)
        if job is None:
            return error(self.config, 404, "job_not_found", "Job not found.")
        return self.gate.deliver("job", self.job_answer(str(request.base_url), job))

    async def list_jobs(self, request: Request) -> Response:
        _, early = await self.gate.enter(request, "jobs")
        if early:
            return early
        key = api_key(self.config, request)
        if isinstance(key, Response):
            return key
        limit = min(100, max(1, int(request.query_params.get("limit", "20") or 20)))
        mine = self.book.of_key(key)
        # What a listing entry carries beyond the job answer (when it was made, with what)
        # is not documented; these are the fields reconciliation can use if present.
        items = [
            {
                **self.job_answer(str(request.base_url), job),
                "createdAt": answers.iso(job.created_at),
                "model": job.model,
                "input": job.params,
            }
            for job in mine[:limit]
        ]
        return JSONResponse({"jobs": items, "total": len(mine)})

    async def get_image(self, request: Request) -> Response:
        _, early = await self.gate.enter(request, "image")
        if early:
            return early
        name = request.path_params["name"]
        found = self.book.by_image(name)
        if found is None or not self.book.has_ended(found[0], self.job_seconds(found[0])):
            return Response("Not Found", status_code=404, media_type="text/plain")
        job, index = found
        if time.time() > job.expires_at:
            return Response("Gone: this temporary file has expired", status_code=404)
        data = await run_in_threadpool(self.render, job, index, name)
        with self.gate.lock:
            self.gate.served_images[f"{IMAGE_PREFIX}/{name}"] = hashlib.sha256(data).hexdigest()
        return Response(data, media_type="image/png")

"""Reading PixelDojo's job answers, in every shape the contract has seen."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from app.upstream.errors import MalformedResponse, error_text, redact

JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")

# The contract evidences pending/completed/failed. Policy: these words also mean done,
# an answer with output images is done whatever its word unless the word is a failure,
# and any other word means "still running".
COMPLETED_STATUSES = frozenset(
    {"completed", "succeeded", "success", "complete", "done", "finished"}
)
FAILED_STATUSES = frozenset({"failed", "failure", "error", "cancelled", "canceled", "expired"})
# Unix times in milliseconds are this large; seconds will not be for 3,000 years.
_MILLISECONDS_FROM = 1e11


class UpstreamState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


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
    # Where the image URLs were found (`output.images`, `assets[].url`, ...): doctor shows it.
    output_shape: str | None = None


@dataclass(frozen=True)
class ListedJob:
    """One entry of the recent-jobs listing: only what reconciliation can match on."""

    job_id: str
    status: str
    created_at: datetime | None
    model: str | None
    prompt: str | None


def parse_job(payload: Any, secret: str = "", *, default_status: str | None = None) -> UpstreamJob:
    """Read a job answer. Raises MalformedResponse for one that cannot be read; for a poll
    that is a passing fault (the job is asked about again), never the job's end.

    `default_status` stands in for a missing status word: a submit answer with a jobId
    and no status is a job accepted and pending.
    """
    if not isinstance(payload, dict):
        raise MalformedResponse("PixelDojo's answer is not a JSON object")
    job_id = _job_id(payload)
    status = payload.get("status")
    # Kept as a column of 50 characters; no word that long means anything to us.
    status = status.strip().lower()[:50] if isinstance(status, str) else ""
    found, shape = _image_urls(payload)
    if status in FAILED_STATUSES:
        state = UpstreamState.FAILED
    elif found or status in COMPLETED_STATUSES:
        state = UpstreamState.COMPLETED
    elif status or default_status:
        status = status or str(default_status)
        state = UpstreamState.RUNNING
    else:
        raise MalformedResponse(f"PixelDojo's answer for {job_id} has no status")
    image_urls = found if state is UpstreamState.COMPLETED else []
    if state is UpstreamState.COMPLETED and not image_urls:
        raise MalformedResponse(f"PixelDojo says {job_id} is {status} but lists no image")
    error = None
    if state is UpstreamState.FAILED:
        error = redact(error_text(payload.get("error")) or f"the job {status}", secret)
    return UpstreamJob(
        job_id=job_id,
        status=status,
        state=state,
        image_urls=image_urls,
        credit_cost=_number(payload.get("creditCost")),
        credits_remaining=_number(payload.get("creditsRemaining")),
        expires_at=_timestamp(payload.get("expiresAt")),
        error=error,
        output_shape=shape if image_urls else None,
    )


def parse_job_list(payload: Any) -> list[ListedJob]:
    """The recent-jobs listing: `{jobs: [...]}`, `{data: [...]}` or a bare list."""
    items: Any = payload
    if isinstance(payload, dict):
        items = payload.get("jobs", payload.get("data"))
    if not isinstance(items, list):
        raise MalformedResponse("PixelDojo's job listing is not a list of jobs")
    listed = []
    for item in items:
        if not isinstance(item, dict):
            continue
        try:
            job_id = _job_id(item)
        except MalformedResponse:
            continue
        params = item.get("input") or item.get("params") or item.get("parameters") or {}
        prompt = params.get("prompt") if isinstance(params, dict) else None
        model = item.get("model") or item.get("apiId")
        listed.append(
            ListedJob(
                job_id=job_id,
                status=str(item.get("status", "")).lower(),
                created_at=_timestamp(item.get("createdAt") or item.get("created_at")),
                model=model if isinstance(model, str) else None,
                prompt=prompt if isinstance(prompt, str) else None,
            )
        )
    return listed


def _job_id(payload: dict[str, Any]) -> str:
    job_id = payload.get("jobId") or payload.get("id")
    # The id goes into a URL path: refuse anything that could walk out of /jobs/.
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
        raise MalformedResponse("PixelDojo's answer has no usable jobId")
    return job_id


def _image_urls(payload: dict[str, Any]) -> tuple[list[str], str | None]:
    """The image URLs of an answer, and where they were: output.images (the page),
    output.image (other models), assets[].url (the SDK), lists of {url} objects (fal)."""
    candidates: list[tuple[str, Any]] = []
    output = payload.get("output")
    if isinstance(output, dict):
        for key in ("images", "image"):
            value = output.get(key)
            if isinstance(value, list):
                candidates.extend((f"output.{key}[]", item) for item in value)
            elif value is not None:
                candidates.append((f"output.{key}", value))
    elif isinstance(output, list):
        candidates.extend(("output[]", item) for item in output)
    assets = payload.get("assets")
    if isinstance(assets, list):
        candidates.extend(("assets[]", item) for item in assets)
    urls: list[str] = []
    shapes: list[str] = []
    for where, item in candidates:
        url = item.get("url") if isinstance(item, dict) else item
        if isinstance(url, str) and urlsplit(url).scheme in ("http", "https") and url not in urls:
            urls.append(url)
            shape = f"{where}.url" if isinstance(item, dict) else where
            if shape not in shapes:
                shapes.append(shape)
    return urls, (", ".join(shapes) or None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _timestamp(value: Any) -> datetime | None:
    """An ISO 8601 string (documented), or Unix seconds or milliseconds (told apart by
    size), as a number or a string of digits."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    seconds = value / 1000 if value >= _MILLISECONDS_FROM else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None

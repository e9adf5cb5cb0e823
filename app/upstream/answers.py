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

# The contract evidences pending/completed/failed; anything unknown is still running.
_FAILED_STATUSES = frozenset({"failed", "error", "cancelled", "canceled", "expired"})


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


@dataclass(frozen=True)
class ListedJob:
    """One entry of the recent-jobs listing: only what reconciliation can match on."""

    job_id: str
    status: str
    created_at: datetime | None
    model: str | None
    prompt: str | None


def parse_job(payload: Any, secret: str = "") -> UpstreamJob:
    if not isinstance(payload, dict):
        raise MalformedResponse("PixelDojo's answer is not a JSON object")
    job_id = _job_id(payload)
    status = payload.get("status")
    if not isinstance(status, str) or not status:
        raise MalformedResponse(f"PixelDojo's answer for {job_id} has no status")
    status = status.lower()
    if status == "completed":
        state = UpstreamState.COMPLETED
    elif status in _FAILED_STATUSES:
        state = UpstreamState.FAILED
    else:
        state = UpstreamState.RUNNING
    image_urls = _image_urls(payload) if state is UpstreamState.COMPLETED else []
    if state is UpstreamState.COMPLETED and not image_urls:
        raise MalformedResponse(f"PixelDojo says {job_id} is completed but lists no image")
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


def _image_urls(payload: dict[str, Any]) -> list[str]:
    # output.images (the page), output.image (other models), assets[].url (the SDK),
    # lists of {url} objects (fal): all accepted.
    candidates: list[Any] = []
    output = payload.get("output")
    if isinstance(output, dict):
        for key in ("images", "image"):
            value = output.get(key)
            candidates.extend(value if isinstance(value, list) else [value])
    elif isinstance(output, list):
        candidates.extend(output)
    assets = payload.get("assets")
    if isinstance(assets, list):
        candidates.extend(assets)
    urls: list[str] = []
    for item in candidates:
        url = item.get("url") if isinstance(item, dict) else item
        if isinstance(url, str) and urlsplit(url).scheme in ("http", "https") and url not in urls:
            urls.append(url)
    return urls


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

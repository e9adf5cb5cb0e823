"""How the emulator writes its answers: error bodies, times, and where a job's images are.

The contract has seen more than one shape for each of these (nested and flat error
bodies, ISO and Unix times, four ways to list output images), and the client must read
them all; so every shape is a knob on EmulatorConfig and this module is the one place
that writes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

from app.emulator.config import EmulatorConfig

API_PREFIX = "/api/v1"


def error(
    config: EmulatorConfig,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An error answer, nested as the legacy API writes it or flat as the async one may."""
    if config.error_codes_upper:
        code = code.upper()
    if config.error_style == "flat":
        payload: dict[str, Any] = {"error": message, "code": code, **extra}
    else:
        payload = {"error": {"code": code, "message": message, "status": status}, **extra}
    return JSONResponse(payload, status_code=status, headers=headers)


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expiry(config: EmulatorConfig, timestamp: float) -> str | float | int:
    """`expiresAt` as documented (ISO 8601), or as the Unix time a client must also read."""
    if config.expires_format == "unix":
        return int(timestamp)
    if config.expires_format == "unix_ms":
        return int(timestamp * 1000)
    return iso(timestamp)


def status_url(base_url: str, job_id: str) -> str:
    return f"{base_url.rstrip('/')}{API_PREFIX}/jobs/{job_id}"


def output_in_shape(urls: list[str], shape: str) -> dict[str, Any]:
    """A finished job's images as Seedream's page shows them, or as other models and the
    SDK do (a single `output.image`, `assets`, fal's objects with `url`)."""
    if shape == "image":
        return {"output": {"image": urls[0]}}
    if shape == "assets":
        return {"assets": [{"url": url, "type": "image"} for url in urls]}
    if shape == "objects":
        return {"output": {"images": [{"url": url} for url in urls]}}
    return {"output": {"images": urls}}

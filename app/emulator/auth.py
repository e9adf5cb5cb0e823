"""Who is asking: the Bearer key every authenticated route checks, as the contract has it.

Keys look like `pd_...`; with `api_keys` set only those pass (a test's own key, so a
key that leaked from elsewhere is refused as PixelDojo would refuse it). A key is the
account: its credits, its jobs (another key's job is not found).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.emulator.answers import error
from app.emulator.config import EmulatorConfig


def api_key(config: EmulatorConfig, request: Request) -> str | Response:
    """The request's key, or the 401 to answer."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        return error(
            config, 401, "unauthorized", "Missing API key. Send Authorization: Bearer <key>."
        )
    allowed = config.api_keys
    valid = key in allowed if allowed is not None else key.startswith("pd_")
    if not valid:
        return error(config, 401, "invalid_api_key", "Invalid API key.")
    return key

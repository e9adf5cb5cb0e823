"""Checking a run before anything is sent: read it, hold it to the rules, know its seed.

Every path that submits, and every form that shows what a run would be, goes
through these, so a run the rules in force forbid never reaches PixelDojo.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from app.errors import InvalidParameters
from app.parameters import GenerationParams
from app.rules import ModelRules, seed_range


def parse_parameters(values: Mapping[str, Any]) -> GenerationParams:
    """Read run parameters into the record (types only); the error names every wrong field."""
    try:
        return GenerationParams.model_validate(dict(values))
    except ValidationError as exc:
        raise InvalidParameters(field_errors(exc.errors(include_input=False))) from None


def check_run(params: GenerationParams, rules: ModelRules) -> None:
    """Refuse a run the rules in force forbid, naming every field (nothing is sent)."""
    problems = rules.check(params.values())
    if problems:
        raise InvalidParameters(problems)


def validate_parameters(values: Mapping[str, Any], rules: ModelRules) -> GenerationParams:
    """Read and check run parameters against the rules in force."""
    params = parse_parameters(values)
    check_run(params, rules)
    return params


def with_known_seed(
    params: GenerationParams,
    rules: ModelRules,
    *,
    key: str | None = None,
    avoid: int | None = None,
) -> GenerationParams:
    """The run with a seed the app drew, when the person left it random (no seed, or -1,
    "random" to the model): sent and recorded, so every image can be made again.

    With an idempotency key the draw is the key's own, so a repeated request (a double
    click, a retry) asks for exactly the same run and names the same job. `avoid` is a
    seed not to draw ("same prompt, new seed").
    """
    if params.seed is not None and params.seed >= 0:
        return params
    drawn = seed_range(rules)
    if drawn is None:
        return params
    low, high = drawn
    if key is None:
        seed = low + secrets.randbelow(high - low + 1)
    else:
        digest = hashlib.sha256(f"seed:{key}".encode()).digest()
        seed = low + int.from_bytes(digest[:8], "big") % (high - low + 1)
    if seed == avoid and high > low:
        seed = low + (seed - low + 1) % (high - low + 1)
    return params.model_copy(update={"seed": seed})


def field_errors(errors: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Pydantic's error list as {field name: message}, the first message per field."""
    by_field: dict[str, str] = {}
    for error in errors:
        where = [str(part) for part in error["loc"] if part not in ("body", "query", "path")]
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a parameter of this model"
        by_field.setdefault(".".join(where) or "body", message)
    return by_field

"""Checking a run before anything is sent: read it, hold it to the rules, know its seed.

Every path that submits, and every form that shows what a run would be, goes
through these, so a run the rules in force forbid never reaches PixelDojo.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Self, TypeVar

from pydantic import ValidationError

from app.core.errors import InvalidParameters
from app.core.text import text_problems
from app.domain.model_params import ModelParams, RunParams
from app.domain.parameters import GenerationParams
from app.domain.rules import ImageInput, ModelRules, default_size, image_input, seed_range

# Where a request names its reference images (gallery image ids), whatever the model
# calls its image input.
REFERENCES_FIELD = "reference_images"
# More references than any model takes are refused before the model is asked.
REFERENCES_MAX = 50


class Seeded(Protocol):
    @property
    def seed(self) -> int | None: ...

    def with_seed(self, seed: int) -> Self: ...


Run = TypeVar("Run", bound=Seeded)


def parse_parameters(
    values: Mapping[str, Any], rules: ModelRules | None = None
) -> GenerationParams:
    """Read run parameters into the record (types only); the error names every wrong field.

    A run that names no size takes the default size of `rules` (the rules in force), which
    is the record's own auto_2K unless the live schema does not allow it."""
    given = dict(values)
    if rules is not None and given.get("image_size") is None:
        size = default_size(rules)
        if size is not None:
            given["image_size"] = size
    try:
        return GenerationParams.model_validate(given)
    except ValidationError as exc:
        raise InvalidParameters(field_errors(exc.errors(include_input=False))) from None


def parse_run(
    values: Mapping[str, Any], *, builtin_record: bool, rules: ModelRules | None = None
) -> RunParams:
    """Read a run: the Seedream record (types checked here, the size defaulting as the
    `rules` in force say), or another model's values as they are (their types are its
    schema's, checked by `check_run`)."""
    if builtin_record:
        return parse_parameters(values, rules)
    return ModelParams({name: value for name, value in values.items() if value is not None})


def check_run(params: RunParams, rules: ModelRules, *, references: int = 0) -> None:
    """Refuse a run the rules in force forbid, naming every field (nothing is sent).

    `references` is how many gallery images go with it: refused for a model whose schema
    has no image input, and held to the number its image input takes.
    """
    values = params.values()
    problems = text_problems(values)
    found = image_input(rules)
    if found is None:
        if references:
            problems[REFERENCES_FIELD] = (
                f"{rules.model} takes no reference images (its schema has no image input)"
            )
    elif references or found.name not in values:
        if references and found.name in values:
            problems[REFERENCES_FIELD] = f"give reference_images or {found.name}, not both"
        else:
            problem = references_problem(found, references)
            if problem:
                problems[REFERENCES_FIELD] = problem
            # Stand-ins within its limits, so the schema's own check of the field passes.
            count = min(max(references, found.min_items), found.max_items)
            if count:
                values[found.name] = found.body_value(["reference"] * count)
    problems.update(
        (name, problem)
        for name, problem in rules.check(values).items()
        if found is None or name != found.name or REFERENCES_FIELD not in problems
    )
    if problems:
        raise InvalidParameters(problems)


def references_problem(found: ImageInput, count: int) -> str | None:
    """Why `count` reference images do not fit the model's image input, if they don't."""
    if count > found.max_items:
        return f"at most {found.max_items} reference image{'s' if found.max_items != 1 else ''}"
    if count < found.min_items:
        return f"needs at least {found.min_items} reference image" + (
            "s" if found.min_items != 1 else ""
        )
    return None


def validate_parameters(values: Mapping[str, Any], rules: ModelRules) -> GenerationParams:
    """Read and check run parameters against the rules in force."""
    params = parse_parameters(values, rules)
    check_run(params, rules)
    return params


def with_known_seed(
    params: Run,
    rules: ModelRules,
    *,
    key: str | None = None,
    avoid: int | None = None,
) -> Run:
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
    return params.with_seed(seed)


def field_errors(errors: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Pydantic's error list as {field name: message}, the first message per field."""
    by_field: dict[str, str] = {}
    for error in errors:
        where = [str(part) for part in error["loc"] if part not in ("body", "query", "path")]
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a parameter of this model"
        elif error["type"] == "missing":
            message = "is required"
        by_field.setdefault(".".join(where) or "body", message)
    return by_field

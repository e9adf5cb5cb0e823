"""Whether a run body is taken, by the contract: its model's schema, then what a schema
cannot say.

The first refusal answers (400, one line naming the field), before anything is charged:
a field that is neither in the schema nor one any run may carry (`webhook_url`), but
`aspect_ratio` is accepted and ignored unless the emulator is strict (the model page's
own curl example sends it); then the schema (app/emulator/validator.py); then, for the
models that take a custom size (Seedream), the custom-size rules: the sides go with
`image_size: "custom"` and only with it, and the size fits the pixel budget, the aspect
ratio and the longest side. Every figure comes from app/emulator/contract.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.emulator.contract import Contract, contract
from app.emulator.validator import problems


def refusal(
    api_id: str, schema: Mapping[str, Any], body: Mapping[str, Any], *, strict: bool
) -> str | None:
    """Why the run is refused, as the 400's message says it; None if it is taken."""
    facts = contract()
    properties = _properties(schema)
    allowed = set(properties) | facts.run_fields | (set() if strict else facts.tolerated_fields)
    unknown = sorted(set(body) - allowed)
    if unknown:
        return f"Unknown parameter(s): {', '.join(unknown)}."
    values = run_values(schema, body)
    found = problems(schema, values)
    if found:
        return f"Invalid parameter {found[0].where or 'body'}: {found[0].message}"
    if api_id in facts.custom_size.models:
        for name, message in custom_size_problems(facts, properties, values).items():
            return f"Invalid parameter {name}: {message}"
    return None


def run_values(schema: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """The body's values for the model's parameters (what the job keeps of its run)."""
    properties = _properties(schema)
    return {name: value for name, value in body.items() if name in properties}


def custom_size_problems(
    facts: Contract, properties: Mapping[str, Any], values: Mapping[str, Any]
) -> dict[str, str]:
    """What a schema cannot say about a custom size, by side."""
    rule = facts.custom_size
    custom = values.get(rule.size_field) == rule.size_word
    found: dict[str, str] = {}
    for side in rule.sides:
        if custom and values.get(side) is None and side in properties:
            found[side] = f"is required when {rule.size_field} is {rule.size_word}"
        if not custom and values.get(side) is not None:
            found[side] = f"applies only when {rule.size_field} is {rule.size_word}"
    width, height = (_whole(values.get(side)) for side in rule.sides)
    if custom and width and height and width > 0 and height > 0:
        problem = rule.problem(width, height)
        if problem:
            found.setdefault(rule.sides[1], problem)
    return found


def _properties(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    properties = schema.get("properties")
    return properties if isinstance(properties, Mapping) else {}


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

"""A form for any model, rendered from its live schema, and the values it posts, typed.

Seedream keeps its hand-made form (presets, sizes drawn as shapes). Any other model's
form is built from the rules read from its schema (app/domain/rules.py), one field each:

    a string                  a text field (a text area for a prompt)
    an enum                   a choice of its values
    an integer or a number    a number field with the schema's minimum and maximum
    a boolean                 a checkbox
    its image input           the reference picker (app/features/jobs/references.py)
    anything else             shown read-only, and never sent

What is posted comes back typed as the schema says (a whole number, a number, true or
false, one of the enum's own values), empty fields left out so the model's defaults
apply; the rules in force then check the run like any other (app/domain/runs.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from app.domain.rules import ImageInput, ModelRules

Kind = Literal["textarea", "text", "select", "number", "checkbox", "references", "readonly"]
# Posted as `param.<name>`, so a schema field never collides with the form's own inputs.
PREFIX = "param."
TRUE = "true"
# Strings named like these get a text area.
_LONG_TEXT = re.compile(r"(^|_)(prompt|text|caption|description)$", re.IGNORECASE)
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class FormField:
    name: str
    kind: Kind
    label: str
    description: str = ""
    required: bool = False
    options: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    max_length: int | None = None
    default: Any = None
    # Why a read-only field cannot be set here.
    why_readonly: str | None = None

    @property
    def input_name(self) -> str:
        return PREFIX + self.name

    @property
    def dom_id(self) -> str:
        return dom_id(self.name)

    @property
    def hint(self) -> str:
        """The description, and a number's range."""
        parts = [self.description] if self.description else []
        if self.kind == "number" and (self.minimum is not None or self.maximum is not None):
            low = "…" if self.minimum is None else self.shown(self.minimum)
            high = "…" if self.maximum is None else self.shown(self.maximum)
            parts.append(f"{low}–{high}")
        return " · ".join(parts)

    def initial(self, values: Mapping[str, str]) -> str:
        """What the field shows: as typed, else the default where the field is always sent (a
        required field, a checkbox); an optional field starts empty, so PixelDojo's default
        applies unless the person types something."""
        if self.name in values:
            return values[self.name]
        if self.required or self.kind == "checkbox":
            return self.shown(self.default)
        return ""

    @property
    def step(self) -> str:
        return "1" if self.integer else "any"

    def shown(self, value: Any) -> str:
        """A value as the form shows it (an option's value, a default)."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return TRUE if value else "false"
        if isinstance(value, _SCALARS):
            return _number_text(value) if isinstance(value, float) else str(value)
        return json.dumps(value, ensure_ascii=False)


def dom_id(name: str) -> str:
    """A field's element id: `prompt` is the prompt's (its counter and shortcut follow it)."""
    return "prompt" if name == "prompt" else "param-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def form_fields(rules: ModelRules, image_input: ImageInput | None) -> list[FormField]:
    """The form's fields, in the schema's order."""
    return [_field(name, prop, rules, image_input) for name, prop in rules.properties.items()]


def _field(
    name: str, prop: Mapping[str, Any], rules: ModelRules, image_input: ImageInput | None
) -> FormField:
    types = tuple(prop.get("type") or ())
    low, high = rules.bounds(name)
    common: dict[str, Any] = {
        "name": name,
        "label": str(prop.get("title") or name.replace("_", " ").capitalize()),
        "description": str(prop.get("description") or ""),
        "required": name in rules.required_fields,
        "default": prop.get("default"),
    }
    enum = prop.get("enum")
    if image_input is not None and name == image_input.name:
        return FormField(kind="references", **common)
    if enum and all(isinstance(value, _SCALARS) for value in enum):
        return FormField(kind="select", options=tuple(enum), **common)
    if types == ("boolean",):
        return FormField(kind="checkbox", **common)
    if types in (("integer",), ("number",)):
        return FormField(
            kind="number", minimum=low, maximum=high, integer=types == ("integer",), **common
        )
    if types == ("string",):
        kind: Kind = "textarea" if _LONG_TEXT.search(name) else "text"
        max_length = prop.get("maxLength")
        return FormField(
            kind=kind, max_length=max_length if isinstance(max_length, int) else None, **common
        )
    what = " or ".join(types) if types else "any value"
    if types == ("array",):
        what = "a list"
    elif types == ("object",):
        what = "an object"
    return FormField(
        kind="readonly",
        why_readonly=f"{what}: this form cannot set it, so it is not sent",
        **common,
    )


def posted_values(form: Any) -> dict[str, str]:
    """The `param.*` fields of a posted form, as strings (a checkbox: `true` if ticked)."""
    values: dict[str, str] = {}
    for key in form:
        if not key.startswith(PREFIX):
            continue
        posted = [str(value) for value in form.getlist(key)]
        # A checkbox posts a hidden `false` and, when ticked, `true` after it.
        values[key.removeprefix(PREFIX)] = TRUE if TRUE in posted[1:] else posted[-1]
    return values


def typed_values(
    fields: Sequence[FormField], values: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values to send, typed as the schema says, and the fields that could not be read.
    Empty fields are left out (the model's default applies); read-only ones never go."""
    typed: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in fields:
        raw = values.get(field.name)
        if field.kind in ("readonly", "references") or raw is None:
            continue
        if field.kind == "checkbox":
            typed[field.name] = raw == TRUE
            continue
        if field.kind not in ("text", "textarea"):
            raw = raw.strip()
        if raw == "" or (field.kind in ("text", "textarea") and not raw.strip()):
            continue
        if field.kind == "select":
            chosen = next((option for option in field.options if field.shown(option) == raw), None)
            if chosen is None:
                errors[field.name] = "must be one of: " + ", ".join(map(field.shown, field.options))
            else:
                typed[field.name] = chosen
        elif field.kind == "number":
            number = _number(raw, integer=field.integer)
            if number is None:
                errors[field.name] = (
                    "must be a whole number" if field.integer else "must be a number"
                )
            else:
                typed[field.name] = number
        else:
            typed[field.name] = raw
    return typed, errors


def as_form_values(body: Mapping[str, Any], fields: Sequence[FormField]) -> dict[str, str]:
    """A sent body as the form shows it again (a remix)."""
    by_name = {field.name: field for field in fields}
    return {
        name: by_name[name].shown(value) if name in by_name else str(value)
        for name, value in body.items()
        if isinstance(value, _SCALARS)
    }


_INTEGER = re.compile(r"^[+-]?\d+$")


def _number(text: str, *, integer: bool) -> int | float | None:
    """A number as typed: `7` is 7, `7.5` is 7.5; a whole-number field takes only whole ones."""
    if _INTEGER.match(text):
        return int(text)
    if integer:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)

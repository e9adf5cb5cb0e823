"""What control characters text from outside may hold: one rule for every field that takes some.

PostgreSQL's text cannot hold a NUL at all, and SQLite keeps one but cuts some strings at it,
so a NUL that reached the database was a server error on one and a half-kept value on the
other. Other control characters (C0, DEL, C1) mean nothing in a name or a prompt and only
disguise what is shown. So every text the app takes (a JSON field, a form field, a query or
path parameter, a header it keeps) is one of two kinds, refused with a 422 naming the field
when it holds a control character it may not, before anything is stored or sent upstream:

- a line (`Line`): a name, a slug, an id, a key, an axis value; no control character at all.
- a text (`Text`): a prompt, a description; it may hold line breaks and tabs, no other.

The answer is the same on both databases, as it is decided before either is asked. Each
kind's JSON Schema pattern says the same to OpenAPI, so a client can tell beforehand. The rule
is for what comes in: a record kept before it (a SQLite gallery's old prompt) is read back as
it is, validated with the `STORED` context, so it still opens.
(A search is neither: it is split into words at any control character, never refused;
app/features/gallery/listing.py.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo

CONTROL_MESSAGE = "must not contain control characters"
# C0, DEL and C1; a text keeps tab, line feed and carriage return of these.
LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
_NOT_IN_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NOT_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def line_problem(value: str) -> str | None:
    """Why this is not a line (it holds a control character), or None if it is one."""
    return CONTROL_MESSAGE if _NOT_IN_LINE.search(value) else None


def text_problem(value: str) -> str | None:
    """Why this is not a text (a control character other than a line break or a tab), or None."""
    return CONTROL_MESSAGE if _NOT_IN_TEXT.search(value) else None


def check_line(value: str) -> str:
    """A line as it is; ValueError (a 422 naming the field, through pydantic) if it is not."""
    if problem := line_problem(value):
        raise ValueError(problem)
    return value


def check_text(value: str) -> str:
    """A text as it is; ValueError (a 422 naming the field, through pydantic) if it is not."""
    if problem := text_problem(value):
        raise ValueError(problem)
    return value


# The validation context of a record read back from storage: the rule is not applied again.
STORED: dict[str, bool] = {"stored": True}


def is_stored(info: ValidationInfo) -> bool:
    """Whether this validation reads back a stored record (see `STORED`)."""
    return isinstance(info.context, Mapping) and bool(info.context.get("stored"))


def _line(value: str, info: ValidationInfo) -> str:
    return value if is_stored(info) else check_line(value)


def _text(value: str, info: ValidationInfo) -> str:
    return value if is_stored(info) else check_text(value)


def text_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """Every text among values of a shape nobody declared (another model's run parameters)
    that holds a control character a text may not, at any depth, by its path (`a.0.b`): such a
    value is held to the more lenient kind, as nothing says which it is."""
    problems: dict[str, str] = {}
    pending: list[tuple[str, Any]] = list(values.items())
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if problem := text_problem(value):
                problems[path] = problem
        elif isinstance(value, Mapping):
            pending.extend((f"{path}.{key}", inner) for key, inner in value.items())
        elif isinstance(value, list | tuple):
            pending.extend((f"{path}.{index}", inner) for index, inner in enumerate(value))
    return problems


Line = Annotated[str, AfterValidator(_line), Field(json_schema_extra={"pattern": LINE_PATTERN})]
Text = Annotated[str, AfterValidator(_text), Field(json_schema_extra={"pattern": TEXT_PATTERN})]
# A line that must say something, not be blank, as the fields that ask for one say to OpenAPI.
WORDED_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
WordedLine = Annotated[
    str, AfterValidator(_line), Field(json_schema_extra={"pattern": WORDED_LINE_PATTERN})
]

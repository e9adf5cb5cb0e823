"""A small JSON Schema validator: the keywords run schemas use, read the emulator's way.

The emulator checks a run against its model's schema as PixelDojo does; it does so with
this module and never with the app's own reading of schemas (app/domain/rules.py), so
the two can be compared (tests/test_contract_agreement.py). `jsonschema` is not an
install dependency, and demo mode runs the emulator in every install.

It reads `$ref` (within the document), `allOf`/`anyOf`/`oneOf`, `type`, `enum`,
`const`, the numeric bounds (draft 4's boolean exclusive bounds too), `minLength`/
`maxLength`, `minItems`/`maxItems`, `items`, `properties`, `required` and
`additionalProperties`. `format` is an annotation, as JSON Schema says (the emulator
decodes reference images itself). Two readings are the contract page's policy: an
integer is a number written without a fraction (`2` but not `2.0` or `true`), and
`minLength` counts what is left once white space is trimmed from both ends (a prompt of
spaces is empty).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# `$ref`s and combinators followed within one value before the schema is called circular.
MAX_DEPTH = 32

_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}
_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


@dataclass(frozen=True)
class Problem:
    """What is wrong, and where: `image_urls[0]`, `loras[1].path`, or "" for the body."""

    where: str
    message: str


def problems(schema: Mapping[str, Any], instance: Any) -> list[Problem]:
    """Every problem the schema finds in the instance; the first one per value."""
    return _Validation(schema).check(schema, instance, "", 0)


def same(a: Any, b: Any) -> bool:
    """JSON's equality: `true` is not `1`, `1` is `1.0`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b) and (isinstance(a, int | float) == isinstance(b, int | float))


class _Validation:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root

    def check(self, schema: Any, value: Any, where: str, depth: int) -> list[Problem]:
        if schema is True or schema is None:
            return []
        if schema is False:
            return [Problem(where, "is not allowed")]
        if not isinstance(schema, Mapping):
            return []
        if depth > MAX_DEPTH:
            return [Problem(where, "cannot be checked: the schema refers to itself")]
        found: list[Problem] = []
        ref = schema.get("$ref")
        if isinstance(ref, str):
            found += self.check(self._resolve(ref), value, where, depth + 1)
        for part in schema.get("allOf") or ():
            found += self.check(part, value, where, depth + 1)
        found += self._alternatives(schema, value, where, depth)
        if found:
            return found[:1]
        own = self._own(schema, value)
        if own is not None:
            return [Problem(where, own)]
        if isinstance(value, list):
            return self._items(schema, value, where, depth)
        if isinstance(value, dict):
            return self._properties(schema, value, where, depth)
        return []

    def _resolve(self, ref: str) -> Any:
        """A `$ref` within the document (`#/$defs/Size`); anything else allows all."""
        if not ref.startswith("#"):
            return True
        target: Any = self._root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                return True
            target = target[part]
        return target

    def _alternatives(
        self, schema: Mapping[str, Any], value: Any, where: str, depth: int
    ) -> list[Problem]:
        for keyword in ("anyOf", "oneOf"):
            options = schema.get(keyword)
            if not isinstance(options, list) or not options:
                continue
            results = [self.check(option, value, where, depth + 1) for option in options]
            passed = sum(1 for result in results if not result)
            if keyword == "oneOf" and passed > 1:
                return [Problem(where, "matches more than one of the forms it may take")]
            if passed:
                continue
            # A nullable field (`anyOf: [X, {type: null}]`) is wrong the way X says.
            real = [r for o, r in zip(options, results, strict=True) if not _only_null(o)]
            if len(real) == 1:
                return real[0]
            return [Problem(where, "matches none of the forms it may take")]
        return []

    @staticmethod
    def _own(schema: Mapping[str, Any], value: Any) -> str | None:
        """The first of the value's own keywords it breaks, as the 400 says it."""
        kind = schema.get("type")
        kinds = [kind] if isinstance(kind, str) else list(kind or ())
        if kinds and not any(_TYPES.get(k, lambda v: True)(value) for k in kinds):
            return "must be " + " or ".join(_TYPE_WORDS.get(k, k) for k in kinds)
        if "const" in schema and not same(value, schema["const"]):
            return f"must be {schema['const']}"
        enum = schema.get("enum")
        if isinstance(enum, list) and not any(same(value, option) for option in enum):
            return "must be one of: " + ", ".join(str(option) for option in enum)
        if _TYPES["number"](value):
            return _bounds_problem(schema, value)
        if isinstance(value, str):
            low, high = schema.get("minLength"), schema.get("maxLength")
            if isinstance(low, int) and len(value.strip()) < low:
                return "must not be empty" if low == 1 else f"must be at least {low:,} characters"
            if isinstance(high, int) and len(value) > high:
                return f"must be at most {high:,} characters (this is {len(value):,})"
        if isinstance(value, list):
            low, high = schema.get("minItems"), schema.get("maxItems")
            if isinstance(high, int) and len(value) > high:
                return f"must have at most {high} items"
            if isinstance(low, int) and len(value) < low:
                return f"must have at least {low} items"
        return None

    def _items(
        self, schema: Mapping[str, Any], value: list[Any], where: str, depth: int
    ) -> list[Problem]:
        items = schema.get("items")
        found: list[Problem] = []
        for index, item in enumerate(value):
            found += self.check(items, item, f"{where}[{index}]", depth + 1)
        return found

    def _properties(
        self, schema: Mapping[str, Any], value: dict[str, Any], where: str, depth: int
    ) -> list[Problem]:
        properties = schema.get("properties")
        known: Mapping[str, Any] = properties if isinstance(properties, Mapping) else {}
        extra = schema.get("additionalProperties", True)
        found: list[Problem] = []
        required = schema.get("required")
        for name in sorted(map(str, required)) if isinstance(required, list) else ():
            if name not in value:
                found.append(Problem(_join(where, name), "is required"))
        for name, item in value.items():
            inner = known.get(name, extra)
            found += self.check(inner, item, _join(where, name), depth + 1)
        return found


def _only_null(option: Any) -> bool:
    return isinstance(option, Mapping) and option.get("type") == "null"


def _bounds_problem(schema: Mapping[str, Any], value: float) -> str | None:
    low, high = _bound(schema.get("minimum")), _bound(schema.get("maximum"))
    above, below = _bound(schema.get("exclusiveMinimum")), _bound(schema.get("exclusiveMaximum"))
    # Draft 4 wrote exclusive bounds as booleans beside minimum/maximum.
    if schema.get("exclusiveMinimum") is True:
        above, low = low, None
    if schema.get("exclusiveMaximum") is True:
        below, high = high, None
    too_low = low is not None and value < low
    too_high = high is not None and value > high
    if too_low or too_high:
        if low is not None and high is not None:
            return f"must be between {_num(low)} and {_num(high)}"
        if too_low and low is not None:
            return f"must be at least {_num(low)}"
        if high is not None:
            return f"must be at most {_num(high)}"
    if above is not None and value <= above:
        return f"must be more than {_num(above)}"
    if below is not None and value >= below:
        return f"must be less than {_num(below)}"
    return None


def _bound(value: Any) -> float | None:
    """A numeric keyword's value (a boolean is draft 4's flag, not a bound)."""
    return value if _TYPES["number"](value) else None


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name

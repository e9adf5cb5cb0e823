"""The rules a run must keep, read from JSON Schema: built-in, live, and in force.

PixelDojo publishes each model's run body as a JSON Schema
(`GET /models/{apiId}/schema`). `ModelRules.from_json_schema` reads the keywords
that decide what may be sent (type, enum/const, minimum/maximum, exclusive bounds,
minLength/maxLength, minItems/maxItems, required, additionalProperties) from any
model's schema, `$ref`s and nullable `anyOf`s included. The built-in rules are
the same thing read from our own record's schema (app/domain/parameters.py).

The rules in force for a model are `effective(builtin, live)`: the live schema
wherever it states a keyword, the built-in rule where it is silent, never looser
than the live schema (a field it does not list is refused when it forbids
additional properties). `check` names every field a run gets wrong, before
anything is sent upstream.

It stays one module, long as it is: the form's limits, the image inputs and the checks
are all readings of the one shape `_normalize` gives every schema, and say a bound the
same way (`number_text`); apart, each would need to know that shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.model_id import DEFAULT_MODEL
from app.domain.parameters import (
    ASPECT_RATIO_MAX,
    CREDITS_PER_IMAGE,
    CUSTOM_SIZE,
    DRAWN_SEED_MIN,
    SEED_MAX,
    TOTAL_PIXELS_MAX,
    TOTAL_PIXELS_MIN,
    GenerationParams,
    custom_size_problem,
)

# The keywords this app enforces; anything else in a schema is kept for display only.
CHECKED_KEYWORDS = (
    "type",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
)
# Size limits some schemas put on an image input (read by `image_input`, never checked).
IMAGE_LIMIT_KEYWORDS = {
    "side": ("maxSide", "maxDimension", "maxWidth", "maxHeight"),
    "bytes": ("maxFileSize", "maxBytes", "maxSizeBytes", "maxFileSizeBytes"),
}
_KEPT_KEYWORDS = (
    *CHECKED_KEYWORDS,
    "default",
    "description",
    "title",
    "format",
    "items",
    *IMAGE_LIMIT_KEYWORDS["side"],
    *IMAGE_LIMIT_KEYWORDS["bytes"],
)
# How deep `$ref`s and nested combinators are followed in one property.
_MAX_DEPTH = 8

Values = Mapping[str, Any]
ExtraCheck = Callable[[Values, "ModelRules"], dict[str, str]]


class SchemaUnreadable(ValueError):
    """The answer is not a JSON Schema of a run body this app can read."""


@dataclass(frozen=True)
class ModelRules:
    """What one model's run body may hold: each field's keywords, and the body's."""

    model: str
    properties: Mapping[str, Mapping[str, Any]]
    # None: the schema does not say (for merging, silence differs from "nothing").
    required: frozenset[str] | None = None
    additional_properties: bool | None = None
    # Rules JSON Schema cannot say (a custom size's pixel budget); the built-in model's.
    extra_checks: tuple[ExtraCheck, ...] = field(default=(), compare=False)

    # --- Reading ------------------------------------------------------------------

    @classmethod
    def from_json_schema(cls, document: Any, *, model: str) -> ModelRules:
        """Read a run body's schema: bare, or wrapped as `{"schema": {...}}` and the like."""
        schema = _unwrap(document)
        definitions = {**_mapping(schema.get("definitions")), **_mapping(schema.get("$defs"))}
        raw_properties = schema.get("properties")
        if not isinstance(raw_properties, Mapping) or not raw_properties:
            raise SchemaUnreadable("the schema lists no properties")
        properties = {
            str(name): _normalize(prop, definitions, 0) for name, prop in raw_properties.items()
        }
        required = schema.get("required")
        additional = schema.get("additionalProperties")
        if additional is not None and not isinstance(additional, bool):
            # A schema for the extra properties (not a boolean) allows some: say "allowed".
            additional = True
        return cls(
            model=model,
            properties=properties,
            required=frozenset(map(str, required)) if isinstance(required, list) else None,
            additional_properties=additional,
        )

    def allows(self, name: str) -> bool:
        return name in self.properties or self.additional_properties is not False

    def keyword(self, name: str, keyword: str) -> Any:
        prop = self.properties.get(name)
        return None if prop is None else prop.get(keyword)

    def enum(self, name: str) -> tuple[Any, ...] | None:
        values = self.keyword(name, "enum")
        return tuple(values) if values is not None else None

    def bounds(self, name: str) -> tuple[float | None, float | None]:
        """The smallest and largest number a field takes (exclusive bounds made inclusive
        for integers)."""
        prop = self.properties.get(name) or {}
        low, high = prop.get("minimum"), prop.get("maximum")
        integer = "integer" in (prop.get("type") or ())
        exclusive_low, exclusive_high = prop.get("exclusiveMinimum"), prop.get("exclusiveMaximum")
        if exclusive_low is not None:
            floor = exclusive_low + 1 if integer else exclusive_low
            low = floor if low is None else max(low, floor)
        if exclusive_high is not None:
            ceiling = exclusive_high - 1 if integer else exclusive_high
            high = ceiling if high is None else min(high, ceiling)
        return low, high

    @property
    def required_fields(self) -> frozenset[str]:
        return self.required or frozenset()

    # --- Checking -----------------------------------------------------------------

    def check(self, values: Values) -> dict[str, str]:
        """Every field these rules refuse, with why (the first reason per field)."""
        errors: dict[str, str] = {}
        for name in values:
            if name not in self.properties and self.additional_properties is False:
                errors[name] = "is not a parameter of this model"
        for name in sorted(self.required_fields):
            if values.get(name) is None:
                errors.setdefault(name, "is required")
        for name, value in values.items():
            prop = self.properties.get(name)
            if prop is None or value is None or name in errors:
                continue
            problem = _problem(prop, value, self.bounds(name))
            if problem:
                errors[name] = problem
        for extra in self.extra_checks:
            for name, problem in extra(values, self).items():
                errors.setdefault(name, problem)
        return errors


def effective(builtin: ModelRules | None, live: ModelRules | None) -> ModelRules:
    """The rules in force: the live schema where it speaks, the built-in where it is silent."""
    if live is None:
        if builtin is None:
            raise ValueError("no rules at all")
        return builtin
    if builtin is None:
        return live
    properties: dict[str, Mapping[str, Any]] = {
        name: {**builtin.properties.get(name, {}), **prop} for name, prop in live.properties.items()
    }
    if live.additional_properties is not False:
        for name, prop in builtin.properties.items():
            properties.setdefault(name, prop)
    size = properties.get("image_size")
    if size is not None and "image_size" in builtin.properties:
        properties["image_size"] = _with_allowed_default(size)
    return ModelRules(
        model=live.model,
        properties=properties,
        required=live.required if live.required is not None else builtin.required,
        additional_properties=live.additional_properties
        if live.additional_properties is not None
        else builtin.additional_properties,
        extra_checks=builtin.extra_checks,
    )


def _with_allowed_default(prop: Mapping[str, Any]) -> Mapping[str, Any]:
    """The size field with a default its enum allows: a live schema that drops the built-in
    default (auto_2K) would otherwise refuse a run that names no size, the simplest one."""
    allowed = [str(size) for size in prop.get("enum") or () if size != CUSTOM_SIZE]
    if not allowed or prop.get("default") in allowed:
        return prop
    return {**prop, "default": allowed[0]}


def default_size(rules: ModelRules) -> str | None:
    """The size a run that names none is made at: the rules' default (the live schema's, or
    else the built-in auto_2K, as long as the enum in force allows it; else the first named
    size it allows). None for a model without image sizes."""
    default = rules.keyword("image_size", "default")
    return str(default) if default is not None else None


# --- What the form shows ------------------------------------------------------------


def form_limits(rules: ModelRules) -> dict[str, Any]:
    """The limits the browser form enforces, rendered into the page from the rules in force
    (the JavaScript reads these and the inputs' own attributes, nothing of its own)."""
    side_low = [rules.bounds(side)[0] for side in ("customWidth", "customHeight")]
    side_high = [rules.bounds(side)[1] for side in ("customWidth", "customHeight")]
    seed_min, seed_max = rules.bounds("seed")
    num_min, num_max = rules.bounds("num_images")
    return {
        "prompt_max": rules.keyword("prompt", "maxLength"),
        "side_min": _int(max((v for v in side_low if v is not None), default=None)),
        "side_max": _int(min((v for v in side_high if v is not None), default=None)),
        "total_pixels_min": TOTAL_PIXELS_MIN,
        "total_pixels_max": TOTAL_PIXELS_MAX,
        "aspect_max": ASPECT_RATIO_MAX,
        "seed_min": _int(seed_min),
        "seed_max": _int(seed_max),
        "num_images_min": _int(num_min),
        "num_images_max": _int(num_max),
        "credits_per_image": CREDITS_PER_IMAGE,
    }


def offered_sizes(rules: ModelRules) -> list[str]:
    """The image sizes the form offers: the enum in force, custom only if its sides may be
    sent."""
    sizes = [str(size) for size in rules.enum("image_size") or ()]
    if CUSTOM_SIZE in sizes and not (rules.allows("customWidth") and rules.allows("customHeight")):
        sizes.remove(CUSTOM_SIZE)
    return sizes


def seed_range(rules: ModelRules) -> tuple[int, int] | None:
    """The seeds the app may draw for a random one, or None if the model takes no seed."""
    if "seed" not in rules.properties:
        return None
    low, high = rules.bounds("seed")
    drawn_low = max(DRAWN_SEED_MIN, int(low) if low is not None else DRAWN_SEED_MIN)
    drawn_high = min(SEED_MAX, int(high) if high is not None else SEED_MAX)
    return (drawn_low, drawn_high) if drawn_low <= drawn_high else None


# --- Image inputs (reference images) ---------------------------------------------------

# What references are scaled to when the schema states no limit of its own.
REFERENCE_SIDE_MAX = 4096
REFERENCE_BYTES_MAX = 10 * 1024 * 1024
# The longest `data:` prefix a reference carries (`data:image/jpeg;base64,`).
_DATA_URI_PREFIX_CHARS = 23
# Named like image_urls, image_url, reference_images, input_image, images...
_IMAGE_INPUT_NAME = re.compile(
    r"^(input_|init_|source_|reference_|ref_)?(image|images|reference|references)(_urls?|_uris?)?$",
    re.IGNORECASE,
)
_URI_FORMATS = frozenset({"uri", "url", "uri-reference", "iri"})
# URI fields that are never images.
_NOT_IMAGE_NAME = re.compile(r"webhook|callback", re.IGNORECASE)


@dataclass(frozen=True)
class ImageInput:
    """The field of a model's run body that takes reference images, and its limits."""

    name: str
    # A list of URIs (`image_urls`), or one (`image_url`).
    many: bool
    min_items: int
    max_items: int
    required: bool
    # What each image is scaled down to before it is sent.
    max_side: int = REFERENCE_SIDE_MAX
    max_bytes: int = REFERENCE_BYTES_MAX

    def body_value(self, references: Sequence[str]) -> Any:
        """The field's value for these references (a list, or the one string)."""
        return list(references) if self.many else references[0]


def image_input(rules: ModelRules) -> ImageInput | None:
    """The model's image input, if its schema has one: a field named like an image input,
    else an array of `format: uri` strings, else a single `format: uri` string."""

    def uri(prop: Mapping[str, Any]) -> bool:
        return str(prop.get("format", "")).lower() in _URI_FORMATS

    def uri_items(prop: Mapping[str, Any]) -> bool:
        items = prop.get("items")
        return isinstance(items, Mapping) and uri(items)

    candidates: list[tuple[int, str, Mapping[str, Any]]] = []
    for name, prop in rules.properties.items():
        types = prop.get("type") or ()
        if types and not {"array", "string"} & set(types):
            continue
        if _IMAGE_INPUT_NAME.match(name):
            candidates.append((0, name, prop))
        elif "array" in types and uri_items(prop):
            candidates.append((1, name, prop))
        elif "string" in types and uri(prop) and not _NOT_IMAGE_NAME.search(name):
            candidates.append((2, name, prop))
    if not candidates:
        return None
    _, name, prop = min(candidates, key=lambda found: found[0])
    types = prop.get("type") or ()
    many = "array" in types or (not types and name.lower().endswith("s"))
    required = name in rules.required_fields
    low, high = prop.get("minItems"), prop.get("maxItems")
    item: Mapping[str, Any] = prop["items"] if isinstance(prop.get("items"), Mapping) else {}
    fewest = int(required)
    most = 1
    if many:
        # Without maxItems, fal's figure for Seedream's edit model.
        fewest = max(fewest, low) if isinstance(low, int) else fewest
        most = high if isinstance(high, int) and high >= 1 else 10
    return ImageInput(
        name=name,
        many=many,
        min_items=fewest,
        max_items=most,
        required=required,
        max_side=_image_limit(prop, item, "side") or REFERENCE_SIDE_MAX,
        max_bytes=_image_limit(prop, item, "bytes")
        or _bytes_in_data_uri(item.get("maxLength") if many else prop.get("maxLength"))
        or REFERENCE_BYTES_MAX,
    )


def _image_limit(prop: Mapping[str, Any], item: Mapping[str, Any], kind: str) -> int | None:
    values = [
        source[keyword]
        for source in (prop, item)
        for keyword in IMAGE_LIMIT_KEYWORDS[kind]
        if isinstance(source.get(keyword), int) and source[keyword] > 0
    ]
    return min(values) if values else None


def _bytes_in_data_uri(max_length: Any) -> int | None:
    """The image bytes a `data:` URI of at most `max_length` characters can carry."""
    if not isinstance(max_length, int) or max_length <= _DATA_URI_PREFIX_CHARS:
        return None
    return (max_length - _DATA_URI_PREFIX_CHARS) // 4 * 3


def describe(prop: Mapping[str, Any]) -> str:
    """A field's keywords in a few words: `integer, 1–4`."""
    parts = [" or ".join(prop.get("type") or ("any",))]
    if prop.get("enum") is not None:
        parts.append("one of " + ", ".join(str(value) for value in prop["enum"]))
    low, high = prop.get("minimum"), prop.get("maximum")
    if low is not None or high is not None:
        shown = [number_text(bound) if bound is not None else "…" for bound in (low, high)]
        parts.append("–".join(shown))
    if prop.get("maxLength") is not None:
        parts.append(f"at most {prop['maxLength']:,} characters")
    if prop.get("maxItems") is not None:
        parts.append(f"at most {prop['maxItems']} items")
    return ", ".join(parts)


# --- Internals ----------------------------------------------------------------------


def _unwrap(document: Any) -> Mapping[str, Any]:
    for _ in range(3):
        if not isinstance(document, Mapping):
            break
        if "properties" in document:
            return document
        for key in ("schema", "inputSchema", "input_schema", "parameters", "input"):
            if isinstance(document.get(key), Mapping):
                document = document[key]
                break
        else:
            break
    raise SchemaUnreadable("the answer is not a JSON Schema with properties")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _normalize(prop: Any, definitions: Mapping[str, Any], depth: int) -> dict[str, Any]:
    """One property's keywords, with `$ref`s resolved, nullable `anyOf`s flattened and
    `type` always a tuple (empty: any type)."""
    if not isinstance(prop, Mapping) or depth > _MAX_DEPTH:
        return {}
    merged: dict[str, Any] = {}
    ref = prop.get("$ref")
    if isinstance(ref, str):
        merged.update(_normalize(definitions.get(ref.rsplit("/", 1)[-1]), definitions, depth + 1))
    for combinator in ("allOf",):
        for part in prop.get(combinator) or ():
            merged.update(_normalize(part, definitions, depth + 1))
    nullable = False
    for combinator in ("anyOf", "oneOf"):
        options = [
            _normalize(option, definitions, depth + 1) for option in prop.get(combinator) or ()
        ]
        real = [option for option in options if option != {"nullable": True}]
        nullable = nullable or len(real) < len(options)
        if len(real) == 1:
            merged.update(real[0])
        elif real:
            types = tuple(dict.fromkeys(t for option in real for t in option.get("type", ())))
            merged["type"] = types
            if all(option.get("enum") is not None for option in real):
                # Either list of values: the union, never looser than the schema.
                merged["enum"] = list(dict.fromkeys(v for o in real for v in o["enum"]))
    for keyword in _KEPT_KEYWORDS:
        if keyword in prop:
            merged[keyword] = prop[keyword]
    if "const" in prop:
        merged["enum"] = [prop["const"]]
    kind = merged.get("type")
    if isinstance(kind, str):
        kind = (kind,)
    types = tuple(str(t) for t in kind or () if t != "null")
    nullable = nullable or (isinstance(kind, Sequence) and "null" in kind)
    merged["type"] = types
    if nullable:
        merged["nullable"] = True
    # Draft 4 wrote exclusive bounds as booleans beside minimum/maximum.
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if merged.get(exclusive) is True:
            merged[exclusive] = merged.pop(bound, None)
        elif merged.get(exclusive) is False:
            merged.pop(exclusive)
    if isinstance(merged.get("enum"), list):
        merged["enum"] = [value for value in merged["enum"] if value is not None]
    if not merged["type"] and merged.get("enum") is None:
        del merged["type"]
    return {key: value for key, value in merged.items() if value is not None}


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, Mapping),
}
_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
}


def _problem(
    prop: Mapping[str, Any], value: Any, bounds: tuple[float | None, float | None]
) -> str | None:
    types = prop.get("type") or ()
    if types and not any(_TYPE_CHECKS.get(t, lambda v: True)(value) for t in types):
        return "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types)
    enum = prop.get("enum")
    if enum is not None and value not in enum:
        return "must be one of: " + ", ".join(str(option) for option in enum)
    if _TYPE_CHECKS["number"](value):
        low, high = bounds
        if (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                return f"must be between {number_text(low)} and {number_text(high)}"
            if high is None:
                return f"must be at least {number_text(low or 0)}"
            return f"must be at most {number_text(high)}"
        # Exclusive bounds of a non-integer field (bounds() made an integer's inclusive).
        if prop.get("exclusiveMinimum") is not None and value <= prop["exclusiveMinimum"]:
            return f"must be more than {number_text(prop['exclusiveMinimum'])}"
        if prop.get("exclusiveMaximum") is not None and value >= prop["exclusiveMaximum"]:
            return f"must be less than {number_text(prop['exclusiveMaximum'])}"
    if isinstance(value, str):
        if prop.get("minLength") and len(value.strip()) < prop["minLength"]:
            return (
                "must not be empty"
                if prop["minLength"] == 1
                else (f"must be at least {prop['minLength']:,} characters")
            )
        if prop.get("maxLength") is not None and len(value) > prop["maxLength"]:
            return f"must be at most {prop['maxLength']:,} characters (this is {len(value):,})"
    if isinstance(value, list | tuple):
        if prop.get("maxItems") is not None and len(value) > prop["maxItems"]:
            return f"must have at most {prop['maxItems']} items"
        if prop.get("minItems") is not None and len(value) < prop["minItems"]:
            return f"must have at least {prop['minItems']} items"
    return None


def number_text(value: float) -> str:
    """A number as the rules' messages write it: `4,000`, `0.5`."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


# --- The built-in rules ---------------------------------------------------------------


def _seedream_checks(values: Values, rules: ModelRules) -> dict[str, str]:
    """What Seedream's schema cannot say: custom sides go with `custom` and fit the budget."""
    errors: dict[str, str] = {}
    custom = values.get("image_size", CUSTOM_SIZE) == CUSTOM_SIZE and "image_size" in values
    for side in ("customWidth", "customHeight"):
        if custom and values.get(side) is None and rules.allows(side):
            errors[side] = "is required when image_size is custom"
        if not custom and values.get(side) is not None:
            errors[side] = "applies only when image_size is custom"
    width, height = values.get("customWidth"), values.get("customHeight")
    if custom and isinstance(width, int) and isinstance(height, int) and width and height:
        problem = custom_size_problem(width, height)
        if problem:
            errors["customHeight"] = problem
    return errors


def _seedream_rules() -> ModelRules:
    read = ModelRules.from_json_schema(GenerationParams.model_json_schema(), model=DEFAULT_MODEL)
    return ModelRules(
        model=DEFAULT_MODEL,
        properties=read.properties,
        required=read.required,
        # The record is `extra="forbid"`, as PixelDojo documents its run schemas.
        additional_properties=False,
        extra_checks=(_seedream_checks,),
    )


SEEDREAM_RULES = _seedream_rules()
# Models whose rules this app knows without asking, and which keep their hand-made form.
# Other models' rules come from their live schema alone, and the form is rendered from
# it; until one is read, the Seedream record is all the form sends.
BUILTIN_RULES: dict[str, ModelRules] = {DEFAULT_MODEL: SEEDREAM_RULES}


def has_builtin_record(model: str) -> bool:
    """Whether the model's runs are the Seedream record with its hand-made form."""
    return model in BUILTIN_RULES


def builtin_rules(model: str) -> ModelRules:
    """The built-in rules for a model: Seedream's, the only record this app's form has."""
    known = BUILTIN_RULES.get(model, SEEDREAM_RULES)
    if known.model == model:
        return known
    return ModelRules(
        model=model,
        properties=known.properties,
        required=known.required,
        additional_properties=known.additional_properties,
        extra_checks=known.extra_checks,
    )

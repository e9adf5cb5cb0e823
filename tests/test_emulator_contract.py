"""The emulator's fixtures say what docs/upstream-contract.md says, and the app's rules agree
with them.

The emulator checks runs by JSON Schema files of its own (app/emulator/schemas/), never by
the app's rules (an import-linter contract in pyproject.toml). Here the files are held to
the page, keyword for keyword, and the app's built-in rules to the emulator's verdicts on
generated runs: a limit mistyped in app/domain/parameters.py is a run the app sends and
PixelDojo refuses, or one it refuses and PixelDojo would take, and fails here.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.core.errors import InvalidParameters
from app.core.model_id import DEFAULT_MODEL
from app.domain.parameters import NAMED_SIZE_PIXELS
from app.domain.rules import SEEDREAM_RULES, ModelRules
from app.domain.runs import check_run, parse_run
from app.emulator.catalogue import FLUX, SEEDREAM, SEEDREAM_EDIT, models
from app.emulator.config import EmulatorConfig
from app.emulator.contract import SCHEMA_DIR, contract, run_schema
from app.emulator.run_rules import refusal

CONTRACT_PAGE = Path(__file__).resolve().parent.parent / "docs" / "upstream-contract.md"
SECTION = "## The emulator's run schemas"
# Keywords that describe a field without limiting it.
ANNOTATIONS = frozenset({"description", "title"})
TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "list of URIs": {"type": "array", "items": {"type": "string", "format": "uri"}},
    "list of objects": {"type": "array", "items": {"type": "object"}},
}
# Generated runs are many and cheap; derandomized, so a run of the suite is a run of the same.
AGREEMENT = settings(
    max_examples=600,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- Reading the page -----------------------------------------------------------------


def _section() -> str:
    text = CONTRACT_PAGE.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def _tables(text: str) -> list[list[list[str]]]:
    """Every table in the text, as rows of cells, header and rule left out."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if current is None:
            current = []
            tables.append(current)
            continue  # the header
        if all(set(cell) <= {"-", ":"} for cell in cells):
            continue
        current.append(cells)
    return tables


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]*)`", cell)


def _number(text: str) -> int | float:
    value = float(text.replace(",", "").replace("−", "-"))
    return int(value) if value.is_integer() else value


def _limits(cell: str) -> dict[str, Any]:
    """A `limits` cell as JSON Schema keywords; a cell this cannot read fails the test."""
    if not cell:
        return {}
    if cell.startswith("one of "):
        return {"enum": _ticked(cell)}
    found = re.fullmatch(r"(\S+) to (\S+)( characters| items)?", cell)
    if found:
        low, high = _number(found[1]), _number(found[2])
        names = {
            " characters": ("minLength", "maxLength"),
            " items": ("minItems", "maxItems"),
            None: ("minimum", "maximum"),
        }[found[3]]
        return {names[0]: low, names[1]: high}
    found = re.fullmatch(r"at most (\S+) characters", cell)
    if found:
        return {"maxLength": _number(found[1])}
    raise AssertionError(f"the page's limits cell {cell!r} is not one this test can read")


def _default(cell: str) -> dict[str, Any]:
    if not cell:
        return {}
    (written,) = _ticked(cell)
    try:
        return {"default": json.loads(written)}
    except ValueError:
        return {"default": written}


def stated_schemas() -> dict[str, dict[str, Any]]:
    """Each model's run schema as the page's table states it."""
    schemas: dict[str, dict[str, Any]] = {}
    for model_cell, field_cell, kind, required, limits, default in _tables(_section())[0]:
        (model,), (name,) = _ticked(model_cell), _ticked(field_cell)
        schema = schemas.setdefault(
            model,
            {"type": "object", "properties": {}, "required": [], "additionalProperties": False},
        )
        schema["properties"][name] = {**TYPES[kind], **_limits(limits), **_default(default)}
        assert required in ("yes", "no"), f"{model}.{name}: required is {required!r}"
        if required == "yes":
            schema["required"].append(name)
    return schemas


def stated_rules() -> dict[str, str]:
    """The table of what a schema cannot say: {rule: how the emulator holds it}."""
    return {rule: held for rule, held in _tables(_section())[1]}


def stated_named_sizes() -> dict[str, tuple[int, int]]:
    text = CONTRACT_PAGE.read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if "**Named sizes in pixels**" in line)
    sizes: dict[str, tuple[int, int]] = {}
    for names, width, height in re.findall(r"((?:`\w+`(?: and )?)+) (\d+)×(\d+)", line):
        for name in _ticked(names):
            sizes[name] = (int(width), int(height))
    return sizes


def _limiting(prop: Mapping[str, Any]) -> dict[str, Any]:
    """A fixture's field without its annotations (nested `items` too, to their type and
    format: the page states no more of a list's items)."""
    kept = {key: value for key, value in prop.items() if key not in ANNOTATIONS}
    if isinstance(kept.get("items"), Mapping):
        kept["items"] = {k: v for k, v in kept["items"].items() if k in ("type", "format")}
    return kept


# --- The fixtures are the page's ------------------------------------------------------


def test_the_page_states_a_schema_for_each_fixture_and_nothing_else() -> None:
    shipped = {path.stem for path in SCHEMA_DIR.glob("*.json")} - {"contract"}
    assert set(stated_schemas()) == shipped
    assert {SEEDREAM, SEEDREAM_EDIT, FLUX} <= shipped


@pytest.mark.parametrize("model", sorted(stated_schemas()))
def test_each_fixture_is_the_schema_the_page_states_keyword_for_keyword(model: str) -> None:
    stated = stated_schemas()[model]
    fixture = run_schema(model)
    assert fixture["type"] == "object"
    assert fixture["additionalProperties"] is False
    assert sorted(fixture["required"]) == sorted(stated["required"])
    assert list(fixture["properties"]) == list(stated["properties"]), "the same fields, in order"
    for name, prop in fixture["properties"].items():
        assert _limiting(prop) == stated["properties"][name], f"{model}.{name}"
    unread = set(fixture) - {"type", "properties", "required", "additionalProperties"}
    assert unread <= ANNOTATIONS, f"{model} has keywords the page does not state: {unread}"


def test_what_a_schema_cannot_say_is_the_page_s() -> None:
    rules = stated_rules()
    custom = contract().custom_size
    readers: dict[str, Callable[[str], object]] = {
        "models that take a custom size": lambda cell: set(_ticked(cell)) == custom.models,
        "a custom size is asked for with": lambda cell: (
            _ticked(cell) == [custom.size_field, custom.size_word]
        ),
        "its sides, both required with `custom` and refused with any other size": lambda cell: (
            tuple(_ticked(cell)) == custom.sides
        ),
        "total pixels of a custom size": lambda cell: (
            _limits(cell)
            == {"minimum": custom.total_pixels_min, "maximum": custom.total_pixels_max}
        ),
        "aspect ratio of a custom size": lambda cell: (
            cell == f"1/{custom.aspect_max:g} to {custom.aspect_max:g}"
        ),
        "each side of a custom size at most": lambda cell: _number(cell) == custom.side_max,
        "fields any run may carry besides its schema's": lambda cell: (
            set(_ticked(cell)) == contract().run_fields
        ),
        "fields accepted and ignored unless strict (others are refused by name)": lambda cell: (
            set(_ticked(cell)) == contract().tolerated_fields
        ),
    }
    assert set(rules) == set(readers), "every row of the page is checked, and only those"
    for rule, cell in rules.items():
        assert readers[rule](cell), f"{rule}: the page says {cell!r}"


def test_the_named_sizes_in_pixels_are_the_page_s_for_the_emulator_and_the_app() -> None:
    stated = stated_named_sizes()
    assert len(stated) == 8
    assert contract().named_sizes == stated
    assert stated == NAMED_SIZE_PIXELS, "the app's named sizes"
    sizes = run_schema(SEEDREAM)["properties"]["image_size"]["enum"]
    assert set(sizes) == set(stated) | {contract().custom_size.size_word}


def _parameters_table() -> dict[str, list[str]]:
    """The "Parameters for Seedream 4.5" table, by field (a row may name two)."""
    text = CONTRACT_PAGE.read_text(encoding="utf-8")
    start = text.index("## Parameters for Seedream 4.5")
    section = text[start : text.index("\n## ", start + 1)]
    rows = _tables(section)[0]
    return {name: row for row in rows for name in _ticked(row[0])}


def _figures(pattern: str, text: str) -> list[int | float]:
    found = re.search(pattern, text)
    assert found, f"the page no longer says {pattern!r}"
    return [_number(group) for group in found.groups()]


def test_seedream_s_schema_on_the_page_is_its_table_of_parameters() -> None:
    """The page states Seedream's parameters twice, once with their sources and once as
    the schema the emulator holds; this keeps the two from drifting apart."""
    table = _parameters_table()
    schema = stated_schemas()[SEEDREAM]
    properties = schema["properties"]
    assert set(table) == set(properties)
    for name, (_, kind, default, _evidence, _source) in table.items():
        prop = properties[name]
        assert prop["type"] == ("string" if kind == "enum" else kind), name
        assert ("enum" in prop) == (kind == "enum"), name
        assert (default == "required") == (name in schema["required"]), name
        written = _ticked(default) or ([default] if default.isdigit() else [])
        stated_default = [str(prop["default"])] if "default" in prop else []
        assert stated_default == written, name
    assert set(_ticked(table["image_size"][3])) == set(properties["image_size"]["enum"])
    custom = contract().custom_size
    budget = table["customWidth"][3]
    assert _figures(r"total pixels ([\d,]+)–([\d,]+)", budget) == [
        custom.total_pixels_min,
        custom.total_pixels_max,
    ]
    assert _figures(r"aspect ratio 1/(\d+)–(\d+)", budget) == [custom.aspect_max] * 2
    assert _figures(r"each side at most ([\d,]+)", budget) == [custom.side_max]
    seed = properties["seed"]
    assert _figures(r"(−?\d+) … ([\d,]+)", table["seed"][3]) == [seed["minimum"], seed["maximum"]]
    checked = next(
        line for line in _page_lines() if line.startswith("- Validation before spending")
    )
    assert _figures(r"≤ ([\d,]+) characters", checked) == [properties["prompt"]["maxLength"]]
    count = properties["num_images"]
    assert _figures(r"`num_images` (\d+)–(\d+)", checked) == [count["minimum"], count["maximum"]]


def _page_lines() -> list[str]:
    return CONTRACT_PAGE.read_text(encoding="utf-8").splitlines()


def test_the_catalogue_serves_the_fixtures_unless_a_test_narrows_them() -> None:
    served = models(EmulatorConfig())
    for api_id in (SEEDREAM, SEEDREAM_EDIT, FLUX):
        assert served[api_id].schema == run_schema(api_id)
    narrowed = models(EmulatorConfig(schema_overrides={"num_images": {"maximum": 4}}))
    assert narrowed[SEEDREAM].schema["properties"]["num_images"]["maximum"] == 4
    assert run_schema(SEEDREAM)["properties"]["num_images"]["maximum"] == 6, "a copy changed"


# --- The app's rules agree with the emulator's ------------------------------------------

# Runs are generated from the emulator's fixtures: each field at and just beyond each limit
# the fixture states, well within it, and now and then of the wrong JSON type (JSON null
# is left out: the page says nothing of it, and the app never sends one). A limit the app
# has wrong is then met from one side or the other.
_WRONG_TYPES: st.SearchStrategy[Any] = st.one_of(
    st.booleans(), st.floats(-10, 10), st.text(max_size=3), st.just([])
)
_UNKNOWN = st.sampled_from([None] * 8 + ["style", "aspect_ratio"])
_ABSENT = object()


def _around(low: int, high: int) -> st.SearchStrategy[int]:
    return st.sampled_from([low - 1, low, low + 1, high - 1, high, high + 1]) | st.integers(
        low, high
    )


def _field_values(prop: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values for one field: mostly of its type, around its limits; or mistyped."""
    kind = prop.get("type")
    right: st.SearchStrategy[Any]
    if "enum" in prop:
        right = st.sampled_from([*prop["enum"], "auto_8K", ""])
    elif kind == "string":
        lengths = _around(prop.get("minLength", 0), prop.get("maxLength", 60))
        right = st.builds(
            lambda n, pad: pad + "x" * n + pad, lengths, st.sampled_from(["", "", " "])
        )
        right = _mostly(right, st.sampled_from([" ", "  \t"]))
    elif kind in ("integer", "number"):
        right = _around(int(prop.get("minimum", -5)), int(prop.get("maximum", 100)))
        if kind == "number":
            right |= st.floats(prop.get("minimum", -5) - 1, prop.get("maximum", 100) + 1)
    elif kind == "boolean":
        right = st.booleans()
    elif kind == "array" and prop.get("items", {}).get("type") == "object":
        right = st.lists(st.fixed_dictionaries({"path": st.just("a.safetensors")}), max_size=3)
    else:
        sizes = _around(prop.get("minItems", 0), prop.get("maxItems", 12))
        right = sizes.map(lambda n: ["data:image/png;base64,AAAA"] * max(0, n))
    return _mostly(right, _WRONG_TYPES)


def _mostly(right: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`right` in about nine runs of ten, else `wrong`."""
    return st.tuples(st.integers(0, 9), right, wrong).map(lambda d: d[1] if d[0] < 9 else d[2])


def _sometimes(values: st.SearchStrategy[Any], tenths: int) -> st.SearchStrategy[Any]:
    """The values, in about `tenths` runs of ten; else the field is left out."""
    return st.tuples(st.integers(0, 9), values).map(lambda d: d[1] if d[0] < tenths else _ABSENT)


def _bodies(api_id: str, *, leave: tuple[str, ...] = ()) -> st.SearchStrategy[dict[str, Any]]:
    """Run bodies for a model: required fields nearly always, others now and then, and now
    and then a field its schema does not list; the fields in `leave` left out."""
    schema = run_schema(api_id)
    fields = {
        name: _sometimes(_field_values(prop), 9 if name in schema["required"] else 3)
        for name, prop in schema["properties"].items()
        if name not in leave
    }
    return st.tuples(st.fixed_dictionaries(fields), _UNKNOWN).map(_assembled)


def _assembled(drawn: tuple[dict[str, Any], str | None]) -> dict[str, Any]:
    values, unknown = drawn
    body = {name: value for name, value in values.items() if value is not _ABSENT}
    if unknown is not None and unknown not in body:
        body[unknown] = "1:1"
    return body


def _seedream_sizes() -> st.SearchStrategy[dict[str, Any]]:
    """How a Seedream run asks for its size: a named size or none, a custom size with both
    sides (around the pixel budget), or any mix of the three fields."""
    custom = contract().custom_size
    properties = run_schema(SEEDREAM)["properties"]
    named = [size for size in properties[custom.size_field]["enum"] if size != custom.size_word]
    low = custom.total_pixels_min // custom.side_max
    sides = _around(low, custom.side_max) | st.sampled_from([1440, 2048, 2560])
    mixed = {name: _sometimes(_field_values(properties[name]), 5) for name in custom.sides}
    mixed[custom.size_field] = _sometimes(_field_values(properties[custom.size_field]), 5)
    return st.one_of(
        st.just({}),
        st.sampled_from(named).map(lambda size: {custom.size_field: size}),
        st.tuples(sides, sides).map(
            lambda wh: {
                custom.size_field: custom.size_word,
                custom.sides[0]: wh[0],
                custom.sides[1]: wh[1],
            }
        ),
        st.fixed_dictionaries(mixed).map(
            lambda drawn: {k: v for k, v in drawn.items() if v is not _ABSENT}
        ),
    )


# A Seedream run a person (or a script) might send.
SEEDREAM_BODIES = st.tuples(
    _bodies(SEEDREAM, leave=(*contract().custom_size.sides, contract().custom_size.size_field)),
    _seedream_sizes(),
).map(lambda parts: {**parts[0], **parts[1]})


def _short_id(body: Mapping[str, Any]) -> str:
    return _short(body).replace(" ", "")


def app_sends(body: dict[str, Any]) -> dict[str, Any] | None:
    """The body the app sends for this run under its built-in rules, or None if it refuses."""
    try:
        params = parse_run(body, builtin_record=True)
        check_run(params, SEEDREAM_RULES)
    except InvalidParameters:
        return None
    return params.upstream_body()


def refused_for_control_characters(body: dict[str, Any]) -> bool:
    """Whether the app refuses this run only for control characters in its text: a rule of
    the app's own (app/core/text.py), stricter than PixelDojo's on purpose, so PostgreSQL,
    which cannot store NUL, and the gallery never hold them."""
    try:
        check_run(parse_run(body, builtin_record=True), SEEDREAM_RULES)
    except InvalidParameters as refused:
        messages = list(refused.field_errors.values())
        return bool(messages) and all("control characters" in m for m in messages)
    return False


def assert_the_app_agrees(body: dict[str, Any]) -> str:
    """What the app sends, the contract takes; what the app refuses, the contract refuses
    (but for the app's own rule on control characters). Which it was."""
    schema = run_schema(SEEDREAM)
    sent = app_sends(body)
    if sent is None and refused_for_control_characters(body):
        return "the app refuses its control characters"
    if sent is not None:
        refused = refusal(SEEDREAM, schema, sent, strict=True)
        assert refused is None, f"the app sends {_short(sent)}; by the contract: {refused}"
        return "the app sends it"
    taken = refusal(SEEDREAM, schema, body, strict=True) is None
    assert not taken, f"the app refuses {_short(body)}, which the contract allows"
    return "the app refuses it"


def _edges(prop: Mapping[str, Any]) -> list[Any]:
    """A field's values at and just beyond each limit its fixture states."""
    found: list[Any] = []
    if "enum" in prop:
        found += [*prop["enum"], "not-one-of-them"]
    for low_word, high_word, make in (
        ("minimum", "maximum", lambda n: n),
        ("minLength", "maxLength", lambda n: "x" * max(0, n)),
        ("minItems", "maxItems", lambda n: ["data:image/png;base64,AAAA"] * max(0, n)),
    ):
        for word, step in ((low_word, -1), (high_word, 1)):
            if word in prop:
                found += [make(prop[word]), make(prop[word] + step)]
    return found


def _seedream_edges() -> list[dict[str, Any]]:
    """A plain run with one field at an edge; custom sizes at the edges of the budget."""
    plain = {"prompt": "a fox"}
    custom = contract().custom_size
    properties = run_schema(SEEDREAM)["properties"]
    bodies = [
        {**plain, name: value}
        for name, prop in properties.items()
        if name not in custom.sides
        for value in _edges(prop)
    ]
    for width in (custom.side_max, 2560, *_edges(properties[custom.sides[0]])):
        least = -(-custom.total_pixels_min // width)  # the fewest rows within the budget
        for height in (least - 1, least, custom.side_max, custom.side_max + 1):
            sides = dict(zip(custom.sides, (width, height), strict=True))
            bodies.append({**plain, custom.size_field: custom.size_word, **sides})
            bodies.append({**plain, **sides})
    bodies.append({**plain, custom.size_field: custom.size_word})
    return bodies


@pytest.mark.parametrize("body", _seedream_edges(), ids=_short_id)
def test_at_each_limit_the_contract_states_the_app_s_built_in_rules_agree(
    body: dict[str, Any],
) -> None:
    assert SEEDREAM_RULES.model == DEFAULT_MODEL == SEEDREAM
    assert_the_app_agrees(body)


@AGREEMENT
@given(body=SEEDREAM_BODIES)
def test_on_any_seedream_run_the_app_s_built_in_rules_agree_with_the_contract_s(
    body: dict[str, Any],
) -> None:
    event(assert_the_app_agrees(body))


OTHER_RUNS = st.one_of(
    *[st.tuples(st.just(api_id), _bodies(api_id)) for api_id in (SEEDREAM_EDIT, FLUX)]
)


@AGREEMENT
@given(run=OTHER_RUNS)
def test_the_app_s_reading_of_a_live_schema_agrees_with_the_contract_s_on_other_models(
    run: tuple[str, dict[str, Any]],
) -> None:
    """Other models' rules are their live schema as the app reads it (app/domain/rules.py):
    on the emulator's own schemas, the app refuses exactly what the emulator refuses."""
    api_id, body = run
    schema = run_schema(api_id)
    app_problems = ModelRules.from_json_schema(schema, model=api_id).check(body)
    emulator_refusal = refusal(api_id, schema, body, strict=True)
    event(f"{api_id}: " + ("refused" if emulator_refusal else "taken"))
    assert bool(app_problems) == bool(emulator_refusal), (
        f"{api_id} {_short(body)}: the app says {app_problems or 'fine'}, "
        f"the contract {emulator_refusal or 'fine'}"
    )


def _short(body: Mapping[str, Any]) -> str:
    return json.dumps(
        {
            k: (f"{len(v)} characters" if isinstance(v, str) and len(v) > 40 else v)
            for k, v in body.items()
        }
    )


def test_the_emulator_may_not_import_the_app_s_rules() -> None:
    """The import contract that keeps the two sides apart is written down (lint-imports and
    tests/test_layers.py check that it is kept)."""
    config = tomllib.loads((CONTRACT_PAGE.parent.parent / "pyproject.toml").read_text("utf-8"))
    forbidding = [
        entry
        for entry in config["tool"]["importlinter"]["contracts"]
        if entry["type"] == "forbidden" and entry["source_modules"] == ["app.emulator"]
    ]
    assert len(forbidding) == 1
    assert set(forbidding[0]["forbidden_modules"]) >= {
        "app.domain.rules",
        "app.domain.runs",
        "app.domain.model_params",
        "app.domain.parameters",
    }

"""The emulator's fixtures say what docs/upstream-contract.md says.

The emulator checks runs by JSON Schema files of its own (app/emulator/schemas/), never by
the app's rules (an import-linter contract in pyproject.toml). Here the files are held to
the page, keyword for keyword; tests/test_contract_agreement.py holds the app's rules to
the emulator's verdicts on generated runs.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from app.domain.parameters import NAMED_SIZE_PIXELS
from app.emulator.catalogue import FLUX, SEEDREAM, SEEDREAM_EDIT, models
from app.emulator.config import EmulatorConfig
from app.emulator.contract import SCHEMA_DIR, contract, run_schema

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

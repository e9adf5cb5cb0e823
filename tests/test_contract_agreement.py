"""The app's built-in rules, and its reading of a live schema, agree with the emulator's
verdicts on generated runs: a limit mistyped in app/domain/parameters.py is a run the app
sends and PixelDojo refuses, or one it refuses and PixelDojo would take, and fails here.
The emulator's own fixtures are held to docs/upstream-contract.md in
tests/test_emulator_contract.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.core.errors import InvalidParameters
from app.core.model_id import DEFAULT_MODEL
from app.domain.rules import SEEDREAM_RULES, ModelRules
from app.domain.runs import check_run, parse_run
from app.emulator.catalogue import FLUX, SEEDREAM, SEEDREAM_EDIT
from app.emulator.contract import contract, run_schema
from app.emulator.run_rules import refusal

# Generated runs are many and cheap; derandomized, so a run of the suite is a run of the same.
AGREEMENT = settings(
    max_examples=600,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


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

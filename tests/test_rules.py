"""The rules in force, read from JSON Schema: the live schema where it speaks, the built-in
rules where it is silent, never looser than the live schema."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.parameters import IMAGE_SIZES, PROMPT_MAX_CHARS, GenerationParams
from app.domain.presets import PRESETS_BY_SLUG, preset_run
from app.domain.rule_changes import differences
from app.domain.rules import (
    SEEDREAM_RULES,
    ModelRules,
    SchemaUnreadable,
    builtin_rules,
    default_size,
    effective,
    form_limits,
    offered_sizes,
    seed_range,
)
from app.domain.runs import validate_parameters


def live(schema: dict[str, Any]) -> ModelRules:
    return ModelRules.from_json_schema(schema, model="seedream-4")


NARROW: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "maxLength": 2000},
        "image_size": {"type": "string", "enum": [s for s in IMAGE_SIZES if s != "auto_4K"]},
        "customWidth": {"type": "integer"},
        "customHeight": {"type": "integer"},
        "seed": {"type": "integer"},
        "num_images": {"type": "integer", "minimum": 1, "maximum": 4},
    },
    "required": ["prompt"],
    "additionalProperties": False,
}


def test_the_built_in_rules_are_the_record_s_own_schema() -> None:
    assert set(SEEDREAM_RULES.properties) == set(GenerationParams.model_fields)
    assert SEEDREAM_RULES.keyword("prompt", "maxLength") == PROMPT_MAX_CHARS
    assert SEEDREAM_RULES.enum("image_size") == IMAGE_SIZES
    assert SEEDREAM_RULES.bounds("num_images") == (1, 6)
    assert SEEDREAM_RULES.additional_properties is False
    assert SEEDREAM_RULES.required == frozenset({"prompt"})


@pytest.mark.parametrize(
    "document",
    [
        NARROW,
        {"apiId": "seedream-4", "schema": NARROW},
        {"inputSchema": NARROW},
    ],
    ids=["bare", "wrapped", "inputSchema"],
)
def test_a_schema_is_read_bare_or_wrapped(document: dict[str, Any]) -> None:
    rules = live(document)
    assert rules.bounds("num_images") == (1, 4)
    assert rules.keyword("prompt", "maxLength") == 2000


def test_refs_nullable_any_of_type_lists_const_and_draft_4_bounds_are_understood() -> None:
    rules = live(
        {
            "properties": {
                "size": {"$ref": "#/$defs/Size"},
                "seed": {"anyOf": [{"type": "integer", "maximum": 99}, {"type": "null"}]},
                "count": {"type": ["integer", "null"], "minimum": 0, "exclusiveMaximum": 5},
                "mode": {"const": "fast"},
                "tone": {"anyOf": [{"enum": ["warm", "cool"]}, {"const": "none"}]},
                "old": {"type": "number", "minimum": 1, "exclusiveMinimum": True},
            },
            "$defs": {"Size": {"type": "string", "enum": ["a", "b"]}},
        }
    )
    assert rules.enum("size") == ("a", "b")
    assert rules.bounds("seed") == (None, 99)
    assert rules.bounds("count") == (0, 4)  # exclusive 5, for an integer
    assert rules.enum("mode") == ("fast",)
    assert rules.enum("tone") == ("warm", "cool", "none")
    assert rules.check({"size": "c", "seed": 100, "count": 5, "mode": "slow", "old": 1}) == {
        "size": "must be one of: a, b",
        "seed": "must be at most 99",
        "count": "must be between 0 and 4",
        "mode": "must be one of: fast",
        "old": "must be more than 1",
    }


@pytest.mark.parametrize("document", [{}, {"properties": {}}, [], "<html>", {"schema": "x"}])
def test_an_answer_that_is_no_schema_is_unreadable(document: Any) -> None:
    with pytest.raises(SchemaUnreadable):
        live(document)


def test_the_live_schema_wins_where_it_speaks_and_the_built_in_where_it_is_silent() -> None:
    rules = effective(SEEDREAM_RULES, live(NARROW))
    assert rules.bounds("num_images") == (1, 4)  # live, narrower
    assert rules.keyword("prompt", "maxLength") == 2000  # live
    assert rules.bounds("customWidth") == SEEDREAM_RULES.bounds("customWidth")  # silent: ours
    assert rules.bounds("seed") == SEEDREAM_RULES.bounds("seed")
    assert "auto_4K" not in offered_sizes(rules)
    assert rules.check({"prompt": "a cat", "num_images": 4}) == {}
    assert rules.check({"prompt": "x" * 2001, "num_images": 5, "image_size": "auto_4K"}) == {
        "prompt": "must be at most 2,000 characters (this is 2,001)",
        "num_images": "must be between 1 and 4",
        "image_size": "must be one of: " + ", ".join(s for s in IMAGE_SIZES if s != "auto_4K"),
    }
    # Seedream's own checks still hold under a live schema.
    assert "customHeight" in rules.check(
        {"prompt": "a", "image_size": "custom", "customWidth": 1000, "customHeight": 1000}
    )


def test_a_wider_live_schema_is_followed_too() -> None:
    wide = {**NARROW, "properties": {**NARROW["properties"], "num_images": {"maximum": 8}}}
    rules = effective(SEEDREAM_RULES, live(wide))
    assert rules.bounds("num_images") == (1, 8)  # its maximum; our minimum where it is silent
    assert rules.check({"prompt": "a cat", "num_images": 8}) == {}


def test_fields_the_live_schema_leaves_out_are_refused_when_it_forbids_others() -> None:
    without_seed = {**NARROW, "properties": dict(NARROW["properties"])}
    del without_seed["properties"]["seed"]
    rules = effective(SEEDREAM_RULES, live(without_seed))
    assert not rules.allows("seed")
    assert rules.check({"prompt": "a", "seed": 3}) == {"seed": "is not a parameter of this model"}
    assert seed_range(rules) is None, "no seed is drawn for a model that takes none"
    # Allowing other properties, the built-in rule for the field stays in force.
    lenient = effective(SEEDREAM_RULES, live({**without_seed, "additionalProperties": True}))
    assert lenient.bounds("seed") == SEEDREAM_RULES.bounds("seed")
    assert "seed" in lenient.check({"prompt": "a", "seed": 2**31})


def test_required_fields_come_from_the_live_schema_when_it_lists_them() -> None:
    rules = effective(SEEDREAM_RULES, live({**NARROW, "required": ["prompt", "image_size"]}))
    assert rules.check({"prompt": "a"}) == {"image_size": "is required"}
    silent = {key: value for key, value in NARROW.items() if key != "required"}
    assert effective(SEEDREAM_RULES, live(silent)).required == frozenset({"prompt"})


def test_differences_name_every_change_from_the_built_in_rules() -> None:
    changed = {
        **NARROW,
        "properties": {**NARROW["properties"], "aspect_ratio": {"type": "string"}},
        "required": ["prompt", "num_images"],
    }
    found = differences(live(changed), SEEDREAM_RULES)
    lines = [change.text for change in found]
    assert "num_images: maximum 4 (built-in: 6)" in lines
    assert "prompt: maxLength 2,000 (built-in: 4,000)" in lines
    assert "image_size: enum lacks auto_4K" in lines
    assert "aspect_ratio: only in the live schema (string)" in lines
    assert "required: num_images, prompt (built-in: prompt)" in lines
    # For scripts, each as a record: the field, the keyword, and both sides' values.
    records = [change.to_json() for change in found]
    assert {
        "field": "num_images",
        "keyword": "maximum",
        "live": 4,
        "builtin": 6,
        "text": "num_images: maximum 4 (built-in: 6)",
    } in records
    enum = next(record for record in records if record["keyword"] == "enum")
    assert enum["field"] == "image_size" and "auto_4K" in enum["builtin"]
    assert "auto_4K" not in enum["live"]
    same = live(GenerationParams.model_json_schema())
    assert differences(same, SEEDREAM_RULES) == []


def test_an_enum_in_another_order_is_no_difference() -> None:
    schema = GenerationParams.model_json_schema()
    schema["properties"]["image_size"]["enum"] = list(reversed(IMAGE_SIZES))
    assert differences(live(schema), SEEDREAM_RULES) == []


def test_a_live_schema_without_the_default_size_defaults_to_the_first_it_allows() -> None:
    allowed = ["square_hd", "landscape_16_9", "custom"]
    schema = GenerationParams.model_json_schema()
    schema["properties"]["image_size"]["enum"] = allowed  # its default is still auto_2K
    rules = effective(SEEDREAM_RULES, live(schema))
    assert default_size(rules) == "square_hd"
    assert rules.keyword("image_size", "default") == "square_hd", "as /api/rules shows it"
    # A prompt alone is a run at that size, and the rules in force accept it.
    params = validate_parameters({"prompt": "a cat"}, rules)
    assert params.image_size == "square_hd"
    assert default_size(SEEDREAM_RULES) == "auto_2K"
    with_ours = {**schema, "properties": {**schema["properties"]}}
    with_ours["properties"]["image_size"] = {"type": "string", "enum": ["square", "auto_2K"]}
    assert default_size(effective(SEEDREAM_RULES, live(with_ours))) == "auto_2K"


def test_a_preset_whose_size_the_schema_forbids_runs_at_the_nearest_allowed_size() -> None:
    schema = GenerationParams.model_json_schema()
    schema["properties"]["image_size"]["enum"] = ["square_hd", "landscape_16_9", "portrait_16_9"]
    rules = effective(SEEDREAM_RULES, live(schema))
    cyberpunk = preset_run(PRESETS_BY_SLUG["cyberpunk-street"], rules)
    assert cyberpunk.params is not None and cyberpunk.params.image_size == "portrait_16_9"
    assert cyberpunk.note is None, "its own size is allowed"
    wedding = preset_run(PRESETS_BY_SLUG["wedding-portrait"], rules)  # portrait_4_3
    assert wedding.params is not None
    assert wedding.params.image_size == "portrait_16_9", "the nearest in shape"
    assert wedding.note == (
        "Wedding portrait runs at Portrait 9:16: PixelDojo's schema does not allow its Portrait 3:4"
    )
    schema["properties"]["image_size"]["enum"] = ["custom"]
    nothing = preset_run(
        PRESETS_BY_SLUG["wedding-portrait"], effective(SEEDREAM_RULES, live(schema))
    )
    assert not nothing.available and "unavailable" in (nothing.note or "")


def test_the_form_s_limits_and_sizes_follow_the_rules() -> None:
    rules = effective(SEEDREAM_RULES, live(NARROW))
    limits = form_limits(rules)
    assert limits["num_images_max"] == 4
    assert limits["prompt_max"] == 2000
    assert limits["side_max"] == form_limits(SEEDREAM_RULES)["side_max"]
    no_custom = {**NARROW, "properties": dict(NARROW["properties"])}
    del no_custom["properties"]["customWidth"]
    assert "custom" not in offered_sizes(effective(SEEDREAM_RULES, live(no_custom)))


def test_other_models_fall_back_to_the_record_s_rules_under_their_own_name() -> None:
    other = builtin_rules("some-other-model")
    assert other.model == "some-other-model"
    assert other.properties == SEEDREAM_RULES.properties

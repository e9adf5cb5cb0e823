"""Presets as a grid axis: which preset each value names (a built-in one, or a team's by
`team:<id>`), what it sets in a cell, and what the plan says of them.

A preset gives a cell its size, and its prompt only when the request has none of its
own (app/domain/grid_plans.py applies them). A preset whose size the rules in force do
not allow runs at the nearest size they do, and the plan's notes say so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from app.domain.grid_axes import TEAM_PRESET_PREFIX
from app.domain.parameters import CUSTOM_SIZE, size_label
from app.domain.presets import PRESETS_BY_SLUG, nearest_size
from app.domain.rules import ModelRules, offered_sizes


@dataclass(frozen=True)
class PresetChoice:
    """A preset as an axis value: what it sets, its label, and the slug a job records."""

    value: str
    label: str
    slug: str | None
    prompt: str
    image_size: str
    custom_width: int | None = None
    custom_height: int | None = None


# Finds a team preset by its id (None: there is none); the caller owns the database.
TeamPresetLookup = Callable[[int], PresetChoice | None]


def no_team_presets(_: int) -> PresetChoice | None:
    return None


def builtin_preset(slug: str) -> PresetChoice | None:
    preset = PRESETS_BY_SLUG.get(slug)
    if preset is None:
        return None
    return PresetChoice(
        value=slug,
        label=preset.name,
        slug=slug,
        prompt=preset.prompt,
        image_size=preset.image_size,
    )


def preset_choice(value: int | str, team_preset: TeamPresetLookup) -> PresetChoice:
    """The preset an axis value names; ValueError saying why there is none."""
    text = str(value).strip()
    if text.startswith(TEAM_PRESET_PREFIX):
        number = text.removeprefix(TEAM_PRESET_PREFIX)
        found = team_preset(int(number)) if number.isdecimal() and len(number) < 19 else None
        if found is None:
            raise ValueError(f"there is no team preset {number}")
        return found
    found = builtin_preset(text)
    if found is None:
        raise ValueError(f"no preset is called {text!r}; one of: {', '.join(PRESETS_BY_SLUG)}")
    return found


def preset_notes(*, varied: bool, own_prompt: str) -> list[str]:
    """What the plan says of a preset axis: whose prompt each cell draws."""
    if not varied:
        return []
    if own_prompt:
        return [f"Every cell draws the prompt “{own_prompt}”; each preset gives its size."]
    return ["Each preset draws its own prompt at its own size."]


def fitted(
    choices: Sequence[PresetChoice], rules: ModelRules, notes: list[str]
) -> tuple[PresetChoice, ...]:
    """Each preset at a size the rules allow: the nearest in shape when its own is not
    (said in `notes`)."""
    named = [size for size in offered_sizes(rules) if size != CUSTOM_SIZE]
    kept = []
    for choice in choices:
        if choice.image_size == CUSTOM_SIZE or not named or choice.image_size in named:
            kept.append(choice)
            continue
        nearest = nearest_size(choice.image_size, named)
        notes.append(
            f"{choice.label} runs at {size_label(nearest)}: PixelDojo's schema does not allow "
            f"its {size_label(choice.image_size)}."
        )
        kept.append(replace(choice, image_size=nearest))
    return tuple(kept)

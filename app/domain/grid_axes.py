"""How a grid is asked for: its axes as typed (`seed=1,2,3`) and as JSON, and the request.

Kept apart from the planning (app/domain/grid_plans.py) so that the command line can read axes
without loading the server's submission path.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from typing import Annotated, Any, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from app.core.model_id import ModelId
from app.core.text import LINE_PATTERN, Line, is_stored, line_problem
from app.domain.parameters import GenerationParams

AXIS_NAMES = ("x", "y", "z")
# One grid is at most this many jobs: the cost shown first must stay something a
# person reads and means, and one page shows (and one stream watches) them all.
MAX_CELLS = 50
MAX_VALUES = MAX_CELLS
VALUE_MAX_CHARS = 200
TEAM_PRESET_PREFIX = "team:"
RANDOM_SEEDS = re.compile(r"^\s*(?:random\s*[:*x ]\s*(\d+)|(\d+)\s*random)\s*$", re.IGNORECASE)
CUSTOM_SIZE_TEXT = re.compile(r"^\s*(\d{1,5})\s*[x×*]\s*(\d{1,5})\s*$", re.IGNORECASE)

PRESET = "preset"
SEED = "seed"
SIZE = "image_size"
PROMPT = "prompt"
WIDTH = "customWidth"
HEIGHT = "customHeight"

# Other names people type for the same parameter.
ALIASES = {
    "presets": PRESET,
    "seeds": SEED,
    "size": SIZE,
    "sizes": SIZE,
    "width": WIDTH,
    "height": HEIGHT,
    "images": "num_images",
    "n": "num_images",
    "sr": PROMPT,
    "prompt_sr": PROMPT,
}
TITLES = {
    PRESET: "Preset",
    SEED: "Seed",
    SIZE: "Size",
    "num_images": "Images",
    WIDTH: "Width",
    HEIGHT: "Height",
}


def numeric_parameters() -> tuple[str, ...]:
    """The run's whole-number parameters, read from the one place they are declared."""
    names = []
    for name, info in GenerationParams.model_fields.items():
        kinds = get_args(info.annotation) or (info.annotation,)
        if any(kind is int or get_args(kind)[:1] == (int,) for kind in kinds):
            names.append(name)
    return tuple(names)


def axis_parameters() -> tuple[str, ...]:
    """Every parameter an axis can vary, in the order a form offers them."""
    numeric = (name for name in numeric_parameters() if name != SEED)
    return (PRESET, SEED, SIZE, PROMPT, *numeric)


def canonical_parameter(name: str) -> str | None:
    name = name.strip()
    known = axis_parameters()
    if name in known:
        return name
    folded = {param.lower(): param for param in known}
    name = ALIASES.get(name.lower(), name.lower())
    return name if name in known else folded.get(name)


# An axis value typed as text: a line, checked by AxisSpec itself (see `_values_short`).
AxisText = Annotated[str, Field(json_schema_extra={"pattern": LINE_PATTERN})]


class AxisSpec(BaseModel):
    """One axis as asked for: the parameter it varies and its values, or for seeds,
    how many to draw at random."""

    model_config = ConfigDict(extra="forbid")

    param: Line = Field(
        max_length=40, description="preset, seed, image_size, prompt or a numeric parameter"
    )
    values: list[StrictInt | AxisText] = Field(
        default_factory=list,
        max_length=MAX_VALUES,
        description="The values; for prompt, the word to find and then what replaces it",
    )
    random: int | None = Field(
        None, ge=1, le=MAX_VALUES, description="For seed: draw this many at random instead"
    )

    @field_validator("values")
    @classmethod
    def _values_short(cls, values: list[int | str], info: ValidationInfo) -> list[int | str]:
        for value in values:
            if isinstance(value, str) and len(value) > VALUE_MAX_CHARS:
                raise ValueError(f"each value must be at most {VALUE_MAX_CHARS} characters")
            # Here, not in the type: a union would name its members in the error.
            if isinstance(value, str) and not is_stored(info) and (problem := line_problem(value)):
                raise ValueError(problem)
        return values

    @classmethod
    def parse(cls, text: str) -> AxisSpec:
        """`seed=1,2,3`, `seed=random:3`, `prompt=cat,"a dog",fox`; ValueError says what's wrong."""
        name, equals, rest = text.partition("=")
        if not equals or not name.strip():
            raise ValueError(f"{text!r} is not NAME=VALUE,VALUE,... (like seed=1,2,3)")
        return cls.from_text(name, rest)

    @classmethod
    def from_text(cls, param: str, text: str) -> AxisSpec:
        """An axis from a parameter name and its values as typed, separated by commas
        (values with a comma in them in double quotes, as in a CSV file)."""
        canonical = canonical_parameter(param) or param.strip()
        found = RANDOM_SEEDS.match(text)
        if canonical == SEED and found:
            return cls(param=canonical, random=int(found.group(1) or found.group(2)))
        values = [value.strip() for value in next(csv.reader([text], skipinitialspace=True), [])]
        try:
            return cls(param=canonical, values=[value for value in values if value])
        except ValidationError as invalid:
            problems = invalid.errors(include_url=False, include_input=False)
            raise ValueError(f"{canonical}: {problems[0]['msg']}") from None

    def as_text(self) -> str:
        """The axis as `parse` reads it."""
        if self.random is not None:
            return f"{self.param}=random:{self.random}"
        return f"{self.param}={values_text(self.values)}"


def values_text(values: Sequence[Any]) -> str:
    """Values separated by commas, quoted where they hold one (as `from_text` reads them)."""
    parts = []
    for value in values:
        text = str(value)
        parts.append('"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text)
    return ", ".join(parts)


class GridRequest(BaseModel):
    """A grid as asked for: base run parameters, then up to three axes that vary them."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="The base run parameters, under the upstream's names; each axis varies one",
    )
    axes: list[AxisSpec] = Field(
        min_length=1, max_length=len(AXIS_NAMES), description="x (columns), y (rows), z (tabs)"
    )
    model: ModelId | None = Field(None, description="Model apiId; default: the configured one")
    preset: Line | None = Field(None, description="Slug of the preset the base came from")
    remix_of: int | None = Field(None, ge=1, description="The grid this one changes")

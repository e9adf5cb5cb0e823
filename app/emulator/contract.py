"""The contract's facts as the emulator holds them: fixtures shipped with it, never the app's.

Each model's run schema is a JSON file in app/emulator/schemas/, written from
docs/upstream-contract.md; so is what a schema cannot say (`contract.json`: the pixel
sizes of the named sizes, Seedream's custom-size rules, the fields a run may carry
besides its model's parameters). The app has rules of its own for the same facts
(app/domain/); the emulator never reads them, so a mistake in them is refused here
instead of being shared by both sides: tests/test_emulator_contract.py holds the
files to the page, and tests/test_contract_agreement.py the app's rules to the files.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


class FixtureMissing(LookupError):
    """No schema file ships for this model (only the catalogue's own models have one)."""


@dataclass(frozen=True)
class CustomSize:
    """How a model takes a size in pixels: a size word, two sides, and a pixel budget."""

    models: frozenset[str]
    size_field: str
    size_word: str
    sides: tuple[str, str]
    total_pixels_min: int
    total_pixels_max: int
    aspect_max: float
    side_max: int

    def problem(self, width: int, height: int) -> str | None:
        """Why a custom size is outside the budget, or None if it fits."""
        total = width * height
        if not self.total_pixels_min <= total <= self.total_pixels_max:
            return (
                f"width × height is {total:,} pixels; it must be between "
                f"{self.total_pixels_min:,} and {self.total_pixels_max:,}"
            )
        if max(width, height) > self.side_max:
            return f"each side must be at most {self.side_max:,} pixels"
        if max(width / height, height / width) > self.aspect_max:
            return (
                f"the aspect ratio must be between 1:{self.aspect_max:g} and {self.aspect_max:g}:1"
            )
        return None


@dataclass(frozen=True)
class Contract:
    """What the contract states beyond each model's run schema."""

    named_sizes: dict[str, tuple[int, int]]
    custom_size: CustomSize
    # Fields any run may carry besides its model's parameters (webhook_url).
    run_fields: frozenset[str]
    # Fields accepted and ignored unless the emulator is strict (aspect_ratio).
    tolerated_fields: frozenset[str]


def _read(name: str) -> dict[str, Any]:
    loaded = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{name} is not a JSON object")
    return loaded


@cache
def _schema(api_id: str) -> dict[str, Any]:
    path = SCHEMA_DIR / f"{api_id}.json"
    if not path.is_file():
        raise FixtureMissing(api_id)
    return _read(path.name)


def run_schema(api_id: str) -> dict[str, Any]:
    """A model's run schema, as its fixture states it (a copy: callers may change it)."""
    return copy.deepcopy(_schema(api_id))


@cache
def contract() -> Contract:
    """The facts in `contract.json`, read once."""
    raw = _read("contract.json")
    custom = raw["custom_size"]
    width, height = custom["sides"]
    return Contract(
        named_sizes={
            str(name): (int(size[0]), int(size[1])) for name, size in raw["named_sizes"].items()
        },
        custom_size=CustomSize(
            models=frozenset(custom["models"]),
            size_field=str(custom["size_field"]),
            size_word=str(custom["size_word"]),
            sides=(str(width), str(height)),
            total_pixels_min=int(custom["total_pixels_min"]),
            total_pixels_max=int(custom["total_pixels_max"]),
            aspect_max=float(custom["aspect_max"]),
            side_max=int(custom["side_max"]),
        ),
        run_fields=frozenset(raw["run_fields"]),
        tolerated_fields=frozenset(raw["tolerated_fields"]),
    )

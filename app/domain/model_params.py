"""Runs of models other than Seedream: their values under their schema's own names.

Seedream's runs are the hand-made record `GenerationParams` (app/domain/parameters.py).
Any other model's run is `ModelParams`: the values as typed, already JSON types,
checked by the rules read from that model's live schema (app/domain/rules.py) and sent
exactly as they are. Both answer the same questions (`RunParams`), so every path
that submits treats them alike: the body sent, the columns a job keeps for
listing and filtering, the seed, the number of images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.parameters import CREDITS_PER_IMAGE, GenerationParams

# Where other models keep what the job columns list, in order of preference.
PROMPT_FIELDS = ("prompt", "text", "caption")
SIZE_FIELDS = ("image_size", "aspect_ratio", "size", "resolution")
IMAGE_COUNT_FIELDS = ("num_images", "num_outputs", "number_of_images", "n", "batch_size")
# The job row's image_size column.
SIZE_COLUMN_CHARS = 32


@dataclass(frozen=True)
class ModelParams:
    """One run of a model known only by its schema."""

    body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        found = _first(self.body, PROMPT_FIELDS, str)
        return found.strip() if isinstance(found, str) else ""

    @property
    def image_size(self) -> str:
        found = _first(self.body, SIZE_FIELDS, (str, int, float))
        return "" if found is None else str(found)[:SIZE_COLUMN_CHARS]

    @property
    def seed(self) -> int | None:
        seed = self.body.get("seed")
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else None

    @property
    def num_images(self) -> int:
        count = _first(self.body, IMAGE_COUNT_FIELDS, int)
        return count if isinstance(count, int) and count >= 1 else 1

    @property
    def estimated_credits(self) -> int:
        return self.num_images * CREDITS_PER_IMAGE

    def upstream_body(self) -> dict[str, Any]:
        return dict(self.body)

    def values(self) -> dict[str, Any]:
        return dict(self.body)

    def columns(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "image_size": self.image_size,
            "custom_width": None,
            "custom_height": None,
            "seed": self.seed,
            "num_images": self.num_images,
        }

    def with_seed(self, seed: int) -> ModelParams:
        return ModelParams({**self.body, "seed": seed})


def _first(body: Mapping[str, Any], names: tuple[str, ...], kinds: Any) -> Any:
    for name in names:
        value = body.get(name)
        if isinstance(value, kinds) and not isinstance(value, bool):
            return value
    return None


# A run of any model: what every submitting path takes.
RunParams = GenerationParams | ModelParams


def run_from_body(body: Mapping[str, Any], *, builtin_record: bool) -> RunParams:
    """A stored upstream body read back as the run it was (for a remix, new seed...)."""
    if builtin_record:
        return GenerationParams.from_body(body)
    return ModelParams(dict(body))

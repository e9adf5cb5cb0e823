"""The Seedream 4.5 run parameters: the record, its built-in rules and cost, in one place.

`GenerationParams` is the parameter record, declared once: the upstream's own field
names (`customWidth`, `num_images`), so a request body can be copied between this app
and PixelDojo unchanged, and the built-in rules (enums, ranges, lengths) as the JSON
Schema keywords of each field. The record itself checks only types; what a run may
ask for is decided by the effective rules (app/domain/rules.py): PixelDojo's live schema
where it speaks, these built-in rules where it is silent.

The mapping between a job and its upstream body lives here too, once:
`upstream_body()` is the exact body sent (stored as `Job.request_body`), `from_body()`
reads it back, and `RecordedParameters.from_columns()` reads the columns a job row
keeps for filtering.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from app.core.text import STORED, Text

PROMPT_MAX_CHARS = 4000

# The named sizes, in the order the form offers them.
IMAGE_SIZES: tuple[str, ...] = (
    "auto_2K",
    "auto_4K",
    "square_hd",
    "square",
    "portrait_4_3",
    "portrait_16_9",
    "landscape_4_3",
    "landscape_16_9",
    "custom",
)
DEFAULT_IMAGE_SIZE = "auto_2K"
CUSTOM_SIZE = "custom"

# Pixel sizes of the named sizes. PixelDojo documents none of them; these are
# our inference from fal's Seedream 4.5 enum scaled into the model's documented
# pixel budget. They drive the emulator's output, the layout placeholders and
# the form's shape previews, never what is sent upstream (only the name is).
NAMED_SIZE_PIXELS: dict[str, tuple[int, int]] = {
    "auto_2K": (2048, 2048),
    "auto_4K": (4096, 4096),
    "square_hd": (2048, 2048),
    "square": (1920, 1920),
    "portrait_4_3": (1728, 2304),
    "portrait_16_9": (1440, 2560),
    "landscape_4_3": (2304, 1728),
    "landscape_16_9": (2560, 1440),
}

IMAGE_SIZE_LABELS: dict[str, str] = {
    "auto_2K": "Auto 2K",
    "auto_4K": "Auto 4K",
    "square_hd": "Square HD",
    "square": "Square",
    "portrait_4_3": "Portrait 3:4",
    "portrait_16_9": "Portrait 9:16",
    "landscape_4_3": "Landscape 4:3",
    "landscape_16_9": "Landscape 16:9",
    "custom": "Custom size",
}

# The same, short enough to sit under a size's shape in the form.
IMAGE_SIZE_SHORT_LABELS: dict[str, str] = {
    "auto_2K": "2K",
    "auto_4K": "4K",
    "square_hd": "1:1 HD",
    "square": "1:1",
    "portrait_4_3": "3:4",
    "portrait_16_9": "9:16",
    "landscape_4_3": "4:3",
    "landscape_16_9": "16:9",
    "custom": "Own",
}

SIDE_MAX = 4096
TOTAL_PIXELS_MIN = 2560 * 1440
TOTAL_PIXELS_MAX = 4096 * 4096
ASPECT_RATIO_MAX = 16.0
# The smallest side any size within the pixel budget can have.
SIDE_MIN = math.ceil(TOTAL_PIXELS_MIN / SIDE_MAX)

SEED_MIN = -1
SEED_MAX = 2_147_483_647
# The seeds the app draws when the person leaves the seed random: ModelArk's range
# without its "random" value, so every image records the seed that made it.
DRAWN_SEED_MIN = 0

NUM_IMAGES_MIN = 1
NUM_IMAGES_MAX = 6

# The contract's only example charges 1 credit for one image; whether larger
# sizes cost more is unknown, so the estimate is per image and the figure the
# upstream reports is what gets stored.
CREDITS_PER_IMAGE = 1


def _rules(**keywords: Any) -> Any:
    """A field's built-in rules as JSON Schema keywords (app/domain/rules.py enforces them)."""
    return {"json_schema_extra": keywords}


class GenerationParams(BaseModel):
    """One Seedream run under the upstream's field names: the parameter record.

    Types are checked here; the limits in each field's JSON Schema are the built-in
    rules, enforced (or overridden by PixelDojo's live schema) by app/domain/rules.py.
    """

    model_config = ConfigDict(extra="forbid")

    prompt: Text = Field(
        description="What to draw", **_rules(minLength=1, maxLength=PROMPT_MAX_CHARS)
    )
    image_size: str = Field(
        DEFAULT_IMAGE_SIZE, description="Named size, or custom", **_rules(enum=list(IMAGE_SIZES))
    )
    customWidth: StrictInt | None = Field(
        None,
        description="Width in pixels when image_size is custom",
        **_rules(minimum=SIDE_MIN, maximum=SIDE_MAX),
    )
    customHeight: StrictInt | None = Field(
        None,
        description="Height in pixels when image_size is custom",
        **_rules(minimum=SIDE_MIN, maximum=SIDE_MAX),
    )
    seed: StrictInt | None = Field(
        None,
        description="Fixed seed; omit it and the app draws one (and records it)",
        **_rules(minimum=SEED_MIN, maximum=SEED_MAX),
    )
    num_images: StrictInt = Field(
        1,
        description="Separate generations",
        **_rules(minimum=NUM_IMAGES_MIN, maximum=NUM_IMAGES_MAX),
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_trimmed(cls, prompt: str) -> str:
        return prompt.strip()

    # --- The one mapping between a run, its upstream body and a job row ------------

    def upstream_body(self) -> dict[str, Any]:
        """The run body exactly as sent upstream: the documented fields and nothing else."""
        body: dict[str, Any] = {"prompt": self.prompt, "image_size": self.image_size}
        if self.image_size == CUSTOM_SIZE:
            body["customWidth"] = self.customWidth
            body["customHeight"] = self.customHeight
        if self.seed is not None:
            body["seed"] = self.seed
        body["num_images"] = self.num_images
        return body

    def values(self) -> dict[str, Any]:
        """Every field set, sent or not (custom sides with a named size are kept, so the
        rules can say they do not apply)."""
        return self.model_dump(exclude_none=True)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> GenerationParams:
        """A stored upstream body read back as the record (fields it does not know are
        left out: they were never the form's)."""
        return cls.model_validate(
            {name: body[name] for name in cls.model_fields if name in body}, context=STORED
        )

    def with_seed(self, seed: int) -> GenerationParams:
        return self.model_copy(update={"seed": seed})

    def columns(self) -> dict[str, Any]:
        """The job row's columns for these parameters (kept for filtering and listing)."""
        return {column: getattr(self, name) for name, column in JOB_COLUMNS.items()}

    @property
    def pixel_size(self) -> tuple[int, int]:
        return pixel_size(self.image_size, self.customWidth, self.customHeight)

    @property
    def estimated_credits(self) -> int:
        return self.num_images * CREDITS_PER_IMAGE


class RecordedParameters(BaseModel):
    """What a job's row keeps of its run, as answered: the record's fields for any model,
    whatever the rules in force when it ran allowed (so no limits are promised here): an
    uploaded image's own size, another model's size value, a live schema's wider range."""

    prompt: str
    image_size: str = Field(description="Named size, custom, or another model's size value")
    customWidth: int | None = None
    customHeight: int | None = None
    seed: int | None = None
    num_images: int

    @classmethod
    def from_columns(cls, row: object) -> RecordedParameters:
        """The parameters of a job row, or of any listing row with its columns."""
        return cls.model_construct(
            **{name: getattr(row, column) for name, column in JOB_COLUMNS.items()}
        )


# The record's fields and the job columns that keep them.
JOB_COLUMNS: dict[str, str] = {
    "prompt": "prompt",
    "image_size": "image_size",
    "customWidth": "custom_width",
    "customHeight": "custom_height",
    "seed": "seed",
    "num_images": "num_images",
}

# The upstream names fields this way; the run body takes nothing else.
UPSTREAM_FIELDS: tuple[str, ...] = tuple(GenerationParams.model_fields)


def custom_size_problem(width: int, height: int) -> str | None:
    """Why a custom size is outside the model's pixel budget, or None if it fits."""
    total = width * height
    if total < TOTAL_PIXELS_MIN or total > TOTAL_PIXELS_MAX:
        return (
            f"Width × height is {total:,} pixels; it must be between "
            f"{TOTAL_PIXELS_MIN:,} and {TOTAL_PIXELS_MAX:,}"
        )
    if max(width / height, height / width) > ASPECT_RATIO_MAX:
        return (
            "Width and height must keep the aspect ratio between "
            f"1:{ASPECT_RATIO_MAX:g} and {ASPECT_RATIO_MAX:g}:1"
        )
    return None


def pixel_size(image_size: str, width: int | None, height: int | None) -> tuple[int, int]:
    if image_size == CUSTOM_SIZE and width and height:
        return (width, height)
    return NAMED_SIZE_PIXELS.get(image_size, NAMED_SIZE_PIXELS[DEFAULT_IMAGE_SIZE])


def size_label(image_size: str) -> str:
    """How the form names a size; a size only the live schema knows is shown by its name."""
    return IMAGE_SIZE_LABELS.get(image_size, image_size.replace("_", " "))


def size_short_label(image_size: str) -> str:
    """`size_label`, short enough to sit under the size's shape."""
    return IMAGE_SIZE_SHORT_LABELS.get(image_size, size_label(image_size))

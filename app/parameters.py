"""The Seedream 4.5 run parameters: names, ranges, enums and cost, in one place.

Every rule here comes from the upstream contract (docs/upstream-contract.md):
the server validates requests with it before any upstream call, the browser
form renders its limits from it, and the emulator refuses what it refuses.
Field names are the upstream's own (`customWidth`, `num_images`), so a request
body can be copied between this app and PixelDojo unchanged.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
)

DEFAULT_MODEL = "seedream-4"

PROMPT_MAX_CHARS = 4000

ImageSize = Literal[
    "auto_2K",
    "auto_4K",
    "square_hd",
    "square",
    "portrait_4_3",
    "portrait_16_9",
    "landscape_4_3",
    "landscape_16_9",
    "custom",
]
IMAGE_SIZES: tuple[str, ...] = get_args(ImageSize)
DEFAULT_IMAGE_SIZE: ImageSize = "auto_2K"
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

SIDE_MAX = 4096
TOTAL_PIXELS_MIN = 2560 * 1440
TOTAL_PIXELS_MAX = 4096 * 4096
ASPECT_RATIO_MAX = 16.0
# The smallest side any size within the pixel budget can have.
SIDE_MIN = math.ceil(TOTAL_PIXELS_MIN / SIDE_MAX)

SEED_MIN = -1
SEED_MAX = 2_147_483_647

NUM_IMAGES_MIN = 1
NUM_IMAGES_MAX = 6

# The contract's only example charges 1 credit for one image; whether larger
# sizes cost more is unknown, so the estimate is per image and the figure the
# upstream reports is what gets stored.
CREDITS_PER_IMAGE = 1

# The upstream names fields this way; the run body takes nothing else.
UPSTREAM_FIELDS = ("prompt", "image_size", "customWidth", "customHeight", "seed", "num_images")

ModelId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="PixelDojo model apiId",
    ),
]


class GenerationParams(BaseModel):
    """One Seedream run, under the upstream's field names, validated before spending."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(max_length=PROMPT_MAX_CHARS, description="What to draw")
    image_size: ImageSize = Field(DEFAULT_IMAGE_SIZE, description="Named size, or custom")
    customWidth: StrictInt | None = Field(
        None,
        ge=SIDE_MIN,
        le=SIDE_MAX,
        validate_default=True,
        description="Width in pixels when image_size is custom",
    )
    customHeight: StrictInt | None = Field(
        None,
        ge=SIDE_MIN,
        le=SIDE_MAX,
        validate_default=True,
        description="Height in pixels when image_size is custom",
    )
    seed: StrictInt | None = Field(
        None, ge=SEED_MIN, le=SEED_MAX, description="Fixed seed; omit for a random one"
    )
    num_images: StrictInt = Field(
        1, ge=NUM_IMAGES_MIN, le=NUM_IMAGES_MAX, description="Separate generations"
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, prompt: str) -> str:
        prompt = prompt.strip()
        if not prompt:
            raise ValueError("must not be empty")
        return prompt

    @field_validator("customWidth", "customHeight")
    @classmethod
    def _only_with_custom_size(cls, value: int | None, info: ValidationInfo) -> int | None:
        # Runs on the default too (validate_default), so a missing side is named.
        is_custom = info.data.get("image_size", CUSTOM_SIZE) == CUSTOM_SIZE
        if is_custom and value is None and "image_size" in info.data:
            raise ValueError("is required when image_size is custom")
        if not is_custom and value is not None:
            raise ValueError("applies only when image_size is custom")
        return value

    @field_validator("customHeight")
    @classmethod
    def _custom_size_in_budget(cls, height: int | None, info: ValidationInfo) -> int | None:
        width = info.data.get("customWidth")
        if height is None or width is None:
            return height
        problem = custom_size_problem(width, height)
        if problem:
            raise ValueError(problem)
        return height

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

    @property
    def pixel_size(self) -> tuple[int, int]:
        return pixel_size(self.image_size, self.customWidth, self.customHeight)

    @property
    def estimated_credits(self) -> int:
        return self.num_images * CREDITS_PER_IMAGE


def custom_size_problem(width: int, height: int) -> str | None:
    """Why a custom size is outside the model's pixel budget, or None if it fits."""
    total = width * height
    if total < TOTAL_PIXELS_MIN or total > TOTAL_PIXELS_MAX:
        return (
            f"customWidth × customHeight is {total:,} pixels; it must be between "
            f"{TOTAL_PIXELS_MIN:,} (2560×1440) and {TOTAL_PIXELS_MAX:,} (4096×4096)"
        )
    if max(width / height, height / width) > ASPECT_RATIO_MAX:
        return "customWidth and customHeight must keep the aspect ratio between 1:16 and 16:1"
    return None


def pixel_size(image_size: str, width: int | None, height: int | None) -> tuple[int, int]:
    if image_size == CUSTOM_SIZE and width and height:
        return (width, height)
    return NAMED_SIZE_PIXELS.get(image_size, NAMED_SIZE_PIXELS[DEFAULT_IMAGE_SIZE])


def form_limits() -> dict[str, Any]:
    """The limits the browser form enforces, rendered into the page from the same constants."""
    return {
        "prompt_max": PROMPT_MAX_CHARS,
        "side_min": SIDE_MIN,
        "side_max": SIDE_MAX,
        "total_pixels_min": TOTAL_PIXELS_MIN,
        "total_pixels_max": TOTAL_PIXELS_MAX,
        "aspect_max": ASPECT_RATIO_MAX,
        "seed_min": SEED_MIN,
        "seed_max": SEED_MAX,
        "num_images_min": NUM_IMAGES_MIN,
        "num_images_max": NUM_IMAGES_MAX,
        "credits_per_image": CREDITS_PER_IMAGE,
    }

"""The emulator's model catalogue: Seedream, an edit model that takes reference images,
another image model with other kinds of fields, and a video model the app must not offer.

PixelDojo's catalogue lists 60 to 140 models, each with its own run schema; these
few stand for the kinds the app must handle. Their ids and fields are the
emulator's own (PixelDojo documents no edit model): `seedream-4-edit` follows fal's
"Seedream v4.5 edit" (`image_urls`, 1 to 10), `flux-dev` has an enum, integer and
number ranges, a boolean and a field the form cannot render.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from app.domain.parameters import (
    CREDITS_PER_IMAGE,
    IMAGE_SIZES,
    PROMPT_MAX_CHARS,
    SEED_MAX,
    SEED_MIN,
)

SEEDREAM = "seedream-4"
SEEDREAM_EDIT = "seedream-4-edit"
FLUX = "flux-dev"
VIDEO = "seedance-1-video"
REFERENCE_MAX = 10


@dataclass(frozen=True)
class EmulatedModel:
    card: dict[str, Any]
    # None: the schema is built per request (Seedream's, with the emulator's knobs).
    schema: dict[str, Any] | None

    @property
    def api_id(self) -> str:
        return str(self.card["apiId"])

    @property
    def makes_images(self) -> bool:
        return self.card.get("modality") == "image"

    @property
    def credits(self) -> float:
        cost = self.card.get("creditCost") or {}
        return float(cost.get("amount", CREDITS_PER_IMAGE))

    @property
    def per_image(self) -> bool:
        cost = self.card.get("creditCost") or {}
        return bool(cost.get("type", "per_image") == "per_image")


def card(
    api_id: str, name: str, description: str, *, modality: str = "image", credits: float = 1
) -> dict[str, Any]:
    return {
        "apiId": api_id,
        "name": name,
        "description": description,
        "modality": modality,
        "creditCost": {"default": credits, "type": "per_image", "amount": credits},
    }


_PROMPT = {
    "type": "string",
    "minLength": 1,
    "maxLength": PROMPT_MAX_CHARS,
    "description": "What to draw",
}
_SEED = {"type": "integer", "minimum": SEED_MIN, "maximum": SEED_MAX, "description": "Fixed seed"}

EDIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {**_PROMPT, "description": "What to change"},
        "image_urls": {
            "type": "array",
            "items": {"type": "string", "format": "uri"},
            "minItems": 1,
            "maxItems": REFERENCE_MAX,
            "description": "The images to edit: URLs or data: URIs",
        },
        "image_size": {
            "type": "string",
            "enum": [size for size in IMAGE_SIZES if size != "custom"],
            "default": "auto_2K",
        },
        "seed": _SEED,
        "num_images": {"type": "integer", "minimum": 1, "maximum": 6, "default": 1},
    },
    "required": ["prompt", "image_urls"],
    "additionalProperties": False,
}

FLUX_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "maxLength": 2000},
        "negative_prompt": {"type": "string", "maxLength": 500, "description": "What to avoid"},
        "aspect_ratio": {
            "type": "string",
            "enum": ["1:1", "16:9", "9:16", "4:3", "3:4"],
            "default": "1:1",
        },
        "num_inference_steps": {"type": "integer", "minimum": 1, "maximum": 50, "default": 28},
        "guidance_scale": {"type": "number", "minimum": 1, "maximum": 20, "default": 3.5},
        "enable_safety_checker": {"type": "boolean", "default": True},
        "seed": _SEED,
        "num_images": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
        "loras": {
            "type": "array",
            "items": {"type": "object", "properties": {"path": {"type": "string"}}},
            "description": "LoRA weights to apply",
        },
    },
    "required": ["prompt"],
    "additionalProperties": False,
}

VIDEO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"prompt": {"type": "string"}, "duration": {"type": "integer"}},
    "required": ["prompt"],
}


def default_models() -> dict[str, EmulatedModel]:
    models = [
        EmulatedModel(
            card(SEEDREAM, "Seedream 4.5", "ByteDance Seedream 4.5 (emulated locally)"), None
        ),
        EmulatedModel(
            card(
                SEEDREAM_EDIT,
                "Seedream 4.5 Edit",
                "Seedream 4.5 edits from up to 10 reference images (emulated locally)",
            ),
            copy.deepcopy(EDIT_SCHEMA),
        ),
        EmulatedModel(
            card(
                FLUX, "FLUX.1 [dev]", "A text-to-image model with other knobs (emulated)", credits=2
            ),
            copy.deepcopy(FLUX_SCHEMA),
        ),
        EmulatedModel(
            card(VIDEO, "Seedance 1.0", "Video (emulated; not an image model)", modality="video"),
            copy.deepcopy(VIDEO_SCHEMA),
        ),
    ]
    return {model.api_id: model for model in models}

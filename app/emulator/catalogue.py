"""The emulator's model catalogue: Seedream, an edit model that takes reference images,
another image model with other kinds of fields, and a video model the app must not offer.

PixelDojo's catalogue lists 60 to 140 models, each with its own run schema; these
few stand for the kinds the app must handle. Their ids and fields are the
emulator's own (PixelDojo documents no edit model): `seedream-4-edit` follows fal's
"Seedream v4.5 edit" (`image_urls`, 1 to 10), `flux-dev` has an enum, integer and
number ranges, a boolean and a field the form cannot render. Each run schema is a
fixture written from docs/upstream-contract.md (app/emulator/contract.py); Seedream's
is served with the knobs of EmulatorConfig applied, so a test can narrow or widen it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.emulator.config import EmulatorConfig
from app.emulator.contract import run_schema

SEEDREAM = "seedream-4"
SEEDREAM_EDIT = "seedream-4-edit"
FLUX = "flux-dev"
VIDEO = "seedance-1-video"
# The contract's only example charges 1 credit for one image.
CREDITS_PER_IMAGE = 1.0


@dataclass(frozen=True)
class EmulatedModel:
    card: dict[str, Any]
    schema: dict[str, Any]

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
    api_id: str,
    name: str,
    description: str,
    *,
    modality: str = "image",
    credits: float = CREDITS_PER_IMAGE,
) -> dict[str, Any]:
    """A model as `GET /models` lists it."""
    return {
        "apiId": api_id,
        "name": name,
        "description": description,
        "modality": modality,
        "creditCost": {"default": credits, "type": "per_image", "amount": credits},
    }


def models(config: EmulatorConfig) -> dict[str, EmulatedModel]:
    """The catalogue: the built-in models, with `extra_models` added or replacing."""
    built_in = [
        EmulatedModel(
            card(SEEDREAM, "Seedream 4.5", "ByteDance Seedream 4.5 (emulated locally)"),
            served_seedream_schema(config),
        ),
        EmulatedModel(
            card(
                SEEDREAM_EDIT,
                "Seedream 4.5 Edit",
                "Seedream 4.5 edits from up to 10 reference images (emulated locally)",
            ),
            run_schema(SEEDREAM_EDIT),
        ),
        EmulatedModel(
            card(
                FLUX, "FLUX.1 [dev]", "A text-to-image model with other knobs (emulated)", credits=2
            ),
            run_schema(FLUX),
        ),
        EmulatedModel(
            card(VIDEO, "Seedance 1.0", "Video (emulated; not an image model)", modality="video"),
            run_schema(VIDEO),
        ),
    ]
    found = {model.api_id: model for model in built_in}
    for api_id, spec in config.extra_models.items():
        extra_card = {"apiId": api_id, "modality": "image", **spec.get("card", {})}
        extra_card.setdefault("name", api_id)
        schema = spec.get("schema")
        found[api_id] = EmulatedModel(
            extra_card, dict(schema) if schema else served_seedream_schema(config)
        )
    if config.free:
        for api_id, model in found.items():
            cost = {**(model.card.get("creditCost") or {}), "default": 0, "amount": 0}
            found[api_id] = EmulatedModel({**model.card, "creditCost": cost}, model.schema)
    return found


def served_seedream_schema(config: EmulatorConfig) -> dict[str, Any]:
    """Seedream's run schema as served: its fixture with the knobs applied."""
    schema = run_schema(SEEDREAM)
    properties: dict[str, Any] = schema["properties"]
    for name, change in config.schema_overrides.items():
        if change is None:
            properties.pop(name, None)
            continue
        prop = properties.setdefault(name, {})
        for keyword, value in change.items():
            if value is None:
                prop.pop(keyword, None)
            else:
                prop[keyword] = value
    if config.schema_required is not None:
        schema["required"] = list(config.schema_required)
    return schema

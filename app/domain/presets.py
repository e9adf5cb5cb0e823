"""The eight built-in presets of the Seedream 4.5 page.

Names, one-line descriptions and prompts are the model page's own (its preset
cards and the full prompts of the matching example outputs). The page gives no
sizes for them, so each takes the named size that suits its subject.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from app.domain.parameters import (
    CUSTOM_SIZE,
    NAMED_SIZE_PIXELS,
    GenerationParams,
    size_label,
)
from app.domain.rules import ModelRules, offered_sizes


class Preset(BaseModel):
    model_config = ConfigDict(frozen=True)

    slug: str
    name: str
    description: str
    prompt: str
    image_size: str

    def params(self) -> GenerationParams:
        return GenerationParams(prompt=self.prompt, image_size=self.image_size)


PRESETS: tuple[Preset, ...] = (
    Preset(
        slug="childrens-storybook",
        name="Children storybook",
        description="Illustration page from a modern children’s storybook, warm palette.",
        prompt=(
            "illustration page from a modern children’s storybook, friendly fox character in a "
            "magical forest clearing, warm earthy palette, hand-painted texture, beatrix potter "
            "meets pixar"
        ),
        image_size="landscape_4_3",
    ),
    Preset(
        slug="cyberpunk-street",
        name="Cyberpunk street",
        description="Neon-soaked alley in a near-future city, rain-slicked pavement.",
        prompt=(
            "neon-soaked alley in a near-future tokyo, rain-slicked pavement reflecting hot pink "
            "and cyan signage, atmospheric haze, blade runner aesthetic, photoreal"
        ),
        image_size="portrait_16_9",
    ),
    Preset(
        slug="dramatic-landscape",
        name="Dramatic landscape",
        description="Epic mountain valley with low clouds, golden light breaking through.",
        prompt=(
            "epic mountain valley landscape, low clouds rolling through, dramatic shafts of "
            "golden light breaking through the peaks, ansel adams composition, fine art print "
            "quality"
        ),
        image_size="landscape_16_9",
    ),
    Preset(
        slug="food-overhead",
        name="Food overhead",
        description="Overhead food photography, restaurant-quality plating, warm tones.",
        prompt=(
            "overhead food photography, restaurant-quality plating, warm tones, soft natural "
            "light from the side, dewy textures, depth of field"
        ),
        image_size="square_hd",
    ),
    Preset(
        slug="product-hero-shot",
        name="Product hero shot",
        description="Premium consumer-electronics product on a soft gradient backdrop.",
        prompt=(
            "hero product photograph of a premium consumer electronics device, soft gradient "
            "backdrop, dramatic edge light, advertising-grade composition with clean negative "
            "space"
        ),
        image_size="square_hd",
    ),
    Preset(
        slug="real-estate-interior",
        name="Real estate interior",
        description="Wide-angle photoreal interior, warm natural light, magazine quality.",
        prompt=(
            "wide-angle real estate interior photograph, mid-century modern living room, warm "
            "natural light through floor-to-ceiling windows, magazine quality"
        ),
        image_size="landscape_4_3",
    ),
    Preset(
        slug="streetwear-lookbook",
        name="Streetwear lookbook",
        description="Lookbook page for a streetwear drop, model on graffiti backdrop.",
        prompt=(
            "streetwear lookbook photograph, model in oversized layered fits in front of a "
            "graffiti-covered wall, harsh midday sun, hard shadows, fashion editorial energy"
        ),
        image_size="portrait_4_3",
    ),
    Preset(
        slug="wedding-portrait",
        name="Wedding portrait",
        description="Couple silhouette at sunset on a windswept beach, romantic editorial.",
        prompt=(
            "wedding portrait, couple silhouette walking on a windswept beach at sunset, romantic "
            "editorial composition, golden hour color grade, fine art photography"
        ),
        image_size="portrait_4_3",
    ),
)

PRESETS_BY_SLUG: dict[str, Preset] = {preset.slug: preset for preset in PRESETS}


# --- Presets under the rules in force ---------------------------------------------------


@dataclass(frozen=True)
class PresetRun:
    """A preset as the rules in force let it run: its own parameters, or at the nearest size
    they allow (with a note saying so); `params` None when it cannot run at all (`note`
    says why)."""

    preset: Preset
    params: GenerationParams | None
    note: str | None = None

    @property
    def available(self) -> bool:
        return self.params is not None


def preset_run(preset: Preset, rules: ModelRules) -> PresetRun:
    """How `preset` runs under `rules`: a live schema may drop the size a preset was made
    for; it then runs at the allowed size nearest in shape, and says so."""
    offered = offered_sizes(rules)
    if not offered or preset.image_size in offered:
        return PresetRun(preset, preset.params())
    named = [size for size in offered if size != CUSTOM_SIZE]
    if not named:
        return PresetRun(
            preset,
            None,
            f"{preset.name} is unavailable: PixelDojo's schema allows no named size "
            f"(its size is {size_label(preset.image_size)})",
        )
    nearest = nearest_size(preset.image_size, named)
    return PresetRun(
        preset,
        GenerationParams(prompt=preset.prompt, image_size=nearest),
        f"{preset.name} runs at {size_label(nearest)}: PixelDojo's schema does not allow "
        f"its {size_label(preset.image_size)}",
    )


def nearest_size(size: str, allowed: Sequence[str]) -> str:
    """The allowed size closest to `size`: the same orientation first (a portrait preset
    stays a portrait), then the nearest in shape, then in pixels (sizes whose pixels this
    app does not know come last, in their order)."""
    wanted = NAMED_SIZE_PIXELS.get(size)

    def distance(candidate: str) -> tuple[float, float, float]:
        pixels = NAMED_SIZE_PIXELS.get(candidate)
        if wanted is None or pixels is None:
            return (math.inf, math.inf, math.inf)
        ratio, wanted_ratio = math.log(pixels[0] / pixels[1]), math.log(wanted[0] / wanted[1])
        turned = float(_orientation(ratio) != _orientation(wanted_ratio))
        area = abs(math.log((pixels[0] * pixels[1]) / (wanted[0] * wanted[1])))
        return (turned, round(abs(ratio - wanted_ratio), 6), area)

    return min(allowed, key=distance)


def _orientation(log_ratio: float) -> int:
    return 0 if abs(log_ratio) < 1e-9 else (1 if log_ratio > 0 else -1)

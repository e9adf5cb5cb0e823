"""Prompt text that reads like what people type: a subject, a setting, style and camera words.

The words matter for two things: row sizes (prompts are the biggest column in
a listing) and, once the gallery can search, realistic hit rates — a few words
(`lighthouse`, `fox`, `neon`) recur often, most combinations are rare.
"""

from __future__ import annotations

import random

from app.domain.presets import PRESETS

SUBJECTS = (
    "a lighthouse on a basalt cliff",
    "a friendly fox in a magical forest clearing",
    "an old fisherman mending nets",
    "a red vintage bicycle leaning on a stone wall",
    "a neon-lit ramen stand",
    "a glass greenhouse full of ferns",
    "a snow leopard on a ridge",
    "a cyberpunk courier on a motorbike",
    "a bowl of hand-pulled noodles",
    "a tiny astronaut tending a moon garden",
    "a cathedral of ice",
    "a koi pond under cherry blossoms",
    "a steam locomotive crossing a viaduct",
    "a portrait of a woman with freckles",
    "a wooden sailboat in a storm",
    "a cozy reading nook with a cat",
    "a desert caravan at the edge of dunes",
    "a futuristic city skyline",
    "a premium wireless headphone on a plinth",
    "a dragon curled around a mountain peak",
    "a street market in marrakech",
    "an abandoned greenhouse reclaimed by vines",
    "a jazz trio in a smoky club",
    "a hummingbird drinking from a fuchsia",
)
SETTINGS = (
    "at dawn",
    "at golden hour",
    "under a full moon",
    "in heavy rain",
    "in thick morning fog",
    "during a thunderstorm",
    "in late autumn",
    "on a winter night",
    "at blue hour",
    "in the harsh midday sun",
    "",
)
STYLES = (
    "watercolor",
    "oil painting with visible brush strokes",
    "photoreal",
    "cinematic still",
    "studio ghibli inspired",
    "isometric 3d render",
    "ukiyo-e woodblock print",
    "analog film photograph, kodak portra 400",
    "hyperdetailed digital illustration",
    "art deco poster",
    "minimalist flat vector art",
    "charcoal sketch",
)
DETAILS = (
    "soft volumetric light",
    "dramatic rim lighting",
    "shallow depth of field",
    "35mm lens",
    "85mm portrait lens",
    "wide angle",
    "muted earthy palette",
    "vibrant saturated colours",
    "high contrast",
    "rule of thirds composition",
    "fine art print quality",
    "intricate details",
    "atmospheric haze",
    "reflections on wet pavement",
    "8k",
    "trending on artstation",
)


def prompt(rng: random.Random) -> str:
    """One prompt; about one in ten is a preset's own, as teams start from presets."""
    if rng.random() < 0.1:
        return rng.choice(PRESETS).prompt
    parts = [f"{rng.choice(SUBJECTS)} {rng.choice(SETTINGS)}".strip(), rng.choice(STYLES)]
    parts.extend(rng.sample(DETAILS, rng.randint(1, 5)))
    return ", ".join(parts)

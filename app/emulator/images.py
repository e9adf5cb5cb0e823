"""A job's output images: their size, and the stand-in PNGs served on the temporary host's path.

The size follows the run: a custom size as asked, a named size from the contract's
table of named sizes in pixels, else (the `auto_*` sizes, or a model that names no
size) the first reference's shape or the aspect ratio asked for, at a 2K long side (4K
for `auto_4K`). Pictures are rendered when first fetched, deterministic per job, seed
and index, and the last few kept, as clients fetch each image at least twice (to store
it, and for thumbnails) and a 4K render costs a core a second.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from PIL import Image as PILImage

from app.emulator.contract import Contract
from app.emulator.jobs import EmulatedJob
from app.emulator.references import ReferenceDesk
from app.emulator.render import render_edit_png, render_png

IMAGE_PREFIX = "/pixeldojotemp"
# Outputs whose size the run leaves to the model have this long side (4K: twice it).
AUTO_LONG_SIDE = 2048
RENDER_CACHE_SIZE = 16


def output_size(
    facts: Contract, values: Mapping[str, Any], reference: bytes | None
) -> tuple[int, int]:
    """The pixel size of a run's images (see the module's docstring)."""
    rule = facts.custom_size
    size = values.get(rule.size_field)
    width, height = (values.get(side) for side in rule.sides)
    if size == rule.size_word and isinstance(width, int) and isinstance(height, int):
        return width, height
    if isinstance(size, str) and size in facts.named_sizes and not size.startswith("auto"):
        return facts.named_sizes[size]
    long_side = AUTO_LONG_SIDE * 2 if size == "auto_4K" else AUTO_LONG_SIDE
    ratio = 1.0
    if reference is not None:
        with PILImage.open(io.BytesIO(reference)) as image:
            ratio = image.width / image.height
    elif isinstance(values.get("aspect_ratio"), str):
        wide, _, high = values["aspect_ratio"].partition(":")
        with contextlib.suppress(ValueError, ZeroDivisionError):
            ratio = float(wide) / float(high)
    ratio = min(16.0, max(1 / 16, ratio))
    if ratio >= 1:
        return long_side, max(1, round(long_side / ratio))
    return max(1, round(long_side * ratio)), long_side


class Renderer:
    """The stand-in pictures: an edit's made from its first reference, others drawn."""

    def __init__(self, references: ReferenceDesk) -> None:
        self._references = references
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def render(self, job: EmulatedJob, index: int, name: str) -> bytes:
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None:
                self._cache.move_to_end(name)
                return cached
        reference = self._references.get(job.reference_sha) if job.reference_sha else None
        prompt = str(job.params.get("prompt", ""))
        size = {"width": job.width, "height": job.height}
        if reference is not None:
            data = render_edit_png(
                reference=reference, prompt=prompt, seed=job.seeds[index], index=index, **size
            )
        else:
            data = render_png(prompt=prompt, seed=job.seeds[index], index=index, **size)
        with self._lock:
            self._cache[name] = data
            while len(self._cache) > RENDER_CACHE_SIZE:
                self._cache.popitem(last=False)
        return data

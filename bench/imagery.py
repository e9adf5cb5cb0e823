"""Synthetic images that weigh what real ones weigh.

Real Seedream output is photographic: a 2K PNG is about 5 MB because fine
detail and sensor-like noise compress badly, and its 512 px WebP thumbnail is
a few tens of kilobytes. A smooth test card would be a tenth of that and make
every byte-moving figure look better than it is, so these images are a soft
gradient with mid-scale texture (what survives in a thumbnail) and a little
per-pixel noise (what makes the full-size PNG heavy).
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops

from app.storage.intake import make_thumbnail

# Tuned so a 2048×2048 image is ~5.7 MB with a ~24 KB thumbnail, and 4096×4096 is ~22 MB.
TEXTURE_SIGMA = 25.0
TEXTURE_CELL_PIXELS = 32  # per 2048 pixels of width
GRAIN_SIGMA = 1.0


def _noise(width: int, height: int, sigma: float, cell: int = 1) -> Image.Image:
    bands = [
        Image.effect_noise((max(1, width // cell), max(1, height // cell)), sigma) for _ in range(3)
    ]
    noise = Image.merge("RGB", bands)
    if cell > 1:
        noise = noise.resize((width, height), Image.Resampling.BICUBIC)
    return noise


def photo_like(width: int, height: int, variant: int = 0) -> Image.Image:
    """An RGB image with the compressibility of a photograph; `variant` changes its look."""
    ramp = Image.linear_gradient("L").resize((width, height))
    rings = Image.radial_gradient("L").resize((width, height))
    turned = ramp.rotate(90 * (variant % 4 + 1))
    order = [(ramp, rings, turned), (rings, turned, ramp), (turned, ramp, rings)][variant % 3]
    image = Image.merge("RGB", order)
    # effect_noise draws from the global random state: every call differs, so variants do too.
    cell = max(1, TEXTURE_CELL_PIXELS * width // 2048)
    image = ImageChops.add(image, _noise(width, height, TEXTURE_SIGMA, cell), 1.0, -128)
    return ImageChops.add(image, _noise(width, height, GRAIN_SIGMA), 1.0, -128)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # Level 1: encoding speed matters here, and the size differs from level 6 by ~5%.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def with_text_chunk(png: bytes, text: str) -> bytes:
    """The same picture with a `tEXt` chunk before IEND: other bytes, another sha256."""
    iend = png.rindex(b"IEND") - 4
    payload = b"Comment\x00" + text.encode("latin-1")
    chunk = (
        struct.pack(">I", len(payload))
        + b"tEXt"
        + payload
        + struct.pack(">I", zlib.crc32(b"tEXt" + payload))
    )
    return png[:iend] + chunk + png[iend:]


@dataclass(frozen=True)
class PoolImage:
    """One distinct image: its PNG on disk, and the thumbnail the app would make of it."""

    path: Path
    width: int
    height: int
    byte_size: int
    sha256: str
    thumbnail: bytes
    thumbnail_path: Path
    thumbnail_width: int
    thumbnail_height: int


def make_pool_image(directory: Path, width: int, height: int, variant: int) -> PoolImage:
    directory.mkdir(parents=True, exist_ok=True)
    image = photo_like(width, height, variant)
    data = png_bytes(image)
    sha = hashlib.sha256(data).hexdigest()
    path = directory / f"{sha[:16]}.png"
    path.write_bytes(data)
    thumb = make_thumbnail(image)
    thumbnail_path = directory / f"{sha[:16]}.webp"
    thumbnail_path.write_bytes(thumb.data)
    return PoolImage(
        path=path,
        width=width,
        height=height,
        byte_size=len(data),
        sha256=sha,
        thumbnail=thumb.data,
        thumbnail_path=thumbnail_path,
        thumbnail_width=thumb.width,
        thumbnail_height=thumb.height,
    )

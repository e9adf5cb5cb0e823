"""Stand-in images: real PNGs at the requested size that show their prompt and seed.

Rendering is deterministic, so the same job always serves the same bytes and a
test can compare what was stored with what was served.
"""

from __future__ import annotations

import hashlib
import io
import textwrap

from PIL import Image, ImageDraw, ImageFont


def _palette(seed: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    digest = hashlib.sha256(str(seed).encode()).digest()
    top = (digest[0] // 2 + 40, digest[1] // 2 + 20, digest[2] // 2 + 60)
    bottom = (digest[3] // 3 + 150, digest[4] // 3 + 110, digest[5] // 3 + 90)
    return top, bottom


def render_png(*, prompt: str, seed: int, index: int, width: int, height: int) -> bytes:
    top, bottom = _palette(seed * 31 + index)
    # A two-pixel gradient scaled up is far cheaper than drawing one line per row.
    gradient = Image.new("RGB", (1, 2))
    gradient.putpixel((0, 0), top)
    gradient.putpixel((0, 1), bottom)
    image = gradient.resize((width, height), Image.Resampling.BILINEAR)

    draw = ImageDraw.Draw(image)
    scale = min(width, height)
    font = ImageFont.load_default(size=max(12, scale // 28))
    small = ImageFont.load_default(size=max(10, scale // 40))
    margin = scale // 16
    columns = max(16, int(width / (scale / 28) * 1.6))
    lines = textwrap.wrap(prompt, width=columns)[:12]
    y = margin
    for line in lines:
        draw.text((margin, y), line, fill=(255, 255, 255), font=font)
        y += int(scale / 28 * 1.3)
    footer = f"seed {seed} · image {index + 1} · {width}x{height} · emulated locally"
    draw.text((margin, height - margin - scale // 40), footer, fill=(255, 255, 240), font=small)
    draw.rectangle(
        (0, 0, width - 1, height - 1), outline=(255, 255, 255), width=max(2, scale // 256)
    )

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def render_edit_png(
    *, reference: bytes, prompt: str, seed: int, index: int, width: int, height: int
) -> bytes:
    """An edit's stand-in: the first reference, scaled to the output and tinted by the seed,
    with the prompt written over it, so demo mode shows what an edit does."""
    tint, _ = _palette(seed * 31 + index)
    with Image.open(io.BytesIO(reference)) as opened:
        source = opened.convert("RGB")
    base = source.resize((width, height), Image.Resampling.BILINEAR)
    image = Image.blend(base, Image.new("RGB", (width, height), tint), 0.35)
    draw = ImageDraw.Draw(image)
    scale = min(width, height)
    font = ImageFont.load_default(size=max(12, scale // 28))
    small = ImageFont.load_default(size=max(10, scale // 40))
    margin = scale // 16
    columns = max(16, int(width / (scale / 28) * 1.6))
    y = margin
    for line in textwrap.wrap(prompt, width=columns)[:6]:
        draw.text(
            (margin, y),
            line,
            fill=(255, 255, 255),
            font=font,
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
        y += int(scale / 28 * 1.3)
    footer = f"edit of reference 1 · seed {seed} · image {index + 1} · {width}x{height} · emulated"
    draw.text(
        (margin, height - margin - scale // 40),
        footer,
        fill=(255, 255, 240),
        font=small,
        stroke_width=1,
        stroke_fill=(0, 0, 0),
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()

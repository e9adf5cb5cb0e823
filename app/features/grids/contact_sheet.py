"""A grid as one PNG: every cell's images in rows and columns, labelled, drawn with Pillow.

Built from the stored thumbnails (at most 512 px a side), never the full images: a
sheet of fifty cells decodes fifty small WebPs, not fifty 4K PNGs. A grid with a
third axis gets one section per tab, one under the other, each with its heading.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw, ImageFont

from app.features.gallery.image_metadata import GENERATOR, text_chunk
from app.features.grids.records import CellView, GridView

CELL = 256
GAP = 10
MARGIN = 24
LABEL_SIZE = 16
TITLE_SIZE = 22
ROW_LABEL_MAX = 220
LABEL_LINES_MAX = 3
BACKGROUND = (255, 255, 255)
INK = (28, 28, 32)
MUTED = (110, 110, 120)
EMPTY = (232, 232, 236)
FAILED = (250, 228, 228)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# Loads a cell image's thumbnail bytes by image id (None: it is gone).
ThumbnailLoader = Callable[[int], bytes | None]


def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def _wrap(text: str, font: Font, width: int, max_lines: int) -> list[str]:
    """Words to lines no wider than `width`; the last line ends in … if text is left over."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if font.getlength(candidate) <= width or not line:
            line = candidate
            continue
        lines.append(line)
        line = word
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip() + "…"
    fitted = []
    for text_line in lines:
        while font.getlength(text_line) > width and len(text_line) > 1:
            text_line = text_line[:-2] + "…"
        fitted.append(text_line)
    return fitted or [""]


def _line_height(font: Font) -> int:
    _, top, _, bottom = font.getbbox("Ag")
    return int(bottom - top) + 6


def render_contact_sheet(
    view: GridView, thumbnails: ThumbnailLoader, *, tab: int | None = None
) -> bytes:
    """The grid (or one of its tabs) as PNG bytes, with the grid's record in a text chunk."""
    axes = view.grid.axes
    columns = axes[0] if axes else None
    rows = axes[1] if len(axes) > 1 else None
    tabs = axes[2] if len(axes) > 2 else None
    column_count = len(columns["labels"]) if columns else 1
    row_count = len(rows["labels"]) if rows else 1
    tab_indexes = [tab] if tab is not None else list(range(len(tabs["labels"]) if tabs else 1))

    label_font, title_font = _font(LABEL_SIZE), _font(TITLE_SIZE)
    line = _line_height(label_font)
    title_line = _line_height(title_font)
    column_labels = [
        _wrap(label, label_font, CELL, LABEL_LINES_MAX)
        for label in (columns or {}).get("labels", [])
    ]
    row_labels = [
        _wrap(label, label_font, ROW_LABEL_MAX, 6) for label in (rows or {}).get("labels", [])
    ]
    label_width = (
        max(int(label_font.getlength(text)) for lines in row_labels for text in lines) + GAP
        if row_labels
        else 0
    )
    header_height = line * max((len(lines) for lines in column_labels), default=0) + line
    grid_width = column_count * CELL + (column_count - 1) * GAP
    width = MARGIN * 2 + label_width + grid_width
    width = max(width, 640)
    content_width = width - 2 * MARGIN

    title = f"Grid #{view.grid.id} · {view.grid.prompt}"
    title_lines = _wrap(title, title_font, content_width, 2)
    axes_line = "   ".join(
        f"{name}: {axis['title']}"
        for name, axis in zip(("columns", "rows", "tabs"), axes, strict=False)
    )
    top = MARGIN + title_line * len(title_lines) + line + GAP
    section_height = header_height + row_count * CELL + (row_count - 1) * GAP
    tab_heading = line + GAP if tabs else 0
    height = top + len(tab_indexes) * (tab_heading + section_height + MARGIN)

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = MARGIN
    for text in title_lines:
        draw.text((MARGIN, y), text, font=title_font, fill=INK)
        y += title_line
    draw.text((MARGIN, y), axes_line, font=label_font, fill=MUTED)

    y = top
    for z in tab_indexes:
        if tabs:
            heading = f"{tabs['title']}: {tabs['labels'][z]}"
            draw.text((MARGIN, y), heading, font=label_font, fill=INK)
            y += tab_heading
        left = MARGIN + label_width
        if columns:
            header_title = columns["title"]
            draw.text((left, y), header_title, font=label_font, fill=MUTED)
            for x, lines in enumerate(column_labels):
                for n, text in enumerate(lines):
                    draw.text(
                        (left + x * (CELL + GAP), y + line * (n + 1)),
                        text,
                        font=label_font,
                        fill=INK,
                    )
        y += header_height
        for row in range(row_count):
            cell_top = y + row * (CELL + GAP)
            if rows:
                for n, text in enumerate(row_labels[row]):
                    draw.text((MARGIN, cell_top + n * line), text, font=label_font, fill=INK)
            for x in range(column_count):
                cell = view.cell_at(x, row, z)
                box = (left + x * (CELL + GAP), cell_top)
                _draw_cell(sheet, draw, box, cell, thumbnails, label_font)
        y += row_count * CELL + (row_count - 1) * GAP + MARGIN

    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=False)
    return _with_text(out.getvalue(), view)


def _draw_cell(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int],
    cell: CellView | None,
    thumbnails: ThumbnailLoader,
    font: Font,
) -> None:
    left, top = box
    images = cell.images if cell is not None else []
    pictures = [data for data in (thumbnails(image.id) for image in images if image.id) if data]
    if not pictures:
        failed = cell is not None and (cell.cell.refused or (cell.job and cell.job.error))
        draw.rectangle(
            (left, top, left + CELL - 1, top + CELL - 1), fill=FAILED if failed else EMPTY
        )
        lines = _wrap(_cell_note(cell), font, CELL - 20, 5)
        for n, text in enumerate(lines):
            draw.text((left + 10, top + 10 + n * _line_height(font)), text, font=font, fill=MUTED)
        return
    _paste_tiled(sheet, box, pictures)


def _cell_note(cell: CellView | None) -> str:
    if cell is None:
        return "No cell"
    if cell.cell.refused:
        return cell.cell.refused
    if cell.stopped:
        return "Stopped: not sent"
    if cell.job is None:
        return "Not submitted yet"
    if cell.job.error and cell.job.status.is_finished:
        return f"{cell.job.status.label}: {cell.job.error}"
    # As the sheet's page says it: a job the person stopped is no longer waited for.
    return cell.job.state_label


def _paste_tiled(sheet: Image.Image, box: tuple[int, int], pictures: Sequence[bytes]) -> None:
    """A cell's images side by side in a small square grid, each kept to its shape."""
    per_side = math.ceil(math.sqrt(len(pictures)))
    slot = (CELL - (per_side - 1) * 4) // per_side
    for n, data in enumerate(pictures):
        with Image.open(io.BytesIO(data)) as picture:
            picture.thumbnail((slot, slot), Image.Resampling.LANCZOS)
            rgb = picture.convert("RGB")
        column, row = n % per_side, n // per_side
        x = box[0] + column * (slot + 4) + (slot - rgb.width) // 2
        y = box[1] + row * (slot + 4) + (slot - rgb.height) // 2
        sheet.paste(rgb, (x, y))


def _with_text(png: bytes, view: GridView) -> bytes:
    """The sheet says what it is, in text chunks after the header, like the downloads."""
    header_end = 8 + 12 + int.from_bytes(png[8:12], "big")
    axes = "; ".join(
        f"{axis['name']}: {axis['param']}=" + ", ".join(map(str, axis["values"]))
        for axis in view.grid.axes
    )
    extra = text_chunk(
        "parameters",
        f"{view.grid.prompt}\nGrid: {view.grid.id}, Model: {view.grid.model}, Axes: {axes}",
    )
    extra += text_chunk("Software", GENERATOR)
    return png[:header_end] + extra + png[header_end:]

"""How an image was made, carried with it: PNG text chunks and a JSON sidecar.

The PNG's own bytes are not re-encoded: text chunks are spliced in right after
the header chunk (IHDR) while the stored bytes stream past, so a download costs
no more than the plain image and its pixels are exactly the stored ones.

Two keys, as other generators do: `parameters`, the prompt and a line of
settings in AUTOMATIC1111's layout, and `seedream`, the whole record as JSON (the
same document as the sidecar), which stays the exact one. Pillow shows both in
`Image.open(path).text`.

The readers of A1111's layout (its own "PNG info", sd-parsers, SD Prompt Reader)
find the settings line by its start, `Steps:`, and take an image for one of
A1111's only when that line carries `Sampler:` and `CFG scale:` as well. Seedream
has neither steps, sampler nor guidance, so those three are placeholders that say
so (`Steps: 1, Sampler: Seedream, CFG scale: 1`); `Seed`, `Size` and `Model` follow
under A1111's own names, then our own keys.

The record's fields are published as a JSON Schema, served with the static files:
app/web/static/schemas/image-record.schema.json (a zip's manifest.json in its $defs).
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from app import __version__
from app.domain.code_examples import run_url
from app.domain.parameters import RecordedParameters
from app.features.gallery.listing import GalleryEntry
from app.storage.db.tables import Job
from app.storage.intake import IMAGE_EXTENSIONS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CONTENT_TYPE = "image/png"
PARAMETERS_KEY = "parameters"
RECORD_KEY = "seedream"
GENERATOR = f"Seedream Playground {__version__}"
# What A1111's readers require of a settings line, for a model that has none of it.
PLACEHOLDER_SETTINGS = ("Steps: 1", "Sampler: Seedream", "CFG scale: 1")
# A prompt line that starts like the settings line would be read as it: SD Prompt Reader
# takes the first "\nSteps:" for the settings. (A "Negative prompt:" line is left alone:
# it is one, to every reader, as a prompt pasted from A1111 means.)
_LOOKS_LIKE_SETTINGS = re.compile(r"\n(?=\s*Steps:)")
# A value holding these would split into other keys: quoted as A1111 quotes it.
_NEEDS_QUOTES = re.compile(r"[,:\n\"]")


def file_stem(entry: GalleryEntry) -> str:
    return f"seedream-{entry.job_id}-{entry.index + 1}"


def file_name(entry: GalleryEntry) -> str:
    return f"{file_stem(entry)}.{IMAGE_EXTENSIONS.get(entry.content_type, 'bin')}"


def record(entry: GalleryEntry, job: Job, *, base_url: str) -> dict[str, Any]:
    """Everything known about the image: what was asked, what the upstream said, the file."""
    return {
        "generator": GENERATOR,
        "image": {
            "id": entry.image_id,
            "index": entry.index,
            "width": entry.width,
            "height": entry.height,
            "content_type": entry.content_type,
            "byte_size": entry.byte_size,
            "sha256": entry.sha256,
        },
        "job": {
            "id": entry.job_id,
            "model": job.model,
            "preset": job.preset,
            "status": job.status.value,
            "upstream_job_id": job.upstream_job_id,
            "credit_cost": job.credit_cost,
            "created_at": _iso(job.created_at),
            "submitted_at": _iso(job.submitted_at),
            "finished_at": _iso(job.finished_at),
            "remix_of": (
                {"job_id": job.remix_of_job_id, "image_index": job.remix_of_image_index}
                if job.remix_of_job_id is not None
                else None
            ),
            # Gallery image ids, as `reference_images` takes them.
            "reference_images": list(job.reference_images or ()),
        },
        "parameters": RecordedParameters.from_columns(job).model_dump(),
        "request": {
            "method": "POST",
            "url": run_url(base_url, job.model),
            "body": job.request_body,
        },
    }


def parameters_text(entry: GalleryEntry, job: Job) -> str:
    """The prompt, then one line of settings, in AUTOMATIC1111's layout."""
    settings = [
        *PLACEHOLDER_SETTINGS,
        f"Seed: {job.seed if job.seed is not None else 'random'}",
        f"Size: {entry.width}x{entry.height}",
        f"Model: {_quoted(job.model)}",
        f"Image size: {_quoted(job.image_size)}",
    ]
    if job.preset:
        settings.append(f"Preset: {_quoted(job.preset)}")
    if job.reference_images:
        settings.append("References: " + " ".join(f"#{i}" for i in job.reference_images))
    settings.append(f"Image: {entry.index + 1} of {job.num_images}")
    if job.upstream_job_id:
        settings.append(f"Upstream job: {_quoted(job.upstream_job_id)}")
    return f"{prompt_text(job.prompt)}\n{', '.join(settings)}"


def prompt_text(prompt: str) -> str:
    """The prompt as the `parameters` chunk holds it: a line that would pass for the
    settings is joined onto the line before it, so no prompt can change the settings a
    reader finds. (The `seedream` chunk keeps the prompt exactly.)"""
    return _LOOKS_LIKE_SETTINGS.sub(" ", prompt.strip("\n"))


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False) if _NEEDS_QUOTES.search(value) else value


def text_chunk(keyword: str, text: str) -> bytes:
    """A tEXt chunk, or iTXt (UTF-8) when the text is not Latin-1, as Pillow writes them."""
    key = keyword.encode("latin-1")
    try:
        kind, data = b"tEXt", key + b"\0" + text.encode("latin-1")
    except UnicodeEncodeError:
        # keyword, NUL, compression flag and method, empty language, NUL, empty
        # translated keyword, NUL, then the UTF-8 text.
        kind, data = b"iTXt", key + b"\0\0\0\0\0" + text.encode("utf-8")
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_chunks_for(entry: GalleryEntry, job: Job, *, base_url: str) -> bytes:
    document = json.dumps(record(entry, job, base_url=base_url), ensure_ascii=False)
    return (
        text_chunk(PARAMETERS_KEY, parameters_text(entry, job))
        + text_chunk(RECORD_KEY, document)
        + text_chunk("Software", GENERATOR)
    )


def splice_after_header(chunks: Iterable[bytes], extra: bytes) -> Iterator[bytes]:
    """The PNG stream with `extra` inserted after its IHDR chunk."""
    stream = iter(chunks)
    head = b""
    for chunk in stream:
        head += chunk
        if len(head) >= 16:
            break
    if not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    header_end = 8 + 12 + struct.unpack(">I", head[8:12])[0]
    while len(head) < header_end:
        head += next(stream)
    yield head[:header_end]
    yield extra
    if len(head) > header_end:
        yield head[header_end:]
    yield from stream


def sidecar_bytes(entry: GalleryEntry, job: Job, *, base_url: str) -> bytes:
    return (
        json.dumps(record(entry, job, base_url=base_url), indent=2, ensure_ascii=False) + "\n"
    ).encode("utf-8")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None

"""How an image was made, carried with it: PNG text chunks and a JSON sidecar.

The PNG's own bytes are not re-encoded: text chunks are spliced in right after
the header chunk (IHDR) while the stored bytes stream past, so a download costs
no more than the plain image and its pixels are exactly the stored ones.

Two keys, as other generators do: `parameters`, the prompt and a line of
settings in the layout AUTOMATIC1111's "PNG info" reads, and `seedream`, the
whole record as JSON (the same document as the sidecar). Pillow shows both in
`Image.open(path).text`.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from app import __version__
from app.domain.code_examples import run_url
from app.domain.parameters import RecordedParameters
from app.features.gallery.listing import GalleryEntry
from app.storage.db.tables import Job

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CONTENT_TYPE = "image/png"
PARAMETERS_KEY = "parameters"
RECORD_KEY = "seedream"
GENERATOR = f"Seedream Playground {__version__}"

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def file_stem(entry: GalleryEntry) -> str:
    return f"seedream-{entry.job_id}-{entry.index + 1}"


def file_name(entry: GalleryEntry) -> str:
    return f"{file_stem(entry)}.{EXTENSIONS.get(entry.content_type, 'bin')}"


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
    """The prompt, then one line of settings (AUTOMATIC1111's layout)."""
    settings = [
        f"Seed: {job.seed if job.seed is not None else 'random'}",
        f"Size: {entry.width}x{entry.height}",
        f"Model: {job.model}",
        f"Image size: {job.image_size}",
    ]
    if job.preset:
        settings.append(f"Preset: {job.preset}")
    if job.reference_images:
        settings.append("References: " + " ".join(f"#{i}" for i in job.reference_images))
    settings.append(f"Image: {entry.index + 1} of {job.num_images}")
    if job.upstream_job_id:
        settings.append(f"Upstream job: {job.upstream_job_id}")
    return f"{job.prompt}\n{', '.join(settings)}"


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

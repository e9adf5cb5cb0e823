"""Downloaded images: verify, thumbnail, store.

A download is staged in a scratch file while it streams in, then checked with
Pillow (an allowed format, a pixel count under our cap, decodable to the end)
before any of it reaches the database. Bytes go to the blob store, keyed by
their sha256; the rows that point at them are written by `app.features.jobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import io
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from app.core.errors import plain_reason
from app.upstream import DownloadRefused

FORMAT_CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# The only types an image or thumbnail is ever stored or served as.
IMAGE_CONTENT_TYPES = frozenset(FORMAT_CONTENT_TYPES.values())
# The file name extension of each, wherever an image is saved as a file.
IMAGE_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
# Larger than any size the model makes (4096×4096) and far below Pillow's own
# decompression-bomb threshold, which would let 89 million pixels through.
MAX_IMAGE_PIXELS = 4096 * 4096 + 1
# Pillow's own guard, tightened to the same cap (defence in depth: check_image
# refuses oversized images itself before decoding).
PILImage.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
THUMBNAIL_MAX_SIDE = 512
THUMBNAIL_CONTENT_TYPE = "image/webp"
# The middle rendition, for an image shown wider than a thumbnail but far smaller than
# itself (a job's card on a laptop): a 2K PNG is ~6 MB, its preview ~60 KB. Only images
# larger than this have one (`has_preview`); a smaller image is its own preview.
PREVIEW_MAX_SIDE = 1024
PREVIEW_CONTENT_TYPE = "image/webp"
# WebP's effort for previews (0 fastest to 6): at 4, as thumbnails are made, a 1024-px
# preview costs 90 ms of CPU, nearly the decode's own; at 1, 20 ms for 10% more bytes.
PREVIEW_WEBP_METHOD = 1
# Blocks this large or larger go straight back to the system when freed (see below).
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
# Images decoded at once, process-wide. Each holds its full frame (16 MB for 2K,
# 64 MB for 4K) while it is checked and thumbnailed; decoding is CPU-bound, so
# more at once is not faster on a small server, only bigger: with the poller's
# eight jobs at once decoding together the app peaked near its 250 MB budget
# (docs/benchmarks.md, poller).
DECODE_SLOTS = 2
_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
# How much lower than the rest of the process the threads that check images run (see
# `check_image_aside`).
IMAGE_THREAD_NICENESS = 10


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    width: int
    height: int
    content_type: str = THUMBNAIL_CONTENT_TYPE


@dataclass(frozen=True)
class CheckedImage:
    content_type: str
    width: int
    height: int
    thumbnail: Thumbnail
    # None for an image no larger than a preview: it is its own.
    preview: Thumbnail | None = None


@dataclass(frozen=True)
class StagedImage:
    """One downloaded, verified image waiting in a scratch file to be stored."""

    index: int
    source_url: str
    path: Path
    byte_size: int
    sha256: str
    checked: CheckedImage


@dataclass(frozen=True)
class ImageFacts:
    content_type: str
    width: int
    height: int


def check_image(path: Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> CheckedImage:
    """Refuse anything but a whole PNG, JPEG or WebP within the pixel cap; make its preview
    (if it is larger than one) and its thumbnail."""
    # Opened outside the try: a local I/O error is ours, retried, never a refused image.
    with (
        path.open("rb") as source,
        _decoded(source, max_pixels=max_pixels, draft_side=PREVIEW_MAX_SIDE) as (image, facts),
    ):
        preview, thumbnail = make_renditions(image)
    return CheckedImage(
        content_type=facts.content_type,
        width=facts.width,
        height=facts.height,
        thumbnail=thumbnail,
        preview=preview,
    )


def _yield_the_cpu() -> None:
    # Linux keeps a niceness per thread (setpriority on a thread id sets that thread's
    # alone); elsewhere this changes nothing, and a refusal leaves the thread as it was.
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + IMAGE_THREAD_NICENESS))


# Threads of their own, not the shared pool requests use for the database: niced, they
# would slow the requests that later ran on them.
_image_threads = ThreadPoolExecutor(
    max_workers=DECODE_SLOTS, thread_name_prefix="image-check", initializer=_yield_the_cpu
)


async def check_image_aside(path: Path) -> CheckedImage:
    """`check_image` in a thread that yields the CPU to the rest of the process.

    Checking a 2K image is ~0.15 s of CPU (decode, thumbnail; Pillow lets go of the GIL
    for both), so on a two-core server a batch being stored took the cores from requests:
    with 32 people browsing, pages came half as fast. At a lower priority the kernel runs
    the request first whenever both wait for a core; the images are stored in the time
    requests leave (docs/benchmarks.md, load).
    """
    future = _image_threads.submit(check_image, path)
    # As anyio's threads do: the caller waits for the check even when cancelled, so the
    # scratch file it reads is not removed under it.
    with anyio.CancelScope(shield=True):
        checked = await asyncio.wrap_future(future)
    return checked


def has_preview(width: int, height: int) -> bool:
    """Whether an image this size is shown through a preview: it is larger than one."""
    return max(width, height) > PREVIEW_MAX_SIDE


def fitted_width(width: int, height: int, max_side: int) -> int:
    """The width of an image this size made at most `max_side` a side (never larger),
    for a srcset's descriptor."""
    return round(width * max_side / max(width, height, max_side))


def make_preview(source: BinaryIO) -> Thumbnail:
    """The preview of an image stored before previews were made with the thumbnail."""
    with _decoded(source, max_pixels=MAX_IMAGE_PIXELS, draft_side=PREVIEW_MAX_SIDE) as (
        image,
        _,
    ):
        preview, _ = make_renditions(image)
    if preview is None:
        raise ValueError("an image no larger than a preview has none")
    return preview


def verify_image(source: BinaryIO, *, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageFacts:
    """The same checks as `check_image` (the same refusals), without making a thumbnail."""
    with _decoded(source, max_pixels=max_pixels) as (_, facts):
        return facts


@contextmanager
def _decoded(
    source: BinaryIO, *, max_pixels: int, draft_side: int = THUMBNAIL_MAX_SIDE
) -> Iterator[tuple[PILImage.Image, ImageFacts]]:
    """The image decoded to the end (at `draft_side` where the format allows), within
    the process-wide decode slots; anything unfit is refused with DownloadRefused."""
    try:
        with _decode_slots, warnings.catch_warnings():
            # Our own cap below is tighter; Pillow's warning would only repeat it.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(source) as image:
                if image.format not in FORMAT_CONTENT_TYPES:
                    raise DownloadRefused(
                        f"the file is a {image.format or 'unknown'} file, not a PNG, "
                        "JPEG or WebP image"
                    )
                width, height = image.size
                # Checked from the header, before a pixel is decoded.
                if width * height > max_pixels:
                    raise DownloadRefused(
                        f"the image is {width}×{height} pixels, over the {max_pixels:,}-pixel cap"
                    )
                facts = ImageFacts(FORMAT_CONTENT_TYPES[image.format], width, height)
                image.draft("RGB", (draft_side, draft_side))
                # load() decodes to the end: a truncated or corrupt file fails here.
                image.load()
                yield image, facts
    except DownloadRefused:
        raise
    except PILImage.DecompressionBombError:
        raise DownloadRefused(
            f"the image is over the {max_pixels:,}-pixel cap (a possible decompression bomb)"
        ) from None
    except UnidentifiedImageError:
        # Not Pillow's words: they name the file object read, and with it a scratch file's path.
        raise DownloadRefused(
            "the file is not a readable image (no image format was recognised)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DownloadRefused(f"the file is not a readable image ({plain_reason(exc)})") from None


def make_renditions(image: PILImage.Image) -> tuple[Thumbnail | None, Thumbnail]:
    """The WebP preview of `image` (None if it is no larger than one) and its thumbnail,
    shrinking `image` in place: the caller is done with it.

    The thumbnail is made from the preview, and the preview reduced by a whole factor
    (averaging blocks of pixels) before the Lanczos filter takes it the rest of the way
    (`reducing_gap=1`), and encoded at WebP's faster method: so both cost about what the
    thumbnail alone cost from the full image (bench `storing`).

    Shrinking first and turning upright afterwards (the bound is square, so the
    order does not change the result) means a full-size frame is never copied:
    a 4096×4096 image needs its 48 MB of pixels once, not three times over
    (docs/benchmarks.md, download memory).
    """
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    preview = None
    if max(image.size) > PREVIEW_MAX_SIDE:
        image.thumbnail(
            (PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE), PILImage.Resampling.LANCZOS, reducing_gap=1.0
        )
        preview = _webp(image, method=PREVIEW_WEBP_METHOD)
    image.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), PILImage.Resampling.LANCZOS)
    return preview, _webp(image, method=4)


def make_thumbnail(image: PILImage.Image) -> Thumbnail:
    """The WebP thumbnail of `image`, shrunk in place (see `make_renditions`)."""
    return make_renditions(image)[1]


def _webp(image: PILImage.Image, *, method: int) -> Thumbnail:
    upright = ImageOps.exif_transpose(image)
    buffer = io.BytesIO()
    upright.save(buffer, format="WEBP", quality=80, method=method)
    return Thumbnail(data=buffer.getvalue(), width=upright.width, height=upright.height)


def return_image_memory_promptly() -> None:
    """Make the C allocator hand large image buffers back to the system when they are freed.

    A decoded 2K image is a 16 MB block. glibc raises its mmap threshold to the
    largest block freed so far, after which such blocks come from per-thread heaps
    that keep the memory: with eight images stored at once the app grew to ~300 MB
    and stayed there; with a fixed threshold it peaks near 170 MB and falls back
    (docs/benchmarks.md, poller). Call once at start-up; a no-op off glibc.
    """
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (AttributeError, OSError, ValueError):
        return


@contextmanager
def scratch_file(directory: Path) -> Iterator[tuple[Path, io.BufferedWriter]]:
    """A file to stream a download into, removed afterwards whatever happens."""
    directory.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=directory, prefix="download-", suffix=".part")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield path, stream
    finally:
        path.unlink(missing_ok=True)


def worker_scratch_dir(directory: Path, worker_id: str) -> Path:
    """Each worker downloads into a folder of its own, so no other worker clears it."""
    return directory / hashlib.sha256(worker_id.encode()).hexdigest()[:16]


def clear_scratch(directory: Path, *, live_worker_ids: set[str]) -> None:
    """Remove downloads that workers no longer alive left half-written."""
    keep = {worker_scratch_dir(directory, worker_id) for worker_id in live_worker_ids}
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.is_dir() and entry not in keep:
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.is_file():  # left by a version that shared one folder
                entry.unlink(missing_ok=True)

"""The CPU the worker spends storing one image, against what the work itself costs.

The subject is the worker's path for one downloaded 2K PNG, with the app's own
parts: the body hashed and written to a scratch file in the chunks a download
arrives in (as app/upstream/client.py's `_save_body` does), `check_image` (the
header checks, a decode to the end, the WebP preview and thumbnail), then the bytes,
the preview and the thumbnail put in the blob store the app opens for a data dir. The
floor is the work no storing can skip, done by the libraries alone on the same bytes: Pillow
decoding the PNG, making the same WebP thumbnail, and hashlib hashing the bytes.

Each round stores a picture no earlier round stored (a text chunk makes other
bytes of it: the store is content-addressed, and a repeat would only renew it),
subject and floor in alternating order; CPU is this process's, so a busy machine
lengthens neither side.
"""

from __future__ import annotations

import hashlib
import io
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage

from app.core.config import Settings
from app.storage.blobs.choose import open_blob_store
from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.intake import THUMBNAIL_MAX_SIDE, check_image, scratch_file
from bench.imagery import PoolImage, with_text_chunk
from bench.report import Report

SECTION = "storing an image"
CPU_RATIO_MAX = 1.5
# What a download's body arrives in, near enough: httpx hands over what the socket read.
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class StoringRun:
    image: PoolImage
    # CPU seconds per round, by side.
    store_cpu: list[float]
    floor_cpu: list[float]
    stored: int

    @property
    def ratio(self) -> float:
        return statistics.median(self.store_cpu) / statistics.median(self.floor_cpu)


def store_one(data: bytes, blobs: BlobStore, scratch_dir: Path) -> str:
    """The worker's path for one image, as `Poller._download` and `queue.store_images` take it."""
    with scratch_file(scratch_dir) as (path, stream):
        digest = hashlib.sha256()
        for start in range(0, len(data), CHUNK_BYTES):
            chunk = data[start : start + CHUNK_BYTES]
            digest.update(chunk)
            stream.write(chunk)
        stream.flush()
        checked = check_image(path)
        sha256 = digest.hexdigest()
        blobs.put_file(sha256, path)
        blobs.put_thumbnail(sha256, checked.thumbnail.data)
        if checked.preview is not None:
            blobs.put_preview(sha256, checked.preview.data)
    return sha256


def floor_one(data: bytes) -> str:
    """Decode, thumbnail and hash, by the libraries alone."""
    sha256 = hashlib.sha256(data).hexdigest()
    with PILImage.open(io.BytesIO(data)) as image:
        image.load()
        image.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), PILImage.Resampling.LANCZOS)
        image.save(io.BytesIO(), format="WEBP", quality=80, method=4)
    return sha256


def measure(work_dir: Path, image: PoolImage, *, rounds: int, warmup: int = 1) -> StoringRun:
    settings = Settings(_env_file=None, data_dir=work_dir / "data")
    db = Database.for_settings(settings)
    db.migrate()
    blobs = open_blob_store(settings, database_url=db.url)
    picture = image.path.read_bytes()
    store_cpu: list[float] = []
    floor_cpu: list[float] = []
    stored: set[str] = set()
    try:
        for number in range(warmup + rounds):
            data = with_text_chunk(picture, f"storing round {number}")
            sides = [("store", store_cpu), ("floor", floor_cpu)]
            for side, spent in sides if number % 2 == 0 else sides[::-1]:
                before = time.process_time()
                if side == "store":
                    stored.add(store_one(data, blobs, work_dir / "scratch"))
                else:
                    floor_one(data)
                if number >= warmup:
                    spent.append(time.process_time() - before)
        stored_count = sum(1 for sha256 in stored if blobs.contains(sha256))
    finally:
        blobs.close()
        db.dispose()
    return StoringRun(image, store_cpu, floor_cpu, stored_count)


def report(report: Report, run: StoringRun) -> None:
    store_ms = statistics.median(run.store_cpu) * 1000
    floor_ms = statistics.median(run.floor_cpu) * 1000
    report.at_most(
        SECTION,
        f"CPU per stored {run.image.width}×{run.image.height} PNG, in floors",
        run.ratio,
        CPU_RATIO_MAX,
        "×",
        f"{store_ms:.0f} ms against {floor_ms:.0f} ms for decode + thumbnail + hash alone; "
        f"{run.image.byte_size / 1e6:.1f} MB, {run.stored} stored",
    )

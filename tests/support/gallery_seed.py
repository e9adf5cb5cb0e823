"""A gallery written straight into a real SQLite file: many jobs and images, no upstream.

For tests of listing and search, which never read image bytes: rows only, in
bulk, with a spread of presets, sizes, statuses, dates, favourites, trash and
collections drawn from a fixed random seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from app.features.gallery.listing import GalleryEntry
from app.features.jobs.reads import ImageSummary, JobSummary
from app.storage.db.engine import Database
from app.storage.db.tables import Collection, CollectionImage, Image, Job, JobStatus

# One listing row as the gallery's query reads it, for tests of what is made of rows
# (markup, JSON): vary it with dataclasses.replace.
GALLERY_ENTRY = GalleryEntry(
    image_id=1,
    job_id=10,
    index=0,
    width=2048,
    height=1536,
    content_type="image/png",
    byte_size=1,
    sha256="0" * 64,
    favourite=False,
    deleted_at=None,
    model="seedream-4",
    preset=None,
    prompt="a lighthouse",
    image_size="auto_2K",
    custom_width=None,
    custom_height=None,
    seed=None,
    num_images=1,
    status=JobStatus.COMPLETED,
    created_at=datetime(2026, 11, 30, tzinfo=UTC),
    credit_cost=1.0,
    user_id=None,
)

# One row of the jobs listing and one of its images, likewise.
JOB_SUMMARY = JobSummary(
    id=9,
    status=JobStatus.COMPLETED,
    model="seedream-4",
    preset=None,
    prompt="a lighthouse",
    image_size="auto_2K",
    custom_width=None,
    custom_height=None,
    seed=7,
    num_images=2,
    upstream_job_id="job_1",
    error=None,
    credit_cost=2.0,
    credits_remaining=999999999998.0,
    created_at=datetime(2026, 11, 30, 16, 11, 19, 839168, tzinfo=UTC),
    submitted_at=datetime(2026, 11, 30, 16, 11, 19, 839168, tzinfo=UTC),
    finished_at=None,
    expires_at=datetime(2026, 12, 1, tzinfo=UTC),
    remix_of_job_id=None,
    remix_of_image_index=None,
    reference_images=None,
)
IMAGE_SUMMARY = ImageSummary(
    id=3,
    index=0,
    width=2048,
    height=2048,
    content_type="image/png",
    byte_size=5,
    sha256="cd" * 32,
    favourite=True,
    deleted_at=None,
)

WORDS = [
    "lighthouse",
    "dawn",
    "watercolour",
    "cat",
    "dog",
    "bicycle",
    "wall",
    "city",
    "night",
    "neon",
    "forest",
    "river",
    "mountain",
    "portrait",
    "studio",
    "food",
    "overhead",
    "sunset",
    "ocean",
    "castle",
    "robot",
    "tea",
    "vintage",
    "film",
    "grain",
    "macro",
    "flower",
]
PRESETS = (None, "food-overhead", "product-studio", "neon-city", "portrait-soft")
SIZES = ("auto_2K", "square_hd", "landscape_16_9", "portrait_4_3", "custom")
MODELS = ("seedream-4", "seedream-4", "seedream-4", "other-model")
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SeededImage:
    image_id: int
    job_id: int
    index: int
    prompt: str
    preset: str | None
    model: str
    image_size: str
    status: JobStatus
    created_at: datetime
    favourite: bool
    trashed: bool
    collections: frozenset[int]


def seed_gallery(db: Database, *, jobs: int, seed: int = 7) -> list[SeededImage]:
    """Write `jobs` jobs (1–4 images each, a few failed without images); return the images."""
    rng = random.Random(seed)
    job_rows: list[dict[str, object]] = []
    image_rows: list[dict[str, object]] = []
    members: list[dict[str, object]] = []
    seeded: list[SeededImage] = []
    image_id = 0
    collection_ids = (1, 2)
    for job_id in range(1, jobs + 1):
        prompt = " ".join(rng.choice(WORDS) for _ in range(8))
        failed = rng.random() < 0.05
        status = JobStatus.FAILED if failed else JobStatus.COMPLETED
        count = rng.choice((1, 1, 2, 4))
        created = START + timedelta(hours=job_id * 3)
        job = {
            "id": job_id,
            "created_at": created,
            "updated_at": created,
            "model": rng.choice(MODELS),
            "preset": rng.choice(PRESETS),
            "prompt": prompt,
            "image_size": rng.choice(SIZES),
            "seed": rng.randrange(1000),
            "num_images": count,
            "request_body": {"prompt": prompt},
            "status": status,
            "upstream_job_id": f"job_seed_{job_id}",
            "credit_cost": float(count),
            "poll_count": 1,
        }
        job_rows.append(job)
        if failed:
            continue
        for index in range(count):
            image_id += 1
            favourite = rng.random() < 0.1
            trashed = rng.random() < 0.05
            in_collections = frozenset(c for c in collection_ids if rng.random() < 0.08)
            image_rows.append(
                {
                    "id": image_id,
                    "job_id": job_id,
                    "index": index,
                    "content_type": "image/png",
                    "width": 2048,
                    "height": 2048,
                    "byte_size": 1000,
                    "sha256": f"{image_id:064x}",
                    "source_url": "https://temp.pixeldojo.ai/seed.png",
                    "created_at": created,
                    "favourite": favourite,
                    "deleted_at": created if trashed else None,
                }
            )
            members.extend(
                {"collection_id": c, "image_id": image_id, "added_at": created}
                for c in in_collections
            )
            seeded.append(
                SeededImage(
                    image_id,
                    job_id,
                    index,
                    prompt,
                    job["preset"],  # type: ignore[arg-type]
                    job["model"],  # type: ignore[arg-type]
                    job["image_size"],  # type: ignore[arg-type]
                    status,
                    created,
                    favourite,
                    trashed,
                    in_collections,
                )
            )
    with db.write() as session:
        connection = session.connection()
        connection.execute(sa.insert(Job.__table__), job_rows)  # type: ignore[attr-defined]
        connection.execute(sa.insert(Image.__table__), image_rows)  # type: ignore[attr-defined]
        connection.execute(
            sa.insert(Collection.__table__),  # type: ignore[attr-defined]
            [
                {
                    "id": c,
                    "name": f"Board {c}",
                    "description": "",
                    "created_at": START,
                    "updated_at": START,
                }
                for c in collection_ids
            ],
        )
        if members:
            connection.execute(sa.insert(CollectionImage.__table__), members)  # type: ignore[attr-defined]
    return seeded

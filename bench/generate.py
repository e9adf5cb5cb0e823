"""Fill a data dir with N synthetic jobs and their images, fast.

Rows go in with bulk inserts through SQLAlchemy against a database migrated the
way the app migrates it, so the schema, indexes and column types are the app's
own; the image bytes and their thumbnails go through the app's blob store (the
one the app would open: SQLite's by default, PostgreSQL's when `database_url`
names a PostgreSQL database). The blob store is content-addressed, so a small pool
of distinct images serves every row (a gallery of 100,000 images holds a few
tens of megabytes of full-size bytes here, each with its one thumbnail beside it).
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.core.config import Settings
from app.core.model_id import DEFAULT_MODEL
from app.domain.parameters import CREDITS_PER_IMAGE, NAMED_SIZE_PIXELS
from app.domain.presets import PRESETS
from app.emulator.images import IMAGE_PREFIX
from app.features.archive.rows import IMAGES, JOBS
from app.features.people import accounts
from app.storage.blobs.choose import open_blob_store
from app.storage.db import postgres, sqlite
from app.storage.db.engine import Database
from app.storage.db.tables import Image, Job, JobStatus
from bench import prompts
from bench.imagery import PoolImage, make_pool_image
from bench.measure import BenchError

# Pixel size → the named size that makes it (auto_2K and square_hd share 2048×2048).
SIZE_NAMES: dict[tuple[int, int], str] = {}
for _name, _pixels in NAMED_SIZE_PIXELS.items():
    SIZE_NAMES.setdefault(_pixels, _name)

POOL_SIZES = (
    NAMED_SIZE_PIXELS["auto_2K"],
    NAMED_SIZE_PIXELS["landscape_16_9"],
    NAMED_SIZE_PIXELS["portrait_16_9"],
    NAMED_SIZE_PIXELS["landscape_4_3"],
)
# How many images a job asked for: mostly one.
NUM_IMAGES_WEIGHTS = {1: 80, 2: 12, 4: 8}
FAILED_SHARE = 0.03
EXPIRED_SHARE = 0.01
BATCH_JOBS = 2_000
HISTORY_DAYS = 365
# What a kept data dir must say to be reused; bump it when generated rows change.
GENERATOR_VERSION = 2
DATASET_FILE = "bench-dataset.json"
# A team server: these people made the jobs, round the table; the first one's API token
# is what the benchmarks sign in with.
TEAM = ("alice", "bob", "chen", "dara", "emeka")


def make_pool(directory: Path, *, count: int) -> list[PoolImage]:
    """`count` distinct full-size images, cycling through the common sizes."""
    return [
        make_pool_image(directory, *POOL_SIZES[i % len(POOL_SIZES)], variant=i)
        for i in range(count)
    ]


@dataclass(frozen=True)
class Dataset:
    data_dir: Path
    jobs: int
    images: int
    last_job_id: int
    last_image_id: int
    seconds: float
    # Bearer token of a team member; None for a single-person install (no sign-in).
    token: str | None = None
    # Where the rows are when not in the data dir's SQLite file: what the app is served with.
    database_url: str | None = None

    def image_cursor(self, depth: float) -> int:
        """The gallery's `before` cursor `depth` of the way from the newest image to the oldest."""
        return max(2, self.last_image_id - int(self.images * depth))

    def job_cursor(self, depth: float) -> int:
        return max(2, self.last_job_id - int(self.jobs * depth))

    def save(self) -> None:
        """Write what a later run needs to reuse this data dir (its token included)."""
        fields = {**vars(self), "data_dir": str(self.data_dir), "version": GENERATOR_VERSION}
        (self.data_dir / DATASET_FILE).write_text(json.dumps(fields, indent=2))

    @classmethod
    def load(cls, data_dir: Path) -> Dataset | None:
        """A data dir an earlier run generated and kept, if it is one this generator made."""
        try:
            fields = json.loads((data_dir / DATASET_FILE).read_text())
        except (OSError, ValueError):
            return None
        if fields.pop("version", None) != GENERATOR_VERSION:
            return None
        fields["data_dir"] = data_dir
        return cls(**fields)


def reuse_or_generate(data_dir: Path, *, jobs: int, pool: Sequence[PoolImage]) -> Dataset:
    """The dataset kept in `data_dir` from an earlier run, else a new one (kept there).

    A million jobs take minutes to generate and tens of gigabytes: a benchmark that is
    run again reuses them. A data dir left half-made (no marker) is refused, not reused."""
    kept = Dataset.load(data_dir)
    if kept is not None and kept.jobs == jobs:
        # Brought to the current schema here, not in the app's timed start-up (a new
        # index over a million rows takes a minute, once).
        db = Database.at_path(data_dir / "playground.db")
        db.migrate()
        db.dispose()
        return replace(kept, seconds=0.0)
    dataset = generate(data_dir, jobs=jobs, pool=pool)
    dataset.save()
    return dataset


def generate(
    data_dir: Path,
    *,
    jobs: int,
    pool: Sequence[PoolImage],
    team: bool = True,
    seed: int = 1,
    database_url: str | None = None,
    settings: dict[str, Any] | None = None,
) -> Dataset:
    """With `database_url`, the rows go there (an empty database) instead of the data dir's
    SQLite file; the same seed makes the same gallery, row for row, in either. `settings`
    are more of the app's (`blob_url`: the image bytes go to that bucket)."""
    started = time.perf_counter()
    configured = Settings(
        _env_file=None, data_dir=data_dir, database_url=database_url, **(settings or {})
    )
    db = Database.for_settings(configured)
    db.migrate()
    with db.read_engine.connect() as connection:
        if connection.execute(sa.select(sa.func.count()).select_from(Job)).scalar():
            raise SystemExit(f"{data_dir} already holds jobs; generate into an empty data dir")
    blobs = open_blob_store(configured, database_url=db.url)
    for image in pool:
        blobs.put_file(image.sha256, image.path)
        blobs.put_thumbnail(image.sha256, image.thumbnail)
    blobs.close()
    user_ids: list[int | None] = [None]
    token = None
    if team:
        people = [
            accounts.create_user(
                db, name=name, password=secrets.token_urlsafe(16), is_admin=name == TEAM[0]
            )
            for name in TEAM
        ]
        user_ids = [person.id for person in people]
        assert people[0].id is not None
        token = accounts.create_api_token(db, user_id=people[0].id, name="benchmarks").secret

    rng = random.Random(seed)
    newest = datetime.now(UTC) - timedelta(minutes=1)
    step = timedelta(days=HISTORY_DAYS) / max(1, jobs)
    counts, weights = zip(*NUM_IMAGES_WEIGHTS.items(), strict=True)
    image_id = 0
    job_id = 0
    credits = 1_000_000.0
    while job_id < jobs:
        job_rows: list[dict[str, Any]] = []
        image_rows: list[dict[str, Any]] = []
        for _ in range(min(BATCH_JOBS, jobs - job_id)):
            job_id += 1
            created = newest - step * (jobs - job_id)
            picture = pool[rng.randrange(len(pool))]
            num_images = rng.choices(counts, weights)[0]
            credits -= num_images * CREDITS_PER_IMAGE
            row = _job_row(rng, job_id, created, picture, num_images, credits)
            row["user_id"] = user_ids[job_id % len(user_ids)]
            job_rows.append(row)
            if row["status"] != JobStatus.COMPLETED:
                continue
            for index in range(num_images):
                image_id += 1
                image_rows.append(
                    {
                        "id": image_id,
                        "job_id": job_id,
                        "index": index,
                        "content_type": "image/png",
                        "width": picture.width,
                        "height": picture.height,
                        "byte_size": picture.byte_size,
                        "sha256": picture.sha256,
                        "source_url": row["output_urls"][index],
                        "created_at": row["finished_at"],
                    }
                )
        with db.write_engine.begin() as connection:
            connection.execute(sa.insert(Job), job_rows)
            if image_rows:
                connection.execute(sa.insert(Image), image_rows)
    # The prompt search index (FTS5 on SQLite, a generated tsvector column on PostgreSQL)
    # took these rows as they went in, as it takes the app's own.
    if db.dialect == "postgresql":
        with db.write_engine.begin() as connection:
            # Explicit ids leave the sequences behind; the planner needs statistics that
            # autovacuum would only gather some time later.
            postgres.advance_id_sequences(connection, [JOBS, IMAGES])
            connection.execute(sa.text("ANALYZE"))
    else:
        # FTS5 merged into one piece as the app's upkeep keeps it
        # (app.storage.db.sqlite.tidy_search_index), not left in the pieces a bulk load makes.
        with db.write_engine.begin() as connection:
            sqlite.optimize_search_index(connection)
    db.dispose()
    return Dataset(
        data_dir=data_dir,
        jobs=jobs,
        images=image_id,
        last_job_id=job_id,
        last_image_id=image_id,
        seconds=time.perf_counter() - started,
        token=token,
        database_url=database_url,
    )


def image_holding(dataset: Dataset, picture: PoolImage) -> int:
    """The first image row of `dataset` whose bytes are `picture`'s."""
    url = dataset.database_url
    db = Database(url) if url else Database.at_path(dataset.data_dir / "playground.db")
    try:
        with db.read_engine.connect() as connection:
            found = connection.execute(
                sa.select(sa.func.min(Image.id)).where(Image.sha256 == picture.sha256)  # type: ignore[arg-type]
            ).scalar()
    finally:
        db.dispose()
    if found is None:
        raise BenchError(f"no generated image holds {picture.path.name}")
    return int(found)


def _job_row(
    rng: random.Random,
    job_id: int,
    created: datetime,
    picture: PoolImage,
    num_images: int,
    credits_remaining: float,
) -> dict[str, Any]:
    image_size = SIZE_NAMES[(picture.width, picture.height)]
    text = prompts.prompt(rng)
    preset = next((p.slug for p in PRESETS if p.prompt == text), None)
    seed = rng.randrange(2**31) if rng.random() < 0.3 else None
    body: dict[str, Any] = {"prompt": text, "image_size": image_size}
    if seed is not None:
        body["seed"] = seed
    body["num_images"] = num_images
    # Odd multiplier modulo 2**96: a bijection, so every job gets its own upstream id.
    upstream_id = f"job_{(job_id * 0x9E3779B97F4A7C15) % 2**96:024x}"
    submitted = created + timedelta(seconds=rng.uniform(0.2, 0.8))
    seen_done = submitted + timedelta(seconds=rng.uniform(8, 40))
    finished = seen_done + timedelta(seconds=rng.uniform(0.3, 2.0))
    roll = rng.random()
    status = JobStatus.COMPLETED
    error = None
    upstream_status = "completed"
    if roll < FAILED_SHARE:
        status, upstream_status = JobStatus.FAILED, "failed"
        error = "PixelDojo: Generation failed: the model could not complete this request."
    elif roll < FAILED_SHARE + EXPIRED_SHARE:
        status = JobStatus.EXPIRED
        error = "The images expired on PixelDojo before they could be saved."
    stamp = int(created.timestamp())
    urls = [
        f"https://temp.pixeldojo.ai{IMAGE_PREFIX}/{stamp}-{upstream_id[4:]}{i}.png"
        for i in range(num_images)
    ]
    return {
        "id": job_id,
        "created_at": created,
        "updated_at": finished,
        "model": DEFAULT_MODEL,
        "preset": preset,
        "prompt": text,
        "image_size": image_size,
        "custom_width": None,
        "custom_height": None,
        "seed": seed,
        "num_images": num_images,
        "request_body": body,
        "idempotency_key": None,
        "status": status,
        "upstream_job_id": upstream_id,
        "upstream_status": upstream_status,
        "error": error,
        "submitted_at": submitted,
        "upstream_completed_at": seen_done if status != JobStatus.FAILED else None,
        "finished_at": finished,
        "expires_at": created + timedelta(hours=24),
        "credit_cost": float(num_images * CREDITS_PER_IMAGE),
        "estimated_credits": float(num_images * CREDITS_PER_IMAGE),
        "credits_remaining": credits_remaining,
        "output_urls": urls if status != JobStatus.FAILED else None,
        "poll_count": rng.randint(2, 7),
        "next_poll_at": None,
        "lease_owner": None,
        "lease_expires_at": None,
    }

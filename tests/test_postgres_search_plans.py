"""PostgreSQL's prompt search is planned for its words each time
(`app.storage.db.postgres.planned_for_their_values`), and finds what it found when the
server kept one plan for any words: the same pages, in the same order, from any cursor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.features.gallery import listing as gallery
from app.features.gallery.listing import Cursor, GalleryFilters
from app.storage.db import postgres
from app.storage.db.engine import Database
from tests.support.databases import DatabaseChoice
from tests.support.gallery_seed import SeededImage, seed_gallery
from tests.support.seeded_gallery import all_pages, expected

JOBS = 1200

# Each seeded prompt is eight of 27 words: one word is in a quarter of the prompts, three
# together in one in sixty, a phrase of two in one in a hundred; "zebra" in none.
SEARCHES = [
    "cat",
    "portrait light",
    "lighthouse tea grain",
    "zebra",
    '"neon city"',
    'dog "cat dog"',
]


@pytest.fixture
def gallery_db(
    tmp_path: Path, postgres_database: DatabaseChoice
) -> Iterator[tuple[Database, list[SeededImage]]]:
    db = postgres_database.open(tmp_path)
    images = seed_gallery(db, jobs=JOBS)
    with db.write_engine.begin() as connection:
        # As autovacuum would soon: the planner's statistics of the new rows.
        connection.execute(sa.text("ANALYZE"))
    yield db, images
    db.dispose()


@contextmanager
def one_plan_for_any_words(connection: sa.Connection) -> Iterator[None]:
    """How searches ran before: prepared on the server, answered from the generic plan."""
    driver_connection: Any = connection.connection.dbapi_connection
    threshold = driver_connection.prepare_threshold
    driver_connection.prepare_threshold = 0
    connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    try:
        yield
    finally:
        connection.exec_driver_sql("RESET plan_cache_mode")
        driver_connection.prepare_threshold = threshold


@pytest.mark.parametrize("q", SEARCHES)
def test_a_search_finds_what_one_plan_for_any_words_found(
    gallery_db: tuple[Database, list[SeededImage]], monkeypatch: pytest.MonkeyPatch, q: str
) -> None:
    db, images = gallery_db
    filters = GalleryFilters(q=q)
    deep = Cursor(job_id=JOBS // 3, index=0)

    def found() -> tuple[list[int], list[int], list[int | None]]:
        pages = all_pages(db, filters, limit=7)
        from_deep = gallery.search_images(db, filters=filters, cursor=deep, limit=20)
        jobs, _ = gallery.search_jobs(db, filters=filters, before_id=JOBS // 2, limit=30)
        return (
            pages,
            [entry.image_id for entry in from_deep.items],
            [item.job.id for item in jobs],
        )

    now = found()
    with monkeypatch.context() as patched:
        patched.setattr(postgres, "planned_for_their_values", one_plan_for_any_words)
        before = found()
    assert now == before
    everything = expected(images, filters)
    assert now[0] == everything
    job_of = {image.image_id: (image.job_id, image.index) for image in images}
    below = [i for i in everything if job_of[i] < (deep.job_id, deep.index)]
    assert now[1] == below[:20]


def test_a_search_is_never_prepared_so_never_answered_from_a_plan_kept_for_any_words(
    gallery_db: tuple[Database, list[SeededImage]],
) -> None:
    """The server chooses between a statement's generic plan and one for its values only
    once it is prepared (psycopg does so on its fifth run): unprepared, every search is
    planned for its words. (On 1,200 jobs the server may still pick the plans for the
    values; on 20,000 it answered "portrait light" from the generic plan, reading every
    match through the GIN index.)"""
    db, _ = gallery_db
    for _ in range(12):
        gallery.search_images(db, filters=GalleryFilters(q="portrait light"))
    with db.read_rows() as connection:
        # Every search above ran on this one connection: nothing else used the pool.
        assert db.read_engine.pool.checkedout() == 1  # type: ignore[attr-defined]
        assert db.read_engine.pool.checkedin() == 0  # type: ignore[attr-defined]
        prepared = connection.execute(
            sa.text(
                "SELECT count(*) FROM pg_prepared_statements"
                " WHERE statement LIKE :search AND NOT from_sql"
            ),
            {"search": "%prompt_search%"},
        ).scalar_one()
    assert prepared == 0

"""Gallery queries on a seeded SQLite gallery: the right images in the right order on every
page, the prompt index in step with the jobs, and plans that never sort the whole table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from app import gallery
from app.database import Database
from app.gallery import Cursor, GalleryFilters, parse_search
from app.models import Job, JobStatus, utcnow
from tests.gallery_seed import SeededImage, seed_gallery

JOBS = 1200


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Database, list[SeededImage]]]:
    db = Database.at_path(tmp_path_factory.mktemp("queries") / "playground.db")
    db.migrate()
    images = seed_gallery(db, jobs=JOBS)
    yield db, images
    db.dispose()


def matches(image: SeededImage, filters: GalleryFilters) -> bool:
    """The reference: what each filter means, written plainly."""
    prompt_words = image.prompt.lower().split()
    for term in parse_search(filters.q):
        text = term.text.lower()
        if term.phrase:
            if text not in image.prompt.lower():
                return False
        elif not any(word.startswith(text) for word in prompt_words):
            return False
    checks = [
        filters.preset is None or image.preset == filters.preset,
        filters.model is None or image.model == filters.model,
        filters.image_size is None or image.image_size == filters.image_size,
        filters.status is None or image.status == filters.status,
        filters.since is None or image.created_at.date() >= filters.since,
        filters.until is None or image.created_at.date() <= filters.until,
        not filters.favourite or image.favourite,
        filters.collection is None or filters.collection in image.collections,
    ]
    return all(checks)


def expected(
    images: list[SeededImage], filters: GalleryFilters, *, trash: bool = False
) -> list[int]:
    chosen = [i for i in images if i.trashed == trash and matches(i, filters)]
    chosen.sort(key=lambda i: (-i.job_id, i.index))
    return [i.image_id for i in chosen]


def all_pages(db: Database, filters: GalleryFilters, *, limit: int, **options: Any) -> list[int]:
    found: list[int] = []
    cursor: Cursor | None = None
    while True:
        page = gallery.search_images(db, filters=filters, cursor=cursor, limit=limit, **options)
        assert len(page.items) <= limit
        found.extend(entry.image_id for entry in page.items)
        if page.next_cursor is None:
            return found
        assert len(page.items) == limit
        cursor = page.next_cursor


FILTERS = [
    GalleryFilters(),
    GalleryFilters(q="lighthouse"),
    GalleryFilters(q="light"),
    GalleryFilters(q="neon city"),
    GalleryFilters(q='"film grain"'),
    GalleryFilters(q="robot", preset="neon-city"),
    GalleryFilters(q="tea", favourite=True),
    GalleryFilters(preset="food-overhead"),
    GalleryFilters(model="other-model"),
    GalleryFilters(image_size="custom", favourite=True),
    GalleryFilters(status=JobStatus.COMPLETED, image_size="square_hd"),
    GalleryFilters(status=JobStatus.FAILED),
    GalleryFilters(since=date(2026, 2, 1), until=date(2026, 2, 20)),
    GalleryFilters(favourite=True),
    GalleryFilters(favourite=True, preset="neon-city"),
    GalleryFilters(collection=1),
    GalleryFilters(collection=2, q="cat"),
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: repr(f.query_items()))
def test_every_page_holds_exactly_the_matching_images_in_order(
    seeded: tuple[Database, list[SeededImage]], filters: GalleryFilters
) -> None:
    db, images = seeded
    want = expected(images, filters)
    assert all_pages(db, filters, limit=37) == want
    if filters.q:
        assert all_pages(db, filters, limit=53, full_text=False) == want, "LIKE agrees"


def test_the_trash_lists_only_trashed_images(seeded: tuple[Database, list[SeededImage]]) -> None:
    db, images = seeded
    want = expected(images, GalleryFilters(), trash=True)
    assert want
    assert all_pages(db, GalleryFilters(), limit=10, trash=True) == want


def test_the_prompt_index_follows_inserts_and_deletes(tmp_path: Path) -> None:
    db = Database.at_path(tmp_path / "playground.db")
    db.migrate()
    now = utcnow()

    def job(prompt: str) -> Job:
        return Job(
            model="seedream-4",
            prompt=prompt,
            image_size="auto_2K",
            num_images=1,
            request_body={"prompt": prompt},
            created_at=now,
            updated_at=now,
        )

    def found(q: str) -> list[int]:
        page, _ = gallery.search_jobs(db, filters=GalleryFilters(q=q))
        return [item.job.id for item in page if item.job.id is not None]

    with db.write() as session:
        first, second = job("a quiet harbour"), job("a noisy harbour")
        session.add_all([first, second])
    assert found("harbour") == [second.id, first.id]
    with db.write() as session:
        session.execute(sa.update(Job).where(Job.id == first.id).values(prompt="a quiet meadow"))  # type: ignore[arg-type]
    assert found("harbour") == [second.id]
    assert found("meadow") == [first.id]
    with db.write() as session:
        session.execute(sa.delete(Job).where(Job.id == second.id))  # type: ignore[arg-type]
    assert found("harbour") == []
    # A failed write leaves the index as it was: it is the same transaction.
    with pytest.raises(RuntimeError), db.write() as session:
        session.add(job("a harbour that never was"))
        session.flush()
        raise RuntimeError("roll back")
    assert found("harbour") == []
    db.dispose()


def plans_of(db: Database, run: Callable[[], object]) -> list[str]:
    """EXPLAIN QUERY PLAN of each listing statement `run` executes, with its parameters."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM images" in statement:
            statements.append((statement, params))

    event.listen(db.read_engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(db.read_engine, "before_cursor_execute", capture)
    assert statements
    with db.read_engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        return [
            " ; ".join(row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sql, params))
            for sql, params in statements
        ]


@pytest.mark.parametrize(
    ("name", "filters", "cursor"),
    [
        ("first page", GalleryFilters(), None),
        ("deep page", GalleryFilters(), Cursor(40, 0)),
        ("search", GalleryFilters(q="lighthouse"), None),
        ("search, deep", GalleryFilters(q="lighthouse dawn"), Cursor(300, 0)),
        ("preset", GalleryFilters(preset="neon-city"), None),
        ("model", GalleryFilters(model="other-model"), Cursor(600, 1)),
        ("size", GalleryFilters(image_size="custom"), None),
        ("status", GalleryFilters(status=JobStatus.COMPLETED), None),
        ("favourites", GalleryFilters(favourite=True), None),
        ("favourites and preset", GalleryFilters(favourite=True, preset="neon-city"), None),
    ],
)
def test_listing_walks_an_index_in_page_order(
    seeded: tuple[Database, list[SeededImage]],
    name: str,
    filters: GalleryFilters,
    cursor: Cursor | None,
) -> None:
    """No full sort: the database stops after a page of rows, however large the gallery.
    (Sorting the images of one job, "RIGHT PART", is allowed: a job has at most six.)"""
    db, _ = seeded
    plans = plans_of(db, lambda: gallery.search_images(db, filters=filters, cursor=cursor))
    for plan in plans:
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, (name, plan)
        assert "SCAN jobs" not in plan, (name, plan)
        assert "thumbnails" not in plan
    if filters.q:
        assert len(plans) == 1, "one chunk of matching jobs fills a page"


def test_listing_columns_are_read_in_the_entry_fields_order() -> None:
    # Rows become GalleryEntry positionally, for speed: the two lists must agree.
    from dataclasses import fields

    from app.gallery import _ENTRY_COLUMNS, GalleryEntry

    assert [column.name for column in _ENTRY_COLUMNS] == [f.name for f in fields(GalleryEntry)]


def test_each_presets_latest_image_is_found_through_an_index(
    seeded: tuple[Database, list[SeededImage]],
) -> None:
    """The playground asks this on every load: it must not grow with the gallery."""
    db, _ = seeded
    plans = plans_of(db, lambda: gallery.latest_preset_images(db, slugs=["neon-city", "none"]))
    assert len(plans) == 2
    for plan in plans:
        assert "ix_jobs_preset_id" in plan, plan
        assert "SCAN jobs" not in plan and "SCAN images" not in plan, plan
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan

"""The gallery's queries use the indexes, on SQLite and on PostgreSQL: listing walks an index in
page order and stops after a page, a search is answered by the full-text index, and each
preset's latest image is found through one (read from the plans the databases give)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import col

from app.features.gallery import listing as gallery
from app.features.gallery import lookups
from app.features.gallery.listing import Cursor, GalleryFilters
from app.storage.db import postgres
from app.storage.db.engine import Database
from app.storage.db.tables import Job, JobStatus
from tests.support.gallery_seed import SeededImage
from tests.support.seeded_gallery import all_pages, expected

pytestmark = pytest.mark.both_databases


def plans_of(db: Database, run: Callable[[], object], *, may_sort: bool = False) -> list[str]:
    """The plan of each listing statement `run` executes, with its parameters.

    On PostgreSQL the planner is told to avoid scanning whole tables (and sorting, unless
    `may_sort`), as it would on a large gallery (on 1,200 jobs a scan is cheapest): if an
    index can serve the query, the plan shows it."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM images" in statement:
            statements.append((statement, params))

    # Sessions' reads, and listings' rows: on PostgreSQL the same pool, whose listeners
    # hear both already.
    engines = [db.read_engine]
    if db.rows_engine.pool is not db.read_engine.pool:
        engines.append(db.rows_engine)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", capture)
    assert statements
    with db.read_engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        if db.dialect == "sqlite":
            return [
                " ; ".join(row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + sql, params))
                for sql, params in statements
            ]
        with raw.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
            if not may_sort:
                cursor.execute("SET enable_sort = off")
            plans = []
            for sql, params in statements:
                cursor.execute("EXPLAIN " + sql, params)
                plans.append(" ; ".join(row[0] for row in cursor.fetchall()))
        raw.rollback()
        return plans


@pytest.mark.parametrize(
    ("name", "filters", "cursor"),
    [
        ("first page", GalleryFilters(), None),
        ("deep page", GalleryFilters(), Cursor(40, 0)),
        ("search", GalleryFilters(q="lighthouse"), None),
        ("search, deep", GalleryFilters(q="lighthouse dawn"), Cursor(300, 0)),
        ("phrase", GalleryFilters(q='"film grain"'), None),
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
        assert "thumbnails" not in plan
        if db.dialect == "sqlite":
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, (name, plan)
            # (The prompt index is a virtual table: FTS5 walks it newest first, and stops.)
            assert not re.search(r"SCAN jobs\b(?!_fts)", plan), (name, plan)
        else:
            assert "Seq Scan" not in plan, (name, plan)
            assert "~~" not in plan, (name, plan)  # LIKE
            if filters.q:
                assert "prompt_search @@" in plan, (name, plan)
    if filters.q:
        assert len(plans) == 1, "one statement: the first chunk of matching jobs fills a page"


@pytest.mark.parametrize("q", ["xylophone", "lighthouse xylo", '"castle robot tea"'])
def test_the_search_condition_is_answered_by_the_full_text_index(
    seeded: tuple[Database, list[SeededImage]], q: str
) -> None:
    """Prompts are never matched one by one with LIKE: FTS5 hands over ids on SQLite, and on
    PostgreSQL the condition is one the GIN index answers. (Whether the planner uses it for
    a page depends on how common the words are: for a common word, checking the stored
    tsvector of the newest jobs until a page is full is quicker.)"""
    db, images = seeded
    filters = GalleryFilters(q=q)
    assert all_pages(db, filters, limit=50) == expected(images, filters)
    if db.dialect == "sqlite":
        return
    terms = [(term.text, term.phrase) for term in filters.terms]
    statement = sa.select(col(Job.id)).where(postgres.prompt_matches(terms))
    with db.read_engine.connect() as connection:
        sql = statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = " ; ".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {sql}"))
    assert "Bitmap Index Scan on ix_jobs_prompt_search" in plan, plan


def test_listing_columns_are_read_in_the_entry_fields_order() -> None:
    # Rows become GalleryEntry positionally, for speed: the two lists must agree.
    from dataclasses import fields

    from app.features.gallery.listing import ENTRY_COLUMNS, GalleryEntry

    assert [column.name for column in ENTRY_COLUMNS] == [f.name for f in fields(GalleryEntry)]


def test_each_presets_latest_image_is_found_through_an_index(
    seeded: tuple[Database, list[SeededImage]],
) -> None:
    """The playground asks this on every load: it must not grow with the gallery."""
    db, _ = seeded
    plans = plans_of(db, lambda: lookups.latest_preset_images(db, slugs=["neon-city", "none"]))
    assert len(plans) == 2
    for plan in plans:
        if db.dialect == "sqlite":
            assert "ix_jobs_preset_id" in plan, plan
            assert "SCAN jobs" not in plan and "SCAN images" not in plan, plan
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
        else:
            # An index walk that stops at the first match (PostgreSQL picks which index by
            # how common the preset is), never a scan of the table.
            assert plan.startswith("Limit") and "Seq Scan" not in plan, plan

"""Gallery queries on a seeded gallery, on SQLite and on PostgreSQL: the right images in the
right order on every page, the prompt index in step with the jobs, the same search results
from FTS5 and from PostgreSQL's tsvector, and plans that use the indexes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import col

from app.features.gallery import listing as gallery
from app.features.gallery import lookups
from app.features.gallery.listing import Cursor, GalleryFilters, parse_search
from app.storage.db import postgres
from app.storage.db.engine import Database
from app.storage.db.tables import Image, Job, JobStatus, utcnow
from tests.support.databases import DatabaseChoice
from tests.support.gallery_seed import SeededImage, seed_gallery

pytestmark = pytest.mark.both_databases

JOBS = 1200


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, module_database: DatabaseChoice
) -> Iterator[tuple[Database, list[SeededImage]]]:
    db = module_database.open(tmp_path_factory.mktemp("queries"))
    db.migrate()
    images = seed_gallery(db, jobs=JOBS)
    if db.dialect == "postgresql":
        # As autovacuum would soon: the planner's statistics of the new rows.
        with db.write_engine.begin() as connection:
            connection.execute(sa.text("ANALYZE"))
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


def test_the_prompt_index_follows_inserts_and_deletes(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    db = database.open(tmp_path)
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


# Prompts and searches where tokenizers could disagree: case, accents, punctuation inside
# words, digits, apostrophes, other scripts, emoji.
PARITY_PROMPTS = [
    "A Lighthouse at dawn, watercolour",
    "lighthouses and LIGHTHOUSE keepers",
    "Café au lait on a zinc counter — film grain",
    "cafe racer motorbike, 35mm film, grain",
    "Crème brûlée, naïve still life",
    "sci-fi city at night, neon-lit rain",
    "scientific illustration of a fish",
    "don't panic: it's a towel",
    "Łódź street, Dvořák playing, Æsir myth",
    "Straße in München, ÉCLAIR patisserie",
    "東京タワー at dusk",
    "Привет мир, ёлка in snow",
    "Ωμέγα ΟΔΟΣ οδός",
    "robot_v2 with 4K HDR, 1.5x zoom, 3D render",
    "emoji 🐱cat party 🎉",
    "half ½ and x² squared",
    "The quick brown fox jumps over the lazy dog",
    "the dog jumps; quick fox browns",
    "portrait, 85mm, f/1.8, soft light",
    "portrait of a lighthouse keeper's dog",
]
PARITY_SEARCHES = [
    "lighthouse",
    "light",
    "LIGHTHOUSE keeper",
    '"lighthouse keeper"',
    "cafe",
    "café",
    "CAFÉ",
    '"film grain"',
    "film grain",
    "creme brulee",
    "naive",
    "sci-fi",
    "sci",
    "fi",
    '"sci fi"',
    "neon-lit",
    "don't",
    "dont",
    '"it s"',
    "lodz",
    "łódź",
    "dvorak",
    "æsir",
    "strasse",
    "straße",
    "münchen",
    "eclair",
    "東京",
    "東京タワー",
    "привет",
    "ПРИВЕТ",
    "ёлка",
    "елка",
    "οδος",
    "ΟΔΟΣ",
    "ωμεγα",
    "robot_v2",
    "v2",
    "4k",
    "1.5x",
    "3d",
    "cat",
    "🐱cat",
    "½",
    "x²",
    '"quick brown fox"',
    '"brown fox"',
    "fox quick",
    '"fox quick"',
    "85mm f/1.8",
    '"f 1 8"',
    "keeper's",
    "portrait dog",
    "nothing-like-this",
]


def test_postgres_search_finds_what_fts5_finds(
    tmp_path: Path, postgres_cluster: Any, postgres_test_databases: tuple[str, str]
) -> None:
    """The same prompts and searches on both databases: the same jobs, in the same order."""
    postgres_url = postgres_test_databases[1]
    postgres_cluster.empty_database(postgres_url)
    now = utcnow()
    rows = [
        {
            "id": job_id,
            "created_at": now,
            "updated_at": now,
            "model": "seedream-4",
            "prompt": prompt,
            "image_size": "auto_2K",
            "num_images": 1,
            "request_body": {"prompt": prompt},
            "status": JobStatus.COMPLETED,
            "poll_count": 0,
            "estimated_credits": 1.0,
        }
        for job_id, prompt in enumerate(PARITY_PROMPTS, start=1)
    ]
    found: dict[str, dict[str, list[int]]] = {}
    for kind, db in (
        ("sqlite", Database.at_path(tmp_path / "playground.db")),
        ("postgresql", Database(postgres_url)),
    ):
        db.migrate()
        with db.write() as session:
            session.connection().execute(sa.insert(Job.__table__), rows)  # type: ignore[attr-defined]
        found[kind] = {}
        for q in PARITY_SEARCHES:
            page, _ = gallery.search_jobs(db, filters=GalleryFilters(q=q), limit=100)
            found[kind][q] = [item.job.id for item in page if item.job.id is not None]
        db.dispose()
    assert found["postgresql"] == found["sqlite"]
    # Not agreement on nothing: these are all that find nothing, each for its reason.
    assert {q for q, ids in found["sqlite"].items() if not ids} == {
        "dont",  # "don't" is two tokens, don and t
        "lodz",  # ł is a letter of its own, not l with an accent
        "strasse",  # ß is not ss
        "ωμεγα",  # accents come off Latin letters only
        "елка",  # nor Cyrillic ones
        '"fox quick"',  # a phrase keeps its order
        "nothing-like-this",
    }
    assert found["sqlite"]["light"] == [20, 19, 2, 1]
    assert found["sqlite"]['"lighthouse keeper"'] == [20]
    assert found["sqlite"]["café"] == found["sqlite"]["cafe"] == [4, 3]


def test_prefixes_up_to_ten_characters_have_an_index_of_their_own(
    seeded: tuple[Database, list[SeededImage]],
) -> None:
    """A prefix ("ligh") is read like a word, newest first, stopping after a page, rather
    than gathered whole: how search stays O(page) at a million jobs (docs/benchmarks.md)."""
    db, images = seeded
    if db.dialect == "sqlite":
        with db.read_rows() as connection:
            created = connection.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = 'jobs_fts'")
            ).scalar()
        assert "prefix='1 2 3 4 5 6 7 8 9 10'" in str(created)
    for q in ("l", "lig", "lighthous", "lighthouse"):
        assert all_pages(db, GalleryFilters(q=q), limit=97) == expected(
            images, GalleryFilters(q=q)
        ), q


def test_tidying_the_prompt_index_keeps_every_match(
    seeded: tuple[Database, list[SeededImage]],
) -> None:
    db, images = seeded
    filters = GalleryFilters(q="lighthouse")
    before = all_pages(db, filters, limit=61)
    for _ in range(3):  # bounded steps of merging, as the app's upkeep takes them
        gallery.tidy_search(db)
    assert all_pages(db, filters, limit=61) == before == expected(images, filters)


def test_a_job_added_while_a_search_reads_is_not_shown_twice(tmp_path: Path) -> None:
    """A search whose first chunk of matching jobs does not fill the page reads on, chunk
    by chunk: from one snapshot, so a job committed between its statements cannot move
    where the next chunk begins (that showed the first chunk's last job twice)."""
    db = Database.at_path(tmp_path / "playground.db")
    db.migrate()
    chunk = gallery._FTS_FIRST_CHUNK
    total = chunk * 3

    def job_row(job_id: int) -> dict[str, object]:
        return {
            "id": job_id,
            "created_at": utcnow(),
            "updated_at": utcnow(),
            "model": "seedream-4",
            "prompt": "tea party",
            "image_size": "auto_2K",
            "num_images": 1,
            "request_body": {"prompt": "tea party"},
            "status": JobStatus.COMPLETED,
            "poll_count": 1,
        }

    def image_row(job_id: int, *, favourite: bool) -> dict[str, object]:
        return {
            "id": job_id,
            "job_id": job_id,
            "index": 0,
            "content_type": "image/png",
            "width": 8,
            "height": 8,
            "byte_size": 1,
            "sha256": f"{job_id:064x}",
            "source_url": "https://temp.pixeldojo.ai/x.png",
            "created_at": utcnow(),
            "favourite": favourite,
        }

    # Favourites are sparse (one job in ten), so the newest `chunk` matching jobs hold
    # fewer than a page of them; the oldest job of that chunk is a favourite.
    oldest_in_first_chunk = total - chunk + 1
    with db.write() as session:
        connection = session.connection()
        connection.execute(sa.insert(Job), [job_row(n) for n in range(1, total + 1)])
        connection.execute(
            sa.insert(Image),
            [
                image_row(n, favourite=n % 10 == oldest_in_first_chunk % 10)
                for n in range(1, total + 1)
            ],
        )
    added: list[int] = []

    def add_a_job_after_the_first_statement(*_: Any) -> None:
        if not added:
            added.append(total + 1)
            with db.write() as session:
                session.connection().execute(sa.insert(Job), [job_row(total + 1)])

    filters = GalleryFilters(q="tea", favourite=True)
    engines = (db.read_engine, db.rows_engine)  # whichever the search reads on
    for engine in engines:
        event.listen(engine, "after_cursor_execute", add_a_job_after_the_first_statement)
    try:
        page = gallery.search_images(db, filters=filters, limit=chunk // 10 + 5)
    finally:
        for engine in engines:
            event.remove(engine, "after_cursor_execute", add_a_job_after_the_first_statement)
        db.dispose()
    assert added, "the job was added between the search's statements"
    ids = [entry.image_id for entry in page.items]
    assert len(ids) == len(set(ids)), f"an image shown twice: {ids}"
    favourites = [n for n in range(total, 0, -1) if n % 10 == oldest_in_first_chunk % 10]
    assert ids == favourites[: len(ids)] and oldest_in_first_chunk in ids

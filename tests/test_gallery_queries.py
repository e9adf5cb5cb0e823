"""Gallery queries on a seeded gallery, on SQLite and on PostgreSQL: the right images in the
right order on every page, the prompt index in step with the jobs, the same search results
from FTS5 and from PostgreSQL's tsvector (the plans: tests/test_gallery_plans.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from app.features.gallery import listing as gallery
from app.features.gallery.listing import GalleryFilters
from app.storage.db.engine import Database
from app.storage.db.tables import Image, Job, JobStatus, utcnow
from tests.support.databases import DatabaseChoice
from tests.support.gallery_seed import SeededImage
from tests.support.seeded_gallery import all_pages, expected

pytestmark = pytest.mark.both_databases


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

"""A seeded gallery shared by a module's tests (`seeded`, a fixture offered to every test
through tests/conftest.py: 1,200 jobs on the module's database), and the reference the
listing is held to: what each filter finds, written plainly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.features.gallery import listing as gallery
from app.features.gallery.listing import Cursor, GalleryFilters, parse_search
from app.storage.db.engine import Database
from tests.support.databases import DatabaseChoice
from tests.support.gallery_seed import SeededImage, seed_gallery

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

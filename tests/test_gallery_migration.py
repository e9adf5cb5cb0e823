"""The gallery migration on a gallery that already has jobs, on SQLite and on PostgreSQL: they
become searchable; it also undoes."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from app.features.gallery import listing as gallery
from app.features.gallery.listing import GalleryFilters
from app.storage.db.engine import Database, migrations_config
from tests.support.databases import DatabaseChoice

pytestmark = pytest.mark.both_databases


def gallery_revision() -> tuple[str, str]:
    """This revision and the one before it, found by name: revision ids get renumbered."""
    scripts = ScriptDirectory.from_config(migrations_config())
    for script in scripts.walk_revisions():
        if script.path.endswith("_gallery.py"):
            assert isinstance(script.down_revision, str)
            return script.revision, script.down_revision
    raise AssertionError("no gallery revision")


def migrate(db: Database, revision: str, *, down: bool = False) -> None:
    with db.write_engine.begin() as connection:
        config = migrations_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_jobs_made_before_the_gallery_revision_are_searchable_after_it(
    tmp_path: Path, database: DatabaseChoice
) -> None:
    if database.url is None:
        db = Database.at_path(tmp_path / "playground.db")
    else:
        # The test database comes migrated: back to no schema at all first.
        db = Database(database.url)
        migrate(db, "base", down=True)
    revision, before = gallery_revision()
    migrate(db, before)
    # Raw SQL, not the model: the jobs table has gained columns since this revision.
    with db.write_engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO jobs (id, model, prompt, image_size, num_images, request_body,"
                " status, poll_count, estimated_credits, created_at, updated_at) VALUES (7,"
                " 'seedream-4', 'an old lighthouse', 'auto_2K', 1, '{}', 'completed', 0, 0,"
                " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    with db.write_engine.begin() as connection:
        connection.execute(
            sa.text(
                'INSERT INTO images (id, job_id, "index", content_type, width, height,'
                " byte_size, sha256, source_url, created_at) VALUES (3, 7, 0, 'image/png',"
                " 2048, 2048, 10, 'abc', 'https://temp.pixeldojo.ai/x.png', '2026-01-01 00:00:00')"
            )
        )
    migrate(db, revision)
    page = gallery.search_images(db, filters=GalleryFilters(q="lighthouse"))
    assert [(e.image_id, e.favourite, e.deleted_at) for e in page.items] == [(3, False, None)]

    migrate(db, before, down=True)
    with db.read_engine.connect() as connection:
        inspector = sa.inspect(connection)
        tables = set(inspector.get_table_names())
        columns = {column["name"] for column in inspector.get_columns("images")}
        job_columns = {column["name"] for column in inspector.get_columns("jobs")}
    assert "jobs_fts" not in tables and "collections" not in tables
    assert "favourite" not in columns
    assert "prompt_search" not in job_columns
    if db.dialect == "sqlite":
        with db.read_engine.connect() as connection:
            images_sql = str(
                connection.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'images'"
                ).scalar()
            )
        assert "AUTOINCREMENT" in images_sql, "ids are still never reused"
    migrate(db, "head")
    assert [
        e.image_id for e in gallery.search_images(db, filters=GalleryFilters(q="old")).items
    ] == [3]
    db.dispose()

"""The schema comes from migrations, matches the models, and SQLite runs as designed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from app.database import Database, include_in_comparison, migrations_config
from app.sqlite import BLOB_PAGE_SIZE, SQLiteBlobStore


def test_migrations_build_the_schema_the_models_describe(tmp_path: Path) -> None:
    db = Database.at_path(tmp_path / "playground.db")
    db.migrate()
    db.migrate()  # running again at the next start is a no-op
    with db.read_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_in_comparison}
        )
        assert compare_metadata(context, SQLModel.metadata) == []
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()


def test_every_migration_undoes_and_redoes(tmp_path: Path) -> None:
    db = Database.at_path(tmp_path / "playground.db")
    db.migrate()
    revisions = [
        script.revision
        for script in ScriptDirectory.from_config(migrations_config()).walk_revisions()
    ]
    with db.write_engine.begin() as connection:
        config = migrations_config()
        config.attributes["connection"] = connection
        for _ in revisions:
            command.downgrade(config, "-1")
        assert MigrationContext.configure(connection).get_current_revision() is None
        assert "jobs" not in sa_tables(connection)
        command.upgrade(config, "head")
        assert MigrationContext.configure(connection).get_current_revision() == revisions[0]
    with db.read_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_in_comparison}
        )
        assert compare_metadata(context, SQLModel.metadata) == []
    db.dispose()


def sa_tables(connection: sa.Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


def test_the_blob_store_uses_large_pages_and_round_trips_bytes(tmp_path: Path) -> None:
    store = SQLiteBlobStore(tmp_path / "images.db")
    payload = bytes(range(256)) * 20_000  # 5 MB, spanning several chunks
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    store.put_file(digest, source)
    store.put_file(digest, source)  # the same content again is a no-op
    assert store.digests() == {digest}
    assert store.size(digest) == len(payload)
    chunks = list(store.iter_chunks(digest))
    assert len(chunks) > 1
    assert b"".join(chunks) == payload
    with store._connection() as connection:
        assert connection.execute("PRAGMA page_size").fetchone()[0] == BLOB_PAGE_SIZE
    store.close()


def test_sweep_removes_only_old_unreferenced_blobs(tmp_path: Path) -> None:
    store = SQLiteBlobStore(tmp_path / "images.db")
    digests = []
    for content in (b"kept", b"orphan"):
        path = tmp_path / content.decode()
        path.write_bytes(content)
        digests.append(hashlib.sha256(content).hexdigest())
        store.put_file(digests[-1], path)
    kept = digests[0]
    assert store.sweep({kept}) == 0, "recent blobs are spared: a writer may be mid-commit"
    assert store.sweep({kept}, older_than_seconds=-1) == 1
    assert store.digests() == {kept}
    store.close()


def test_the_blob_sweep_lists_blobs_without_reading_their_rows(tmp_path: Path) -> None:
    store = SQLiteBlobStore(tmp_path / "images.db")
    for table in ("blobs", "thumbnails"):
        with store._connection() as connection:
            plan = " ".join(
                str(row[3])
                for row in connection.execute(
                    f"EXPLAIN QUERY PLAN SELECT sha256 FROM {table} WHERE created_at < 0"
                )
            )
        # A row holds the first kilobytes of its image: a scan would read them all.
        assert "COVERING INDEX" in plan, plan
    store.close()

"""The schema comes from migrations, matches the models, on SQLite and on PostgreSQL; many
processes starting together migrate once; SQLite runs as designed."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from app.storage.blobs.sqlite import BLOB_PAGE_SIZE, SWEEP_CANDIDATES, SQLiteBlobStore
from app.storage.db.engine import Database, include_in_comparison, migrations_config
from app.storage.db.sqlite import use_wal


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database with no schema at all, of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'playground.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def test_migrations_build_the_schema_the_models_describe(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    assert db.migrate() == (None, head_revision())
    # Running again at the next start is a no-op.
    assert db.migrate() == (head_revision(), head_revision())
    with db.read_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_in_comparison}
        )
        assert compare_metadata(context, SQLModel.metadata) == []
        if db.dialect == "sqlite":
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        else:
            # Record numbers, and every column pointing at one, are 64-bit.
            narrow = connection.execute(
                sa.text(
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND data_type = 'integer'"
                    " AND (column_name IN ('id', 'created_by') OR column_name LIKE :ids)"
                ),
                {"ids": "%\\_id"},
            ).all()
            assert narrow == []
    with db.read_rows() as connection:
        # The listings' connections: no transaction held open (and on SQLite, the pragmas).
        if db.dialect == "sqlite":
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            raw = connection.connection.driver_connection
            assert raw is not None and not raw.in_transaction
        else:
            connection.exec_driver_sql("SELECT 1")
            raw = connection.connection.driver_connection
            assert raw is not None and raw.autocommit
            assert raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    db.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(migrations_config()).get_current_head()
    assert head is not None
    return head


def test_every_migration_undoes_and_redoes(empty_database_url: str) -> None:
    db = Database(empty_database_url)
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


def test_ten_processes_starting_together_migrate_once(empty_database_url: str) -> None:
    """Ten apps start at once on an empty database, each with its own connections (as ten
    processes would have): one migrates, the others wait for it and find nothing to do."""
    starting = threading.Barrier(10)
    results: list[tuple[str | None, str | None]] = []
    errors: list[BaseException] = []

    def start() -> None:
        db = Database(empty_database_url)
        try:
            starting.wait()
            results.append(db.migrate())
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=start) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    head = head_revision()
    assert Counter(results) == {(None, head): 1, (head, head): 9}


def test_a_new_sqlite_file_is_switched_to_wal_once_another_connection_lets_go(
    tmp_path: Path,
) -> None:
    """Why ten processes starting together on a new SQLite file once failed: each switches
    the new file to WAL, and SQLite refuses a switch at once, without waiting out the busy
    timeout, while another connection holds a lock on the file (as the first one to switch
    does). The switch is tried again until the lock is let go."""
    path = tmp_path / "playground.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a new file, still with a rollback journal
    late = sqlite3.connect(path, isolation_level=None, timeout=30)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        late.execute("PRAGMA journal_mode = WAL")
    assert time.monotonic() - started < 5, "SQLite alone refuses at once, despite the timeout"

    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            holder.execute("COMMIT")  # the other process is done with the file

    use_wal(late, pause=pause)
    assert len(pauses) == 3
    assert late.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    late.close()
    holder.close()


def test_a_postgres_url_is_opened_with_psycopg_3(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")
    db = Database(postgres_url)
    try:
        assert db.url.drivername == "postgresql+psycopg"
        with db.read() as session:
            assert session.execute(sa.text("SELECT 1")).scalar() == 1
        # Listings read in autocommit from the read pool, not a pool of their own: every
        # process's connections count against the server's one limit.
        assert db.rows_engine.pool is db.read_engine.pool
        with db.read_rows() as connection:
            assert connection.connection.driver_connection.autocommit  # type: ignore[union-attr]
        with db.read_engine.connect() as connection:
            assert not connection.connection.driver_connection.autocommit  # type: ignore[union-attr]
    finally:
        db.dispose()


def test_the_database_url_setting_is_checked_and_hides_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.cli.local import load_settings
    from app.core.config import Settings

    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        database_url="postgresql://team:s3cret-pw@db.internal:5432/playground",
    )
    assert settings.sqlalchemy_url == (
        "postgresql+psycopg://team:s3cret-pw@db.internal:5432/playground"
    )
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in Database(settings.sqlalchemy_url).display_url
    assert Settings(_env_file=None, data_dir=tmp_path).sqlalchemy_url == (
        f"sqlite:///{tmp_path / 'playground.db'}"
    )
    monkeypatch.setenv("PLAYGROUND_DATABASE_URL", "mysql://root:pw@host/db")
    with pytest.raises(SystemExit, match="must be a postgresql:// URL") as refused:
        load_settings()
    assert "root:pw" not in str(refused.value)


def test_sqlite_databases_made_by_the_old_revisions_keep_their_rowid_ids(tmp_path: Path) -> None:
    """Ids are BIGINT on PostgreSQL, but SQLite's tables keep INTEGER PRIMARY KEY
    AUTOINCREMENT: the rowid, never reused, as they always were."""
    db = Database.at_path(tmp_path / "playground.db")
    db.migrate()
    with db.read_engine.connect() as connection:
        for table in ("jobs", "images", "users", "api_tokens", "audit_events", "team_presets"):
            sql = connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = ?", (table,)
            ).scalar()
            assert "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT" in str(sql), table
    db.dispose()


def test_undoing_the_newest_migration_on_sqlite_keeps_the_jobs_table_whole(
    tmp_path: Path,
) -> None:
    """Dropping a column by copying the table (a batch migration) would lose AUTOINCREMENT
    and the triggers that keep prompt search current."""
    db = Database.at_path(tmp_path / "playground.db")
    db.migrate()

    def jobs_table(connection: sa.Connection) -> tuple[str, set[str]]:
        table = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
        ).scalar()
        triggers = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'jobs'"
        ).scalars()
        return str(table), set(triggers)

    with db.write_engine.begin() as connection:
        before_sql, before_triggers = jobs_table(connection)
        assert "AUTOINCREMENT" in before_sql
        assert {"jobs_fts_after_insert", "jobs_fts_after_update"} <= before_triggers
        config = migrations_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "-1")
        after_sql, after_triggers = jobs_table(connection)
        assert "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT" in after_sql
        assert after_triggers == before_triggers
        command.upgrade(config, "head")
    db.dispose()


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


def test_the_blob_sweep_looks_through_indexes_not_rows(tmp_path: Path) -> None:
    gallery = Database.at_path(tmp_path / "playground.db")
    gallery.migrate()
    store = SQLiteBlobStore(tmp_path / "images.db")
    with store._beside(gallery) as connection:
        steps = [
            str(row[3])
            for row in connection.execute(
                f"EXPLAIN QUERY PLAN {SWEEP_CANDIDATES}", (0,) * SWEEP_CANDIDATES.count("?")
            )
        ]
    searches = [step for step in steps if step.startswith(("SEARCH", "SCAN"))]
    # A blob row holds the first kilobytes of its image: a scan would read them all. And
    # each one's rows are found by the images' digest index, not by reading the images.
    kinds = SWEEP_CANDIDATES.count(" UNION ") + 1  # blobs, thumbnails, previews
    assert len(searches) == 2 * kinds, steps
    assert all("COVERING INDEX" in step for step in searches), steps
    assert sum("ix_images_sha256" in step for step in searches) == kinds, steps
    store.close()
    gallery.dispose()


def test_the_migrate_command_brings_the_schema_up_to_date(
    empty_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.cli import main as cli

    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path))
    if empty_database_url.startswith("postgresql"):
        monkeypatch.setenv("PLAYGROUND_DATABASE_URL", empty_database_url)
    assert cli.main(["migrate"]) == 0
    assert f"migrated the schema from revision (none) to {head_revision()}" in (
        capsys.readouterr().err
    )
    assert cli.main(["migrate"]) == 0
    assert f"the schema is up to date (revision {head_revision()})" in capsys.readouterr().err
    if empty_database_url.startswith("postgresql"):
        # Nothing of the gallery is in the data dir, so there is no file there to back up.
        assert not list(tmp_path.glob("*.db")), "no stray SQLite files beside PostgreSQL"
        with pytest.raises(SystemExit, match=r"in PostgreSQL .*pg_dump"):
            cli.main(["backup", str(tmp_path / "gallery.tar")])
    db = Database(empty_database_url)
    with db.read_engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head_revision()
    db.dispose()

"""What the PostgreSQL blob store alone must do beyond the stores' shared contract
(tests/test_blob_stores.py): how its bytes travel from the server."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from app.core.database_url import engine_url
from app.storage.blobs.postgres import PostgresBlobStore
from app.storage.blobs.protocol import CHUNK_BYTES
from app.storage.db.engine import Database

IMAGE_BYTES = 3 * CHUNK_BYTES + 12_345


def test_image_and_thumbnail_bytes_come_from_the_server_in_binary_not_hex_text(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(engine_url(postgres_url))
    db.migrate()
    store = PostgresBlobStore(postgres_url)
    data = os.urandom(IMAGE_BYTES)
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "image.png").write_bytes(data)
    store.put_file(sha, tmp_path / "image.png")
    store.put_thumbnail(sha, b"RIFF thumbnail")
    # A pool's first connection asks the server about itself first: done before counting.
    assert store.read_thumbnail(sha) == b"RIFF thumbnail"
    # What the server was asked while the bytes were read, and the format of each result
    # that carries stored bytes (a column named `data`): text hex-encodes a bytea (twice
    # the bytes on the wire, decoded again here).
    asked: list[str] = []
    formats: list[int] = []
    execute = psycopg.Cursor.execute

    def recording(cursor: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        answered = execute(cursor, query, *args, **kwargs)
        asked.append(str(query))
        result = cursor.pgresult
        if result is not None and result.nfields and result.fname(0) == b"data":
            formats.append(result.fformat(0))
        return answered

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    try:
        served = b"".join(store.iter_chunks(sha))
        thumbnail = store.read_thumbnail(sha)
    finally:
        store.close()
        db.dispose()
    assert served == data and thumbnail == b"RIFF thumbnail"
    assert len(formats) == 4 + 1, "a query a stored chunk, and one for the thumbnail"
    assert set(formats) == {pq.Format.BINARY}
    # The chunk count, the chunks, the thumbnail: no ping before each (a round trip apiece).
    assert len(asked) == 1 + 4 + 1, asked


def test_reads_carry_on_after_the_server_closed_the_pooled_connections(
    postgres_url: str, tmp_path: Path
) -> None:
    db = Database(engine_url(postgres_url))
    db.migrate()
    store = PostgresBlobStore(postgres_url)
    data = os.urandom(IMAGE_BYTES)
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "image.png").write_bytes(data)
    try:
        store.put_file(sha, tmp_path / "image.png")
        store.put_thumbnail(sha, b"RIFF thumbnail")
        assert b"".join(store.iter_chunks(sha)) == data, "the pool now holds connections"
        # What a server restart does to them.
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            closed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert closed is not None and closed[0] >= 1
        assert store.read_thumbnail(sha) == b"RIFF thumbnail"
        assert b"".join(store.iter_chunks(sha)) == data
    finally:
        store.close()
        db.dispose()

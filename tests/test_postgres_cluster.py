"""The throwaway PostgreSQL server the storage tests run against is real and isolated."""

from __future__ import annotations

from typing import Any

import psycopg


def test_each_test_gets_an_empty_database_of_its_own(postgres_cluster: Any) -> None:
    first = postgres_cluster.create_database()
    second = postgres_cluster.create_database()
    assert first != second
    with psycopg.connect(first, autocommit=True) as connection:
        version = connection.execute("SHOW server_version_num").fetchone()
        assert version is not None and int(version[0]) >= 150000
        connection.execute("CREATE TABLE marker (id bigint)")
    with psycopg.connect(second) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)


def test_the_server_listens_on_loopback_only(postgres_cluster: Any) -> None:
    with psycopg.connect(postgres_cluster.url()) as connection:
        row = connection.execute("SHOW listen_addresses").fetchone()
    assert row == ("127.0.0.1",)

"""Counting the round trips to PostgreSQL this process makes while a block runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

_COUNTED = ("do_ping", "do_commit", "do_rollback")


class RoundTrips:
    """Pings, statements, and each transaction's BEGIN and end, in every engine of the
    process: psycopg sends BEGIN itself before a transaction's first statement, and COMMIT
    or ROLLBACK only while one is open, so a transaction costs two round trips beside its
    statements. A ping is the dialect's `do_ping`, whoever calls it (the pool's
    `pool_pre_ping` or app/storage/db/postgres.py)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._saved: dict[str, Any] = {}

    def summary(self) -> dict[str, int]:
        return dict(self.counts)

    def __enter__(self) -> RoundTrips:
        self._saved = {name: getattr(PGDialect_psycopg, name) for name in _COUNTED}
        for name, method in self._saved.items():
            setattr(PGDialect_psycopg, name, self._counting(name, method))
        sa.event.listen(sa.Engine, "before_cursor_execute", self._statement)
        return self

    def __exit__(
        self,
        type_: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for name, method in self._saved.items():
            setattr(PGDialect_psycopg, name, method)
        sa.event.remove(sa.Engine, "before_cursor_execute", self._statement)

    def _statement(self, *args: Any) -> None:
        self.counts["statement"] += 1

    def _counting(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        counts = self.counts

        def counted(dialect: Any, connection: Any) -> Any:
            if name == "do_ping":
                counts["ping"] += 1
            else:
                # The pool hands its own wrapper to the reset on return.
                raw = getattr(connection, "dbapi_connection", connection)
                if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    counts["begin"] += 1
                    counts[name.removeprefix("do_")] += 1
            return method(dialect, connection)

        return counted

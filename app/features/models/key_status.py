"""Whether PixelDojo currently refuses our API key.

A 401 anywhere (submit or poll) records a refusal in the database, so every
worker and every page knows: a banner says so, submissions are refused before
any upstream request, and polls wait. It clears when a call with the key
succeeds again (a person can ask for a check from the banner).
"""

from __future__ import annotations

import hashlib
import time

from pydantic import SecretStr

from app.storage.db.engine import Database
from app.storage.db.tables import KeyStatus, utcnow

# Pages ask on every render; a refusal recorded by another worker shows within this.
CACHE_SECONDS = 2.0


def fingerprint(api_key: SecretStr) -> str:
    return hashlib.sha256(api_key.get_secret_value().encode()).hexdigest()[:16]


class KeyHealth:
    def __init__(self, db: Database, api_key: SecretStr) -> None:
        self._db = db
        self._fingerprint = fingerprint(api_key)
        self._cached: tuple[float, str | None] | None = None

    def problem(self) -> str | None:
        """The upstream's refusal message while the key is refused, else None."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
            return self._cached[1]
        with self._db.read() as session:
            row = session.get(KeyStatus, self._fingerprint)
        message = row.message if row is not None else None
        self._cached = (now, message)
        return message

    def refused(self, message: str) -> None:
        with self._db.write() as session:
            row = session.get(KeyStatus, self._fingerprint)
            if row is None:
                row = KeyStatus(fingerprint=self._fingerprint, failed_at=utcnow(), message=message)
            row.message = message
            session.add(row)
        self._cached = (time.monotonic(), message)

    def accepted(self) -> None:
        """A call with the key worked: clear a recorded refusal (a no-op when there is none)."""
        if self.problem() is None:
            return
        with self._db.write() as session:
            row = session.get(KeyStatus, self._fingerprint)
            if row is not None:
                session.delete(row)
        self._cached = (time.monotonic(), None)

"""Who a session cookie or an API token belongs to, remembered for a moment.

Every request of a signed-in person presents one of them, and looking it up (a
thread-pool hop and a query) cost more than most of what the request then did.
So each process keeps what it found, keyed by the credential's SHA-256, for at
most `TTL_SECONDS`, under these rules:

- **In this process a change is seen at once.** Every write that ends a
  session, revokes a token or changes a person goes through `app.features.people.accounts`,
  which calls `Database.credentials_changed()` after it commits; that empties
  this cache before the write's own request has answered. A lookup that was
  already reading the database when the change landed cannot put its (now
  stale) answer back: entries are stored only if no change happened since the
  lookup began (`generation`).
- **Another process's change is seen within `TTL_SECONDS` on SQLite** (a second
  worker, or the CLI removing a person while the server runs), and **at once on
  PostgreSQL**: there `credentials_changed` also sends a NOTIFY, which every
  process's listening thread hears and passes on to its cache
  (`app.storage.db.postgres.CredentialNotices`); after a lost connection the cache is
  emptied too. The TTL stays as the bound should a notice go missing.
- A session's own expiry is checked on every use, cached or not.

Entries hold the person as it was read (admin or not, removed or not), never a
password hash's meaning: signing in always asks the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.storage.db.tables import User

# The longest a change made by another process goes unseen here (see the module docstring).
TTL_SECONDS = 5.0
# Bounded, so a flood of made-up tokens cannot grow it (misses are not stored anyway).
MAX_ENTRIES = 4096


@dataclass(frozen=True)
class Credential:
    """A live session or API token and the person it signs in."""

    user: User
    # Sessions: the hash the CSRF token is tied to; None for API tokens.
    session_hash: str | None
    csrf_token: str
    # API tokens: the row, and when its use was last written (written at most once a minute).
    token_id: int | None = None
    last_used_at: datetime | None = None
    # Sessions: when it ends, as a Unix time; checked on every use.
    expires_at: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class _Entry:
    credential: Credential
    stored_at: float


class CredentialCache:
    def __init__(
        self,
        *,
        ttl_seconds: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def generation(self) -> int:
        """Read before a lookup and hand to `put`: a change in between keeps the answer out."""
        return self._generation

    def get(self, key: str) -> Credential | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() - entry.stored_at >= self._ttl:
            self._entries.pop(key, None)
            return None
        return entry.credential

    def put(self, key: str, credential: Credential, *, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = _Entry(credential, self._clock())

    def refresh(self, key: str, credential: Credential) -> None:
        """Replace what is remembered of a credential still here, keeping when it was read
        (its TTL runs from the database read, not from this): a credential dropped since,
        by a change or its TTL, is not brought back."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries[key] = _Entry(credential, entry.stored_at)

    def clear(self) -> None:
        """Something about sessions, tokens or people changed: drop everything."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

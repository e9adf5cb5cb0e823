"""Who may use the app: whether sign-in is on, who holds a cookie or token, signed cookies,
and cross-site request tokens.

Sign-in is on as soon as one account exists. Until then the app serves one
person on this machine and answers only to loopback host names, so a web page
elsewhere cannot reach it by DNS rebinding.

The gate asks these on every request, so each comes in two halves: a `cached_*`
one that never blocks (the event loop calls it) and a blocking one that asks
the database (called in a worker thread on a miss). What is cached, and how a
change made by another process is seen at once, is in app/features/people/credentials.py.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from sqlmodel import Session

from app.core import signing
from app.core.config import Settings, is_loopback_host
from app.features.people import accounts
from app.features.people.credentials import Credential, CredentialCache
from app.storage.db.engine import Database
from app.storage.db.tables import AppSecret, utcnow
from app.storage.db.upsert import upsert

# Where versions before the database kept it; read once, to carry it over.
SECRET_FILE = "secret_key"
# Pages ask on every request; an account added from the CLI takes effect within this.
CACHE_SECONDS = 2.0


SIGNING_SECRET = "signing_key"


def load_secret(settings: Settings, db: Database) -> bytes:
    """The signing key: the setting, else one kept in the database, made by whichever process
    starts first. Every web process then accepts every session and form token.

    A data dir from before the key moved into the database keeps its key (the file's),
    so links and callback addresses it signed still check.
    """
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    stored = _stored_secret(db)
    if stored is not None:
        return stored.encode()
    legacy = settings.data_dir / SECRET_FILE
    value = _read_secret(legacy) if legacy.is_file() else secrets.token_hex(32)

    def store(session: Session) -> str:
        # Another process may have stored one first: that one counts.
        row = session.get(AppSecret, SIGNING_SECRET)
        if row is None:
            row = AppSecret(name=SIGNING_SECRET, value=value, created_at=utcnow())
            session.add(row)
        return row.value

    return upsert(db, store).encode()


def _stored_secret(db: Database) -> str | None:
    with db.read() as session:
        row = session.get(AppSecret, SIGNING_SECRET)
    return row.value if row is not None else None


def _read_secret(path: Path) -> str:
    for _ in range(50):
        value = path.read_text().strip()
        if value:
            return value
        time.sleep(0.01)  # an older version of the app is writing it
    raise RuntimeError(f"{path} is empty; delete it to have a new key made")


class Access:
    def __init__(
        self, db: Database, secret: bytes, *, credentials: CredentialCache | None = None
    ) -> None:
        self._db = db
        self.signer = signing.Signer(secret)
        self._cached: tuple[float, bool] | None = None
        self.credentials = credentials if credentials is not None else CredentialCache()
        self._unsubscribe = db.on_credentials_changed(self.credentials.clear)
        marker = db.credentials_marker()
        if marker is not None:
            self.credentials.follow(marker)
        # What requests signed in by an API token carry (they have no session to tie it to).
        self._sessionless_csrf = self.csrf_token(None)

    def close(self) -> None:
        self._unsubscribe()

    def cached_sign_in_on(self) -> bool | None:
        """Whether sign-in is on, if known from the last `CACHE_SECONDS`; None: ask `sign_in_on`."""
        cached = self._cached
        if cached is None or time.monotonic() - cached[0] > CACHE_SECONDS:
            return None
        return cached[1]

    def sign_in_on(self) -> bool:
        cached = self.cached_sign_in_on()
        if cached is None:
            cached = accounts.users_exist(self._db)
            self._cached = (time.monotonic(), cached)
        return cached

    def forget(self) -> None:
        """An account was added or removed here: look again at the next request."""
        self._cached = None

    # --- Who holds a credential ---------------------------------------------------------

    @staticmethod
    def _key(kind: str, hashed: str) -> str:
        return f"{kind}:{hashed}"

    def _look_up(
        self, kind: str, secret: str, read: Callable[[str], Credential | None]
    ) -> Credential | None:
        """Blocking: `read` the credential by its hash, remembered for next time unless a
        change landed while it was read (the cache's generation)."""
        hashed = accounts.token_hash(secret)
        generation = self.credentials.generation
        credential = read(hashed)
        if credential is not None:
            self.credentials.put(self._key(kind, hashed), credential, generation=generation)
        return credential

    def cached_token(self, secret: str) -> Credential | None:
        return self.credentials.get(self._key("token", accounts.token_hash(secret)))

    def look_up_token(self, secret: str) -> Credential | None:
        """Blocking: the live token's owner from the database, remembered for next time."""
        return self._look_up("token", secret, self._read_token)

    def _read_token(self, hashed: str) -> Credential | None:
        found = accounts.api_token_owner(self._db, hashed=hashed)
        if found is None:
            return None
        return Credential(
            user=found.user,
            session_hash=None,
            csrf_token=self._sessionless_csrf,
            token_id=found.token_id,
            last_used_at=found.last_used_at,
        )

    @staticmethod
    def token_use_due(credential: Credential) -> bool:
        return credential.token_id is not None and accounts.token_use_due(
            credential.last_used_at, utcnow()
        )

    def record_token_use(self, secret: str, credential: Credential) -> None:
        """Blocking: write down that the token was used now (at most once a minute)."""
        assert credential.token_id is not None
        now = utcnow()
        accounts.record_token_use(self._db, token_id=credential.token_id, now=now)
        # Not `put`: the token may have been revoked since the request found it.
        self.credentials.refresh(
            self._key("token", accounts.token_hash(secret)), replace(credential, last_used_at=now)
        )

    def cached_session(self, token: str) -> Credential | None:
        credential = self.credentials.get(self._key("session", accounts.token_hash(token)))
        if credential is not None and credential.expired(utcnow().timestamp()):
            return None
        return credential

    def look_up_session(self, token: str) -> Credential | None:
        """Blocking: the live session's person from the database, remembered for next time."""
        return self._look_up("session", token, self._read_session)

    def _read_session(self, hashed: str) -> Credential | None:
        found = accounts.session_owner(self._db, hashed=hashed)
        if found is None:
            return None
        return Credential(
            user=found.user,
            session_hash=found.session_hash,
            csrf_token=self.csrf_token(found.session_hash),
            expires_at=found.expires_at.timestamp(),
        )

    @property
    def sessionless_csrf_token(self) -> str:
        return self._sessionless_csrf

    def sign_session(self, token: str) -> str:
        return f"{token}.{self.signer.sign(signing.SESSION, token)}"

    def unsign_session(self, cookie: str) -> str | None:
        """The session token a cookie carries, or None if it is not one this secret signed (a
        cookie from before sessions were signed by app/core/signing.py is refused: its holder
        signs in again)."""
        token, _, mac = cookie.rpartition(".")
        if token and self.signer.valid(signing.SESSION, token, mac):
            return token
        return None

    def csrf_token(self, session_hash: str | None) -> str:
        """The token forms and htmx send back; tied to the session, so it cannot be reused."""
        return self.signer.sign(signing.CSRF, session_hash or "no-session")

    def csrf_valid(self, session_hash: str | None, presented: str) -> bool:
        token = signing.unmask_token(presented)
        return self.signer.valid(signing.CSRF, session_hash or "no-session", token)


# Headers in which proxies name the address they forwarded a request for.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def caller_is_local(peer: str | None, headers: Mapping[str, str]) -> bool:
    """Whether a request comes from this machine: its peer address is loopback, and so is
    every address a proxy says it forwarded for (a proxy on this machine connects from
    loopback itself, so its peer address alone would let the world in)."""
    if peer is None or not is_loopback_host(peer):
        return False
    for name in FORWARDING_HEADERS:
        value = headers.get(name)
        if value is not None and not all(
            is_loopback_host(address) for address in _forwarded_addresses(name, value)
        ):
            return False
    return True


def _forwarded_addresses(name: str, value: str) -> list[str]:
    """The addresses in a forwarding header; anything unreadable comes back as itself, which
    is not a loopback address, so it refuses."""
    if name != "forwarded":
        return [part.strip() for part in value.split(",")]
    addresses = []
    for element in value.split(","):
        for pair in element.split(";"):
            key, _, raw = pair.strip().partition("=")
            if key.strip().lower() == "for":
                addresses.append(_strip_port(raw.strip().strip('"')))
    return addresses


def _strip_port(node: str) -> str:
    """`[::1]:8080` → `::1`, `127.0.0.1:8080` → `127.0.0.1` (RFC 7239 node syntax)."""
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else node
    return node.split(":", 1)[0] if node.count(":") == 1 else node


def host_is_loopback(host_header: str) -> bool:
    """Whether a Host header names this machine (any port)."""
    if not host_header:
        return False
    host = host_header
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return is_loopback_host(host)

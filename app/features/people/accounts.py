"""People, their passwords, sessions and API tokens (slowing down guessing:
app/features/people/throttle.py).

Passwords are hashed with Argon2id (argon2-cffi). Session and API tokens are
random; the database keeps only their SHA-256, so a copy of the database opens
no account. Removing a person keeps their row, so their work stays attributed,
and ends their sessions and tokens at once.

Every write here that ends a session, revokes a token or changes a person calls
`db.credentials_changed()` once it has committed, so that what a process
remembers of who holds which credential (app/features/people/credentials.py) is dropped at once.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from app.core.text import line_problem
from app.storage.db.engine import Database
from app.storage.db.tables import ApiToken, User, UserSession, utcnow

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")
PASSWORD_MIN_CHARS = 10
API_TOKEN_PREFIX = "sp_"
# last_used_at is written at most this often, so a busy script does not write every call.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown, so a wrong name takes as long as a wrong
    password. Made after start-up (`prepare`), not at import: hashing is slow on purpose,
    and the app should not wait for it before it answers."""
    return _hasher.hash(secrets.token_urlsafe(16))


def prepare() -> None:
    """Work done once, in the background, after the app has started."""
    _dummy_hash()


class AccountError(ValueError):
    """A request about accounts that cannot be done; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class AccountConflict(AccountError):
    """Well-formed, but it clashes with the accounts there are: a name taken, the last admin."""


def name_key(name: str) -> str:
    return name.strip().casefold()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- People ------------------------------------------------------------------------


def create_user(db: Database, *, name: str, password: str, is_admin: bool = False) -> User:
    name = check_name(name)
    check_password(password)
    user = User(
        name=name,
        name_key=name_key(name),
        password_hash=_hasher.hash(password),
        is_admin=is_admin,
        created_at=utcnow(),
    )
    try:
        with db.write() as session:
            session.add(user)
            session.flush()
    except sa.exc.IntegrityError:
        raise AccountConflict("name", f"there is already an account called {name!r}") from None
    return user


def check_name(name: str) -> str:
    """The name as an account keeps it (trimmed); AccountError if it is not one. An import
    holds the names it brings to this rule too (app/features/archive/rows.py)."""
    name = name.strip()
    if not NAME_PATTERN.fullmatch(name):
        raise AccountError(
            "name", "use 1–64 letters, digits, spaces or . _ @ -, starting with a letter or digit"
        )
    return name


def check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN_CHARS:
        raise AccountError("password", f"use at least {PASSWORD_MIN_CHARS} characters")


def list_users(db: Database, *, include_removed: bool = False) -> list[User]:
    with db.read() as session:
        statement = select(User).order_by(col(User.name_key))
        if not include_removed:
            statement = statement.where(col(User.removed_at).is_(None))
        return list(session.exec(statement).all())


def get_user(db: Database, *, user_id: int) -> User | None:
    with db.read() as session:
        return session.get(User, user_id)


def find_user(db: Database, *, name: str) -> User | None:
    if line_problem(name):
        return None  # no account is called so, and PostgreSQL refuses a NUL to look
    with db.read() as session:
        return session.exec(select(User).where(User.name_key == name_key(name))).first()


def users_exist(db: Database) -> bool:
    """Whether sign-in is on: it is as soon as one (not removed) account exists."""
    with db.read() as session:
        return (
            session.exec(select(User.id).where(col(User.removed_at).is_(None)).limit(1)).first()
            is not None
        )


def set_admin(db: Database, *, user_id: int, is_admin: bool) -> User:
    with db.write() as session:
        user = _active(session, user_id)
        if user.is_admin and not is_admin:
            _keep_an_admin(session, leaving=user_id)
        user.is_admin = is_admin
        session.add(user)
    db.credentials_changed()
    return user


BUDGET_FIELDS = ("daily_budget", "monthly_budget")


def set_budgets(db: Database, *, user_id: int, changes: Mapping[str, float | None]) -> User:
    """Change the credit limits named in `changes` (per UTC day, per month; None: no limit).
    A limit not named stays as it is."""
    for field, value in changes.items():
        if field not in BUDGET_FIELDS:
            raise AccountError(field, "is not a budget")
        if value is not None and value < 0:
            raise AccountError(field, "must be a number of credits, 0 or more")
    with db.write() as session:
        user = _active(session, user_id)
        for field, value in changes.items():
            setattr(user, field, value)
        session.add(user)
    db.credentials_changed()
    return user


def set_password(db: Database, *, user_id: int, password: str, revoke_tokens: bool = False) -> User:
    """A new password also signs the person out of every browser; with `revoke_tokens`,
    their API tokens stop working too (an admin's reset always asks for that)."""
    check_password(password)
    with db.write() as session:
        user = _active(session, user_id)
        user.password_hash = _hasher.hash(password)
        session.add(user)
        session.execute(sa.delete(UserSession).where(col(UserSession.user_id) == user_id))
        if revoke_tokens:
            _revoke_all_tokens(session, user_id)
    db.credentials_changed()
    return user


def _revoke_all_tokens(session: Session, user_id: int) -> None:
    session.execute(
        sa.update(ApiToken)
        .where(col(ApiToken.user_id) == user_id, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )


def remove_user(db: Database, *, user_id: int) -> User:
    """Sign the person out everywhere and revoke their tokens; their work stays theirs."""
    now = utcnow()
    with db.write() as session:
        user = _active(session, user_id)
        if user.is_admin:
            _keep_an_admin(session, leaving=user_id)
        user.removed_at = now
        session.add(user)
        session.execute(sa.delete(UserSession).where(col(UserSession.user_id) == user_id))
        _revoke_all_tokens(session, user_id)
    db.credentials_changed()
    return user


def _active(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.removed_at is not None:
        raise AccountError("user", f"there is no account {user_id}")
    return user


def _keep_an_admin(session: Session, *, leaving: int) -> None:
    others = session.exec(
        select(User.id).where(
            col(User.is_admin), col(User.removed_at).is_(None), col(User.id) != leaving
        )
    ).first()
    if others is None:
        raise AccountConflict("is_admin", "the team needs at least one admin; make another first")


def authenticate(db: Database, *, name: str, password: str) -> User | None:
    """The person with this name and password. Not for routes: they ask
    `app.features.people.throttle.check_password`, which counts what this finds."""
    user = find_user(db, name=name)
    if user is None or user.removed_at is not None:
        _verify(_dummy_hash(), password)
        return None
    if not _verify(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        with db.write() as session:
            fresh = session.get(User, user.id)
            if fresh is not None:
                fresh.password_hash = _hasher.hash(password)
                session.add(fresh)
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- Sessions ----------------------------------------------------------------------


def start_session(db: Database, *, user_id: int, ip: str | None, days: float) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with db.write() as session:
        session.add(
            UserSession(
                token_hash=token_hash(token),
                user_id=user_id,
                created_at=now,
                expires_at=now + timedelta(days=days),
                ip=ip,
            )
        )
        # Expired sessions go whenever someone signs in: no sweeper needed.
        session.execute(sa.delete(UserSession).where(col(UserSession.expires_at) < now))
    return token


@dataclass(frozen=True)
class SessionOwner:
    user: User
    session_hash: str
    expires_at: datetime


def session_owner(db: Database, *, hashed: str) -> SessionOwner | None:
    """The person signed in by the session with this hash, while it lasts and they are active."""
    with db.read() as session:
        row = session.exec(
            select(User, UserSession.expires_at)
            .join(UserSession, col(UserSession.user_id) == col(User.id))
            .where(
                col(UserSession.token_hash) == hashed,
                col(UserSession.expires_at) > utcnow(),
                col(User.removed_at).is_(None),
            )
        ).first()
    if row is None:
        return None
    user, expires_at = row
    return SessionOwner(user, hashed, expires_at)


def end_session(db: Database, *, token: str) -> None:
    with db.write() as session:
        session.execute(
            sa.delete(UserSession).where(col(UserSession.token_hash) == token_hash(token))
        )
    db.credentials_changed()


# --- API tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # shown once, never stored


def create_api_token(db: Database, *, user_id: int, name: str) -> NewToken:
    name = name.strip()
    if not 1 <= len(name) <= 80:
        raise AccountError("name", "give the token a name of 1–80 characters")
    secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user_id,
        name=name,
        token_hash=token_hash(secret),
        prefix=secret[:10],
        created_at=utcnow(),
    )
    with db.write() as session:
        session.add(token)
        session.flush()
    return NewToken(token=token, secret=secret)


def list_api_tokens(db: Database, *, user_id: int) -> list[ApiToken]:
    with db.read() as session:
        return list(
            session.exec(
                select(ApiToken)
                .where(col(ApiToken.user_id) == user_id, col(ApiToken.revoked_at).is_(None))
                .order_by(col(ApiToken.id).desc())
            ).all()
        )


def revoke_api_token(db: Database, *, user_id: int, token_id: int) -> bool:
    with db.write() as session:
        result = session.execute(
            sa.update(ApiToken)
            .where(
                col(ApiToken.id) == token_id,
                col(ApiToken.user_id) == user_id,
                col(ApiToken.revoked_at).is_(None),
            )
            .values(revoked_at=utcnow())
        )
        revoked = bool(result.rowcount)  # type: ignore[attr-defined]
    if revoked:
        db.credentials_changed()
    return revoked


@dataclass(frozen=True)
class TokenOwner:
    user: User
    token_id: int
    last_used_at: datetime | None


def api_token_owner(db: Database, *, hashed: str) -> TokenOwner | None:
    """The owner of the live API token with this hash, if they are active."""
    with db.read() as session:
        row = session.exec(
            select(User, ApiToken.id, ApiToken.last_used_at)
            .join(ApiToken, col(ApiToken.user_id) == col(User.id))
            .where(
                col(ApiToken.token_hash) == hashed,
                col(ApiToken.revoked_at).is_(None),
                col(User.removed_at).is_(None),
            )
        ).first()
    if row is None:
        return None
    user, token_id, last_used_at = row
    assert token_id is not None
    return TokenOwner(user, token_id, last_used_at)


def token_use_due(last_used_at: datetime | None, now: datetime) -> bool:
    """Whether a use of the token should be written down (at most once a resolution)."""
    return last_used_at is None or now - last_used_at > TOKEN_USE_RESOLUTION


def record_token_use(db: Database, *, token_id: int, now: datetime) -> None:
    with db.write() as session:
        session.execute(
            sa.update(ApiToken).where(col(ApiToken.id) == token_id).values(last_used_at=now)
        )

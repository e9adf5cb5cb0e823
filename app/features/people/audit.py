"""The audit log: who did what, when and from where, for admins to read."""

from __future__ import annotations

from enum import StrEnum

from sqlmodel import col, select

from app.storage.db.engine import Database
from app.storage.db.tables import AuditEvent, User, utcnow


class Action(StrEnum):
    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGN_OUT = "sign_out"
    SUBMIT = "submit"
    DELETE = "delete"
    RESTORE = "restore"
    PURGE = "purge"
    # Stopping jobs or a grid's cells, and undoing it.
    STOP = "stop"
    USER_ADDED = "user_added"
    USER_REMOVED = "user_removed"
    ADMIN_CHANGED = "admin_changed"
    BUDGET_CHANGED = "budget_changed"
    PASSWORD_CHANGED = "password_changed"
    TOKEN_CREATED = "token_created"
    TOKEN_REVOKED = "token_revoked"
    COLLECTION_RENAMED = "collection_renamed"
    COLLECTION_DELETED = "collection_deleted"


# Who acts when nobody is signed in (a single person on this machine) or from the CLI.
LOCAL_ACTOR = "(local)"


def record(
    db: Database,
    *,
    action: Action,
    user: User | None,
    detail: str = "",
    ip: str | None = None,
    actor: str | None = None,
) -> None:
    event = AuditEvent(
        at=utcnow(),
        user_id=user.id if user is not None else None,
        actor=_storable(actor or (user.name if user is not None else LOCAL_ACTOR)),
        action=action,
        detail=_storable(detail[:2000]),
        ip=ip,
    )
    with db.write() as session:
        session.add(event)


def _storable(text: str) -> str:
    """What someone typed (a name at sign-in), recorded whatever it holds: PostgreSQL refuses
    text with a NUL in it."""
    return text.replace("\x00", "\N{REPLACEMENT CHARACTER}")


def recent_events(
    db: Database, *, before_id: int | None = None, limit: int = 100
) -> tuple[list[AuditEvent], int | None]:
    with db.read() as session:
        statement = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit + 1)
        if before_id is not None:
            statement = statement.where(col(AuditEvent.id) < before_id)
        rows = list(session.exec(statement).all())
    page = rows[:limit]
    return page, (page[-1].id if len(rows) > limit and page else None)

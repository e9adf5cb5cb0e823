"""Who may change what: members change their own work, admins anything.

Without sign-in the app serves one person, who owns everything.
"""

from __future__ import annotations

from app.errors import Forbidden
from app.models import User


def may_change(user: User | None, owner_id: int | None, *, sign_in_on: bool) -> bool:
    if not sign_in_on:
        return True
    if user is None:
        return False
    return user.is_admin or (owner_id is not None and owner_id == user.id)


def ensure_may_change(
    user: User | None, owner_id: int | None, *, sign_in_on: bool, what: str
) -> None:
    if not may_change(user, owner_id, sign_in_on=sign_in_on):
        raise Forbidden(f"Only whoever made {what}, or an admin, can change or delete it.")

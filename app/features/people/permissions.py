"""Who may change what: members change their own work, admins anything.

Without sign-in the app serves one person, who owns everything. Routes get the
`Actor` making the request as one typed dependency (app/web/deps.py) and hand
it to the domain function, which checks each thing it is about to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import Forbidden
from app.storage.db.tables import User


@dataclass(frozen=True)
class Actor:
    """Who makes a request: the signed-in person (None without sign-in), and from where."""

    user: User | None
    sign_in_on: bool
    ip: str | None = None

    def may_change(self, owner_id: int | None) -> bool:
        if not self.sign_in_on:
            return True
        if self.user is None:
            return False
        return self.user.is_admin or (owner_id is not None and owner_id == self.user.id)

    def ensure_may_change(self, owner_id: int | None, *, what: str) -> None:
        if not self.may_change(owner_id):
            raise Forbidden(f"Only whoever made {what}, or an admin, can change or delete it.")

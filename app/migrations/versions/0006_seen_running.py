"""When a job was last seen running upstream: with its completion, it times later polls.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column: SQLite adds it in place, no table rebuild.
    op.add_column("jobs", sa.Column("seen_running_at", app.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    # Not a batch rebuild: that would drop the full-text triggers on jobs (SQLite 3.35+
    # drops a plain column in place).
    op.execute("ALTER TABLE jobs DROP COLUMN seen_running_at")

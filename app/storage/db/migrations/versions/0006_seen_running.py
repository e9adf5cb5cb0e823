"""How long PixelDojo took for each job, as far as polls can tell: it times later polls.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns: SQLite adds them in place, no table rebuild.
    op.add_column("jobs", sa.Column("seen_running_seconds", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("done_by_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    # Not a batch rebuild: that would drop the full-text triggers on jobs (SQLite 3.35+
    # drops a plain column in place).
    op.execute("ALTER TABLE jobs DROP COLUMN done_by_seconds")
    op.execute("ALTER TABLE jobs DROP COLUMN seen_running_seconds")

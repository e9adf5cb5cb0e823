"""Where a remix came from: the source job and image.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Record numbers: BIGINT on PostgreSQL. SQLite's INTEGER is 64-bit already (and an INTEGER
# PRIMARY KEY is the rowid), so SQLite keeps the DDL this revision always made there.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Nullable columns: SQLite adds them in place, no table rebuild.
    op.add_column("jobs", sa.Column("remix_of_job_id", ID, nullable=True))
    op.add_column("jobs", sa.Column("remix_of_image_index", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Not a batch rebuild: that would drop the full-text triggers on jobs.
    op.execute("ALTER TABLE jobs DROP COLUMN remix_of_image_index")
    op.execute("ALTER TABLE jobs DROP COLUMN remix_of_job_id")

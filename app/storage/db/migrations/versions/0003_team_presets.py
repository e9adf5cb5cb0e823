"""Team presets: presets saved by the team, beside the eight built-in ones.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.db.tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Record numbers: BIGINT on PostgreSQL. SQLite's INTEGER is 64-bit already (and an INTEGER
# PRIMARY KEY is the rowid), so SQLite keeps the DDL this revision always made there.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

UTC = app.storage.db.tables.UTCDateTime()


def upgrade() -> None:
    op.create_table(
        "team_presets",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("name_key", sa.String(length=80), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_presets")),
        sa.UniqueConstraint("name_key", name=op.f("uq_team_presets_name_key")),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("team_presets")

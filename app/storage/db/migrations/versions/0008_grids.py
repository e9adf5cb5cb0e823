"""Grids: jobs made along up to three axes, and which job fills which cell.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.db.tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Record numbers: BIGINT on PostgreSQL. SQLite's INTEGER is 64-bit already (and an INTEGER
# PRIMARY KEY is the rowid), so SQLite keeps the DDL this revision always made there.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

UTC = app.storage.db.tables.UTCDateTime()


def upgrade() -> None:
    op.create_table(
        "grids",
        sa.Column("id", ID, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("prompt", sa.String(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("axes", sa.JSON(), nullable=False),
        sa.Column("estimated_credits", sa.Float(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("remix_of_grid_id", ID, nullable=True),
        sa.Column("runner", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_grids_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grids")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_grids_idempotency_key")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_grids_user_id"), "grids", ["user_id"], unique=False)
    op.create_table(
        "grid_cells",
        sa.Column("grid_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column("z", sa.Integer(), nullable=False),
        sa.Column("preset", sa.String(length=100), nullable=True),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("job_id", ID, nullable=True),
        sa.Column("refused", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(
            ["grid_id"],
            ["grids.id"],
            name=op.f("fk_grid_cells_grid_id_grids"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("grid_id", "position", name=op.f("pk_grid_cells")),
        sa.UniqueConstraint("job_id", name=op.f("uq_grid_cells_job_id")),
    )


def downgrade() -> None:
    op.drop_table("grid_cells")
    op.drop_index(op.f("ix_grids_user_id"), table_name="grids")
    op.drop_table("grids")

"""The live schema's last good copy per model, and the latest doctor report.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.db.tables

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_schemas",
        sa.Column("upstream", sa.String(length=500), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("json_schema", sa.JSON(), nullable=True),
        sa.Column("model_card", sa.JSON(), nullable=True),
        sa.Column("fetched_at", app.storage.db.tables.UTCDateTime(), nullable=True),
        sa.Column("checked_at", app.storage.db.tables.UTCDateTime(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("model_found", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("upstream", "model", name=op.f("pk_model_schemas")),
    )
    op.create_table(
        "doctor_reports",
        sa.Column("upstream", sa.String(length=500), nullable=False),
        sa.Column("ran_at", app.storage.db.tables.UTCDateTime(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=False),
        sa.Column("headline", sa.String(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("upstream", name=op.f("pk_doctor_reports")),
    )


def downgrade() -> None:
    op.drop_table("doctor_reports")
    op.drop_table("model_schemas")

"""Callbacks from PixelDojo: which jobs asked for one, and when it came.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

- `jobs.webhook_requested`: the run was sent with a `webhook_url` (app/features/jobs/callbacks.py);
- `jobs.webhook_at`: when PixelDojo last called it;
- on PostgreSQL, the job-change trigger also fires when `webhook_at` changes, so a
  callback answered by one web process wakes the workers in every other at once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.db.tables
from app.storage.db import postgres

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The trigger's columns as this migration made it (app/storage/db/postgres.py's list may grow
# later).
JOB_CHANGE_COLUMNS = ("status", "error", "credit_cost", "webhook_at")


def upgrade() -> None:
    # Plain ADD COLUMN (no batch): SQLite keeps the table, its AUTOINCREMENT ids included.
    op.add_column(
        "jobs",
        sa.Column("webhook_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "jobs", sa.Column("webhook_at", app.storage.db.tables.UTCDateTime(), nullable=True)
    )
    if op.get_bind().dialect.name == "postgresql":
        _replace_update_trigger(JOB_CHANGE_COLUMNS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _replace_update_trigger(postgres.JOB_CHANGE_COLUMNS_0013)
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would lose AUTOINCREMENT and the
    # table's search triggers.
    op.drop_column("jobs", "webhook_at")
    op.drop_column("jobs", "webhook_requested")


def _replace_update_trigger(columns: Sequence[str]) -> None:
    op.execute("DROP TRIGGER IF EXISTS jobs_notify_update ON jobs")
    op.execute(postgres.job_update_trigger_ddl(columns))

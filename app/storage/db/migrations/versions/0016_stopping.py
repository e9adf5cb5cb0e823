"""Stopping: a job the person stopped waiting for, and a grid's cells never to be sent.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08

- `jobs.stopped_at`: the person stopped the job. PixelDojo has no cancel, so a job it
  already has is still polled and its images still kept; one not yet sent never is
  (app/features/jobs/stopping.py);
- `grid_cells.stopped_at`: a cell the person stopped before it was sent; it is sent after
  all if they undo the stop;
- `grid_cells.sent_at`: when the grid's runner took the cell to send it. Taking a cell and
  stopping it each change its row, so the two cannot both happen
  (app/features/grids/stopping.py);
- on PostgreSQL, the job-change trigger also fires when `stopped_at` changes, so a stop
  made through one web process shows on pages served by every other.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.db.tables
from app.storage.db import postgres

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The trigger's columns as this migration makes it, and as 0015 left it.
JOB_CHANGE_COLUMNS = ("status", "error", "credit_cost", "webhook_at", "stopped_at")
JOB_CHANGE_COLUMNS_0015 = ("status", "error", "credit_cost", "webhook_at")


def upgrade() -> None:
    # Plain ADD COLUMN (no batch): SQLite keeps the tables, AUTOINCREMENT ids included.
    op.add_column("jobs", sa.Column("stopped_at", app.storage.db.tables.UTCDateTime()))
    op.add_column("grid_cells", sa.Column("stopped_at", app.storage.db.tables.UTCDateTime()))
    op.add_column("grid_cells", sa.Column("sent_at", app.storage.db.tables.UTCDateTime()))
    if op.get_bind().dialect.name == "postgresql":
        _replace_update_trigger(JOB_CHANGE_COLUMNS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _replace_update_trigger(JOB_CHANGE_COLUMNS_0015)
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would lose AUTOINCREMENT and the
    # jobs table's search triggers.
    op.drop_column("grid_cells", "sent_at")
    op.drop_column("grid_cells", "stopped_at")
    op.drop_column("jobs", "stopped_at")


def _replace_update_trigger(columns: Sequence[str]) -> None:
    op.execute("DROP TRIGGER IF EXISTS jobs_notify_update ON jobs")
    op.execute(postgres.job_update_trigger_ddl(columns))

"""State every process shares through the database: lease tokens, the signing secret,
the upstream rate budget, and (on PostgreSQL) a notification for each visible job change.

- `jobs.lease_token`: raised by every claim, so a worker whose lease was taken over
  can no longer write (app.features.jobs.queue);
- `app_secrets`: the signing key when PLAYGROUND_SECRET_KEY is unset, the same for every
  web process (app.features.people.access);
- `rate_budgets`: one token bucket per API key for every process (app.upstream.ratelimit);
- on PostgreSQL, a trigger that NOTIFYs when a job's status, error or cost changes or a
  job is created, so pages and workers in other processes hear of it at once
  (app.storage.db.postgres.JOB_CHANGES_CHANNEL).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.db.tables
from app.storage.db import postgres

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("lease_token", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("created_at", app.storage.db.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_secrets")),
    )
    op.create_table(
        "rate_budgets",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("paused_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_rate_budgets")),
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in postgres.job_change_trigger_ddl(postgres.JOB_CHANGE_COLUMNS_0013):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in postgres.drop_job_change_trigger_ddl():
            op.execute(statement)
    op.drop_table("rate_budgets")
    op.drop_table("app_secrets")
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would lose AUTOINCREMENT and the
    # table's search triggers.
    op.drop_column("jobs", "lease_token")

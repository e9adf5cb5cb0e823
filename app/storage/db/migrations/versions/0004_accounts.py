"""Accounts: people, sessions, API tokens, sign-in throttling, the audit log; who made each job
and what it reserved against their budget; who saved each team preset.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.db.tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Record numbers: BIGINT on PostgreSQL. SQLite's INTEGER is 64-bit already (and an INTEGER
# PRIMARY KEY is the rowid), so SQLite keeps the DDL this revision always made there.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

UTC = app.storage.db.tables.UTCDateTime()


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("daily_budget", sa.Float(), nullable=True),
        sa.Column("monthly_budget", sa.Float(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("removed_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name_key", name=op.f("uq_users_name_key")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("last_used_at", UTC, nullable=True),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.create_table(
        "sign_in_failures",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_failures")),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_audit_events_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_audit_events_action"), "audit_events", ["action"])
    # SQLite rebuilds a table to add a foreign key; keep its ids never reused.
    keep_ids = {"sqlite_autoincrement": True}
    with op.batch_alter_table("jobs", table_kwargs=keep_ids) as jobs:
        jobs.add_column(sa.Column("user_id", ID, nullable=True))
        jobs.add_column(
            sa.Column("estimated_credits", sa.Float(), nullable=False, server_default="0")
        )
        jobs.create_index(op.f("ix_jobs_user_id"), ["user_id"])
        jobs.create_foreign_key(op.f("fk_jobs_user_id_users"), "users", ["user_id"], ["id"])
    # Jobs made before budgets existed reserved what they would have: one credit an image.
    op.execute("UPDATE jobs SET estimated_credits = num_images")
    with op.batch_alter_table("jobs", table_kwargs=keep_ids) as jobs:
        jobs.alter_column("estimated_credits", server_default=None)
    with op.batch_alter_table("team_presets", table_kwargs=keep_ids) as presets:
        presets.add_column(sa.Column("created_by", ID, nullable=True))
        presets.create_foreign_key(
            op.f("fk_team_presets_created_by_users"), "users", ["created_by"], ["id"]
        )


def downgrade() -> None:
    keep_ids = {"sqlite_autoincrement": True}
    with op.batch_alter_table("team_presets", table_kwargs=keep_ids) as presets:
        presets.drop_constraint(op.f("fk_team_presets_created_by_users"), type_="foreignkey")
        presets.drop_column("created_by")
    with op.batch_alter_table("jobs", table_kwargs=keep_ids) as jobs:
        jobs.drop_constraint(op.f("fk_jobs_user_id_users"), type_="foreignkey")
        jobs.drop_index(op.f("ix_jobs_user_id"))
        jobs.drop_column("estimated_credits")
        jobs.drop_column("user_id")
    op.drop_table("audit_events")
    op.drop_table("sign_in_failures")
    op.drop_table("api_tokens")
    op.drop_table("sessions")
    op.drop_table("users")

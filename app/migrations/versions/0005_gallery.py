"""The gallery: favourites, trash, collections, filter indexes, prompt search.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

The prompt search index (FTS5) is SQLite's own, so it is created only there; on
another database the gallery searches prompts with LIKE (app/gallery.py). Its
DDL is written out here rather than imported, so this revision stays what it
was when it ran. It is an external-content index over `jobs.prompt`, with
rowid = job id, kept in step by triggers: the same transaction that writes a
job writes its index entry.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = app.models.UTCDateTime()

FTS_UP = (
    # unicode61 with diacritics folded: "café" finds "cafe"; the prompt column is the only one.
    "CREATE VIRTUAL TABLE jobs_fts USING fts5("
    " prompt, content='jobs', content_rowid='id',"
    " tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER jobs_fts_after_insert AFTER INSERT ON jobs BEGIN"
    " INSERT INTO jobs_fts (rowid, prompt) VALUES (new.id, new.prompt); END",
    "CREATE TRIGGER jobs_fts_after_delete AFTER DELETE ON jobs BEGIN"
    " INSERT INTO jobs_fts (jobs_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt); END",
    "CREATE TRIGGER jobs_fts_after_update AFTER UPDATE OF prompt ON jobs BEGIN"
    " INSERT INTO jobs_fts (jobs_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt);"
    " INSERT INTO jobs_fts (rowid, prompt) VALUES (new.id, new.prompt); END",
    # Index the jobs that existed before this revision.
    "INSERT INTO jobs_fts (jobs_fts) VALUES ('rebuild')",
)
FTS_DOWN = (
    "DROP TRIGGER IF EXISTS jobs_fts_after_update",
    "DROP TRIGGER IF EXISTS jobs_fts_after_delete",
    "DROP TRIGGER IF EXISTS jobs_fts_after_insert",
    "DROP TABLE IF EXISTS jobs_fts",
)

JOB_INDEXES = {
    "ix_jobs_preset_id": ["preset", "id"],
    "ix_jobs_model_id": ["model", "id"],
    "ix_jobs_image_size_id": ["image_size", "id"],
    "ix_jobs_status_id": ["status", "id"],
    "ix_jobs_created_at": ["created_at"],
    "ix_jobs_user_id_id": ["user_id", "id"],
}


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    op.add_column(
        "images", sa.Column("favourite", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("images", sa.Column("deleted_at", UTC, nullable=True))
    op.create_index("ix_images_favourite", "images", ["favourite", "job_id", "index"])
    op.create_index(
        "ix_images_deleted_at",
        "images",
        ["deleted_at"],
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )
    for name, columns in JOB_INDEXES.items():
        op.create_index(name, "jobs", columns)

    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sa.UniqueConstraint("name", name=op.f("uq_collections_name")),
    )
    op.create_table(
        "collection_images",
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("added_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_collection_images_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_collection_images_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "image_id", name=op.f("pk_collection_images")),
    )
    op.create_index("ix_collection_images_image_id", "collection_images", ["image_id"])

    if _is_sqlite():
        for statement in FTS_UP:
            op.execute(statement)


def downgrade() -> None:
    if _is_sqlite():
        for statement in FTS_DOWN:
            op.execute(statement)
    op.drop_index("ix_collection_images_image_id", table_name="collection_images")
    op.drop_table("collection_images")
    op.drop_table("collections")
    for name in JOB_INDEXES:
        op.drop_index(name, table_name="jobs")
    op.drop_index("ix_images_deleted_at", table_name="images")
    op.drop_index("ix_images_favourite", table_name="images")
    for column in ("deleted_at", "favourite"):
        if _is_sqlite():
            # SQLite drops a column in place (3.35+); a batch copy would lose AUTOINCREMENT.
            op.execute(f"ALTER TABLE images DROP COLUMN {column}")
        else:
            op.drop_column("images", column)

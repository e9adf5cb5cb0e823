"""The gallery: favourites, trash, collections, filter indexes, prompt search.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

Each database gets a prompt search index of its own; their DDL is written out
here rather than imported, so this revision stays what it was when it ran.

- SQLite: an FTS5 external-content index over `jobs.prompt`, with rowid = job
  id, kept in step by triggers: the same transaction that writes a job writes
  its index entry.
- PostgreSQL: `jobs.prompt_search`, a `tsvector` column the server generates
  from the prompt in the same transaction, with a GIN index. Its tokens are the
  ones FTS5's `unicode61 remove_diacritics 2` tokenizer makes (runs of letters
  and digits, lower-cased, accents taken off Latin letters, sigma folded as
  FTS5 folds it), so both databases find the same jobs for the same search.
  `playground_prompt_query` makes one search term a `tsquery` with the same
  tokenizer: its tokens in a row, the last one a prefix for a bare word.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.storage.db.tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Record numbers: BIGINT on PostgreSQL. SQLite's INTEGER is 64-bit already (and an INTEGER
# PRIMARY KEY is the rowid), so SQLite keeps the DDL this revision always made there.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

UTC = app.storage.db.tables.UTCDateTime()

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
# PostgreSQL: the tokenizer, the generated column and its index. COLLATION is ICU's root
# collation where the server has it (Unicode case and letter classes whatever the
# database's locale), else the database's own.
PG_SEARCH_UP = (
    r"""CREATE FUNCTION playground_prompt_tokens(prompt text) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
      SELECT coalesce(array_agg(token ORDER BY position), '{}')
      FROM regexp_split_to_table(
        normalize(
          regexp_replace(
            normalize(translate(lower(prompt COLLATE COLLATION), 'ς', 'σ'), NFD),
            '([a-z])[\u0300-\u036f]+', '\1', 'g'),
          NFC),
        '[^[:alnum:]\u00b2\u00b3\u00b9\u00bc-\u00be\u2070-\u209f\u2150-\u218f\u2460-\u24ff]+'
      ) WITH ORDINALITY AS t(token, position)
      WHERE token <> '' AND octet_length(token) < 2048
    $$""",
    r"""CREATE FUNCTION playground_prompt_vector(prompt text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
      SELECT coalesce(string_agg('''' || token || ''':' || position, ' '), '')::tsvector
      FROM unnest(playground_prompt_tokens(prompt)) WITH ORDINALITY AS t(token, position)
    $$""",
    r"""CREATE FUNCTION playground_prompt_query(term text, prefix boolean) RETURNS tsquery
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
      SELECT CASE WHEN count(*) > 0 THEN
        (string_agg('''' || token || '''', ' <-> ' ORDER BY position)
         || CASE WHEN prefix THEN ':*' ELSE '' END)::tsquery END
      FROM unnest(playground_prompt_tokens(term)) WITH ORDINALITY AS t(token, position)
    $$""",
    # Generated in the same transaction as the row, existing jobs included.
    "ALTER TABLE jobs ADD COLUMN prompt_search tsvector"
    " GENERATED ALWAYS AS (playground_prompt_vector(prompt)) STORED",
    "CREATE INDEX ix_jobs_prompt_search ON jobs USING gin (prompt_search)",
)
PG_SEARCH_DOWN = (
    "DROP INDEX IF EXISTS ix_jobs_prompt_search",
    "ALTER TABLE jobs DROP COLUMN IF EXISTS prompt_search",
    "DROP FUNCTION IF EXISTS playground_prompt_query(text, boolean)",
    "DROP FUNCTION IF EXISTS playground_prompt_vector(text)",
    "DROP FUNCTION IF EXISTS playground_prompt_tokens(text)",
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


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _create_postgres_search() -> None:
    bind = op.get_bind()
    encoding = bind.exec_driver_sql(
        "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"
    ).scalar()
    if encoding != "UTF8":
        raise RuntimeError(
            f"the database's encoding is {encoding}, and prompt search needs UTF8: "
            "CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0"
        )
    has_icu = bind.exec_driver_sql(
        "SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'"
    ).scalar()
    collation = '"und-x-icu"' if has_icu else '"default"'
    for statement in PG_SEARCH_UP:
        op.execute(statement.replace("COLLATE COLLATION", f"COLLATE {collation}"))


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
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sa.UniqueConstraint("name", name=op.f("uq_collections_name")),
    )
    op.create_table(
        "collection_images",
        sa.Column("collection_id", ID, nullable=False),
        sa.Column("image_id", ID, nullable=False),
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
    elif _is_postgres():
        _create_postgres_search()


def downgrade() -> None:
    if _is_sqlite():
        for statement in FTS_DOWN:
            op.execute(statement)
    elif _is_postgres():
        for statement in PG_SEARCH_DOWN:
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

"""Prompt search with prefix indexes: "ligh" finds lighthouses without reading every match.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30

A bare word in a search matches as a prefix ("light" finds "lighthouse" and
"lighting"). Without a prefix index, FTS5 answers that by gathering every entry
of every word that starts so before it can hand back the newest: a common
prefix in a million prompts is a hundred thousand entries per search. With an
index for prefixes of 1 to 10 characters a prefix is read like a word, newest
first, and the search stops after a page. The index is about six times as big
(a few hundred megabytes at a million jobs) and rebuilding it here takes two
minutes or so at that size, once. SQLite only, like the index itself (0005).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGERS = (
    "CREATE TRIGGER jobs_fts_after_insert AFTER INSERT ON jobs BEGIN"
    " INSERT INTO jobs_fts (rowid, prompt) VALUES (new.id, new.prompt); END",
    "CREATE TRIGGER jobs_fts_after_delete AFTER DELETE ON jobs BEGIN"
    " INSERT INTO jobs_fts (jobs_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt); END",
    "CREATE TRIGGER jobs_fts_after_update AFTER UPDATE OF prompt ON jobs BEGIN"
    " INSERT INTO jobs_fts (jobs_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt);"
    " INSERT INTO jobs_fts (rowid, prompt) VALUES (new.id, new.prompt); END",
)
DROP = (
    "DROP TRIGGER IF EXISTS jobs_fts_after_update",
    "DROP TRIGGER IF EXISTS jobs_fts_after_delete",
    "DROP TRIGGER IF EXISTS jobs_fts_after_insert",
    "DROP TABLE IF EXISTS jobs_fts",
)
# Written out, not imported: this revision stays what it was when it ran.
CREATE = (
    "CREATE VIRTUAL TABLE jobs_fts USING fts5("
    " prompt, content='jobs', content_rowid='id',"
    " tokenize='unicode61 remove_diacritics 2'{prefix})"
)
PREFIX_LENGTHS = "1 2 3 4 5 6 7 8 9 10"


def _rebuild(prefix: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in DROP:
        op.execute(statement)
    op.execute(CREATE.format(prefix=prefix))
    for statement in TRIGGERS:
        op.execute(statement)
    op.execute("INSERT INTO jobs_fts (jobs_fts) VALUES ('rebuild')")
    # In one segment: a search seeks in each (app.storage.db.sqlite keeps them few afterwards).
    op.execute("INSERT INTO jobs_fts (jobs_fts) VALUES ('optimize')")


def upgrade() -> None:
    _rebuild(f", prefix='{PREFIX_LENGTHS}'")


def downgrade() -> None:
    _rebuild("")

"""Alembic environment: runs on the connection the app hands over (app/storage/db/engine.py)."""

from alembic import context
from sqlmodel import SQLModel

import app.storage.db.tables  # noqa: F401 - registers the tables on SQLModel.metadata
from app.storage.db.engine import include_in_comparison

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("migrations run through the app: `seedream-playground migrate`")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=include_in_comparison,
)
with context.begin_transaction():
    context.run_migrations()

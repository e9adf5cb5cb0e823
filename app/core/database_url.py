"""The database URL as people write it, and as SQLAlchemy opens it.

`PLAYGROUND_DATABASE_URL` names PostgreSQL the way its own tools do (`postgresql://…` or
`postgres://…`); the app opens it with psycopg 3. This is the one place that knows both
spellings, so the settings can check a URL without loading a database driver.
"""

from __future__ import annotations

import sqlalchemy as sa

POSTGRES_SCHEMES = ("postgresql", "postgres")
POSTGRES_DRIVER = "psycopg"


def is_postgres_url(url: str | sa.URL) -> bool:
    return sa.make_url(url).get_backend_name() in POSTGRES_SCHEMES


def engine_url(url: str | sa.URL) -> str:
    """`postgresql://…` (or `postgres://…`) as SQLAlchemy's name for it with psycopg 3."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() not in POSTGRES_SCHEMES:
        raise ValueError("not a PostgreSQL URL")
    return parsed.set(drivername=f"postgresql+{POSTGRES_DRIVER}").render_as_string(
        hide_password=False
    )


def display_url(url: str | sa.URL) -> str:
    """A database URL without its password, for messages."""
    return sa.make_url(url).render_as_string(hide_password=True)

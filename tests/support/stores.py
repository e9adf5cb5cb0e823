"""Each blob store a test can run the app with: its name, and the settings that choose it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.conftest import S3Bucket

STORES = ("sqlite", "postgres", "s3")


def store_settings(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        return bucket.settings()
    if kind == "postgres":
        # The PostgreSQL store is the one a PostgreSQL gallery uses: the app runs on
        # PostgreSQL (PLAYGROUND_DATABASE_URL) and keeps its images there.
        return {"database_url": request.getfixturevalue("postgres_url")}
    return {}

"""Each blob store a test can run the app with: its name, and the settings that choose it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

STORES = ("sqlite", "postgres", "s3")


@dataclass(frozen=True)
class S3Bucket:
    endpoint_url: str
    name: str

    def settings(self, prefix: str = "gallery") -> dict[str, Any]:
        """The settings that put a gallery's images in this bucket."""
        return {"blob_url": f"s3://{self.name}/{prefix}", "s3_endpoint_url": self.endpoint_url}


def store_settings(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        return bucket.settings()
    if kind == "postgres":
        # The PostgreSQL store is the one a PostgreSQL gallery uses: the app runs on
        # PostgreSQL (PLAYGROUND_DATABASE_URL) and keeps its images there.
        return {"database_url": request.getfixturevalue("postgres_url")}
    return {}

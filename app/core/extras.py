"""The optional parts of the install: PostgreSQL's driver and the S3 client.

A playground on one machine needs neither, so `pip install seedream-playground` leaves
them out; `[postgres]` brings psycopg and `[s3]` boto3 (pyproject.toml). Each is imported
only when a setting asks for it, and its absence is said in one line naming the setting
and the extra to install, instead of a ModuleNotFoundError from deep inside SQLAlchemy or
the blob store.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from app.core.errors import MissingExtra


@dataclass(frozen=True)
class Extra:
    name: str
    # The modules it provides, each of which the app imports.
    modules: tuple[str, ...]
    # The setting whose value asks for it, and what that value looks like.
    setting: str
    asked_by: str

    def missing_message(self) -> str:
        return (
            f"{self.setting} names {self.asked_by}, which needs the [{self.name}] extra: "
            f"pip install 'seedream-playground[{self.name}]'"
        )


POSTGRES = Extra("postgres", ("psycopg",), "PLAYGROUND_DATABASE_URL", "PostgreSQL")
S3 = Extra("s3", ("boto3", "botocore"), "PLAYGROUND_BLOB_URL", "an S3 bucket")


def require(extra: Extra) -> None:
    """Import the extra's modules, or raise MissingExtra saying how to install them."""
    for module in extra.modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(extra.missing_message()) from None

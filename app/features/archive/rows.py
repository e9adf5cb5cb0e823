"""The rows of a gallery export, held to what `export` writes and the app itself accepts.

Each row of a `.jsonl` member (read a line at a time: app/features/archive/members.py) is
checked as it comes, with nothing kept of the rows before it but the last key:

- it has the fields the import reads by name, and every value fits its column;
- its key is greater than the key of the row before: an export writes each
  table in key order, each row once (and the import relies on that: a remix's
  source comes before it), so a row repeated a million times, which deflates
  almost as well as blank lines, is refused at its second copy;
- what a person types is within the limits the app holds that input to, read
  from where each rule lives: a job's prompt and image count the run rules'
  (app/domain/rules.py), a person's name the one `users add` keeps
  (app/features/people/accounts.py),
  a collection's name and description the boards' (app/features/gallery/boards.py).

A job's size, seed and size name are left to their columns: an upload records
its own size and another model its own values, which Seedream's rules refuse.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.core.errors import InvalidParameters
from app.domain.parameters import JOB_COLUMNS
from app.domain.rules import builtin_rules, has_builtin_record
from app.domain.runs import REFERENCES_MAX
from app.features.archive.members import ArchiveError
from app.features.gallery import boards
from app.features.people import accounts
from app.storage.db.tables import (
    ROW_ID_MAX,
    Collection,
    CollectionImage,
    Image,
    Job,
    JobStatus,
    Thumbnail,
    User,
    UTCDateTime,
)

JOBS = Job.__table__  # type: ignore[attr-defined]
IMAGES = Image.__table__  # type: ignore[attr-defined]
THUMBNAILS = Thumbnail.__table__  # type: ignore[attr-defined]
COLLECTIONS = Collection.__table__  # type: ignore[attr-defined]
COLLECTION_IMAGES = CollectionImage.__table__  # type: ignore[attr-defined]
USERS = User.__table__  # type: ignore[attr-defined]
# What travels of a person: enough to name them, nothing to sign in with.
USER_COLUMNS = ("id", "name", "name_key", "created_at", "removed_at")

# The lists of rows an export holds, and the table each goes to.
ROW_MEMBERS: dict[str, sa.Table] = {
    "users.jsonl": USERS,
    "jobs.jsonl": JOBS,
    "images.jsonl": IMAGES,
    "thumbnails.jsonl": THUMBNAILS,
    "collections.jsonl": COLLECTIONS,
    "collection_images.jsonl": COLLECTION_IMAGES,
}
# users.jsonl came later, and thumbnails.jsonl went (version 2).
OPTIONAL_MEMBERS = frozenset({"users.jsonl", "thumbnails.jsonl"})
# Fields each kind of row must have (the import reads them by name).
KEY_FIELDS = {
    "users.jsonl": ("id", "name", "name_key"),
    "jobs.jsonl": ("id",),
    "images.jsonl": ("id", "job_id", "sha256", "content_type", "width", "height", "byte_size"),
    "thumbnails.jsonl": ("image_id", "content_type", "width", "height"),
    "collections.jsonl": ("id", "name"),
    "collection_images.jsonl": ("collection_id", "image_id"),
}
# The job columns held to the run rules, by the run field each keeps (see the docstring).
_RULED_JOB_FIELDS = ("prompt", "num_images")


class KeyOrder:
    """One member's rows, each key greater than the one before (see the module docstring)."""

    def __init__(self, table: sa.Table) -> None:
        self.columns = tuple(column.name for column in table.primary_key.columns)
        self.last: tuple[Any, ...] | None = None

    def check(self, values: dict[str, Any], *, where: str) -> None:
        key = tuple(values[column] for column in self.columns)
        if self.last is not None and not key > self.last:
            names = ", ".join(self.columns)
            raise ArchiveError(
                f"{where}: {names} {_shown(key)} does not follow {_shown(self.last)} (an "
                f"export writes each row once, in {names} order)"
            )
        self.last = key


def _shown(key: tuple[Any, ...]) -> str:
    return str(key[0]) if len(key) == 1 else str(key)


def checked_row(
    member: str, record: dict[str, Any], order: KeyOrder, *, where: str
) -> dict[str, Any]:
    """The row's values, once it has every field the import reads, each value fits its
    column, it follows the row before, and it keeps the app's own limits."""
    for key in KEY_FIELDS[member]:
        if record.get(key) is None:
            raise ArchiveError(f"{where}: it has no {key}")
    table = ROW_MEMBERS[member]
    values = from_json(table, record, where=where)
    _check_required(table, values, where=where, member=member)
    order.check(values, where=where)
    _check_limits(member, values, where=where)
    return values


# --- The app's own limits ------------------------------------------------------------------


def _check_limits(member: str, values: dict[str, Any], *, where: str) -> None:
    if member == "jobs.jsonl":
        _check_job(values, where=where)
    elif member == "users.jsonl":
        _check_person(values, where=where)
    elif member == "collections.jsonl":
        _check_collection(values, where=where)


def _check_job(values: dict[str, Any], *, where: str) -> None:
    """The prompt and image count within the run rules every model falls back to where its
    live schema is silent. The live schema a job ran under is not in the archive, so a job
    one allowed more for (a longer prompt, more images) is refused too."""
    model = values["model"]
    run = {field: values[JOB_COLUMNS[field]] for field in _RULED_JOB_FIELDS}
    problems = builtin_rules(model).check(run)
    if not run["prompt"] and not has_builtin_record(model):
        # Another model's schema may take no prompt; its jobs record none.
        problems.pop("prompt", None)
    if problems:
        field, problem = next(iter(problems.items()))
        raise ArchiveError(f"{where}: jobs.{JOB_COLUMNS.get(field, field)} {problem}")


def _check_person(values: dict[str, Any], *, where: str) -> None:
    """A name `users add` takes, as it keeps it, and the key that name has."""
    name = values["name"]
    try:
        kept = accounts.check_name(name)
    except accounts.AccountError as refused:
        raise ArchiveError(
            f"{where}: users.name {name[:70]!r} is not one `users add` takes ({refused.message})"
        ) from None
    if kept != name:
        raise ArchiveError(f"{where}: users.name {name[:70]!r} is not trimmed")
    if values["name_key"] != accounts.name_key(name):
        raise ArchiveError(f"{where}: users.name_key is not the key of users.name")


def _check_collection(values: dict[str, Any], *, where: str) -> None:
    """A name and description the boards take, as they keep them."""
    for column, clean in (("name", boards.clean_name), ("description", boards.clean_description)):
        value = values.get(column)
        if value is None:
            continue
        try:
            kept = clean(value)
        except InvalidParameters as refused:
            raise ArchiveError(
                f"{where}: collections.{column} {refused.field_errors[column]}"
            ) from None
        if kept != value:
            raise ArchiveError(f"{where}: collections.{column} is not as a board keeps it")


# --- Values --------------------------------------------------------------------------------


def _filled_by_import(member: str, column: str) -> bool:
    """Values that never travel in a row: a person's sign-in, a thumbnail's bytes."""
    if member == "users.jsonl":
        return column not in USER_COLUMNS
    return member == "thumbnails.jsonl" and column == "data"


def _check_required(table: sa.Table, values: dict[str, Any], *, where: str, member: str) -> None:
    """Columns that must have a value have one, so the rows insert on any database."""
    for column in table.columns:
        if (
            column.nullable
            or column.default is not None
            or column.server_default is not None
            or (column.primary_key and column.name == "id")  # a new one, or given (checked)
            or _filled_by_import(member, column.name)
        ):
            continue
        if values.get(column.name) is None:
            raise ArchiveError(f"{where}: it has no {column.name}")


def from_json(
    table: sa.Table, record: dict[str, Any], *, where: str | None = None
) -> dict[str, Any]:
    """The record's values for the columns this table has, in Python types; a value that
    does not fit its column refuses the archive."""
    values: dict[str, Any] = {}
    for column in table.columns:
        if column.name not in record:
            continue
        value = record[column.name]
        label = f"{where}: {table.name}.{column.name}" if where else f"{table.name}.{column.name}"
        if value is not None:
            value = _fit(column, value, label)
            if column.name == "status" and table is JOBS:
                try:
                    value = JobStatus(value)
                except ValueError:
                    raise ArchiveError(
                        f"{label} holds {str(value)[:50]!r}, not a job status"
                    ) from None
        values[column.name] = value
    if (
        table is IMAGES
        and "sha256" in values
        and not re.fullmatch(r"[0-9a-f]{64}", str(values["sha256"]))
    ):
        raise ArchiveError(f"{where or 'images'}: sha256 is not a sha256")
    if table is JOBS and values.get("reference_images") is not None:
        _check_references(values["reference_images"], where or "jobs")
    return values


def _check_references(value: Any, where: str) -> None:
    """A job's references: a short list of image numbers (renumbered after import)."""
    if (
        not isinstance(value, list)
        or len(value) > REFERENCES_MAX
        or not all(
            isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= ROW_ID_MAX
            for item in value
        )
    ):
        raise ArchiveError(
            f"{where}: jobs.reference_images is not a list of at most {REFERENCES_MAX} image ids"
        )


def _fit(column: sa.Column[Any], value: Any, label: str) -> Any:
    kind = column.type
    if isinstance(kind, sa.Integer):
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**63 - 1:
            raise ArchiveError(f"{label} holds {str(value)[:50]!r}, not a whole number")
    elif isinstance(kind, sa.Boolean):
        if not isinstance(value, bool):
            raise ArchiveError(f"{label} holds {str(value)[:50]!r}, not true or false")
    elif isinstance(kind, sa.Float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArchiveError(f"{label} holds {str(value)[:50]!r}, not a number")
    elif isinstance(kind, UTCDateTime):
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise ArchiveError(f"{label} holds {str(value)[:50]!r}, not a date and time") from None
        if value.tzinfo is None:
            raise ArchiveError(f"{label} holds a time without its time zone")
    elif isinstance(kind, sa.String):
        if not isinstance(value, str):
            raise ArchiveError(f"{label} holds {str(value)[:50]!r}, not text")
        if kind.length is not None and len(value) > kind.length:
            raise ArchiveError(f"{label} is longer than its {kind.length} characters")
    elif isinstance(kind, sa.LargeBinary):
        raise ArchiveError(f"{label}: bytes travel in members of their own, not in rows")
    return value

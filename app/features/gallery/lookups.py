"""Looking up images by id (entries, favourites, owners, authors) and the filter form's choices.

The listing (`app.features.gallery.listing`) walks indexes page by page; these read a
known handful of rows by primary key, or one short query each, so they share its row
shape (`ENTRY_COLUMNS`) and nothing of its query building.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import col, select

from app.features.gallery.listing import ENTRY_COLUMNS, GalleryEntry, author_names, entry_of
from app.storage.db.engine import Database
from app.storage.db.tables import Collection, Image, Job, User


@dataclass(frozen=True)
class FilterChoices:
    """What the gallery's filter form offers beside the fixed lists: (id, name) pairs."""

    people: list[tuple[int, str]]
    boards: list[tuple[int, str]]


_PEOPLE = sa.select(col(User.id), col(User.name)).order_by(col(User.name_key))
_BOARDS = sa.select(col(Collection.id), col(Collection.name)).order_by(col(Collection.name))


def filter_choices(db: Database, *, people: bool) -> FilterChoices:
    """Everyone who ever made something (`people`: only with sign-in on) and every board,
    by name, read together: a gallery page asks on every request."""
    with db.read_rows() as connection:
        return FilterChoices(
            # (Ids are primary keys: never None, whatever the column's Python type says.)
            people=[(i or 0, name) for i, name in connection.execute(_PEOPLE)] if people else [],
            boards=[(i or 0, name) for i, name in connection.execute(_BOARDS)],
        )


def author_of(db: Database, *, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    with db.read() as session:
        return author_names(session, [user_id]).get(user_id)


def image_owners(db: Database, *, image_ids: Iterable[int]) -> dict[int, int | None]:
    """Who made each image (the user id of its job), for permission checks."""
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        return {}
    with db.read() as session:
        rows = session.execute(
            sa.select(col(Image.id), col(Job.user_id))
            .join(Job, col(Job.id) == col(Image.job_id))
            .where(col(Image.id).in_(ids))
        )
        return {image_id: user_id for image_id, user_id in rows}


# --- Single images ---------------------------------------------------------------------


def get_entry(db: Database, *, image_id: int) -> GalleryEntry | None:
    """One image with its job's parameters, in the trash or not."""
    with db.read() as session:
        row = (
            session.connection()
            .execute(
                sa.select(*ENTRY_COLUMNS)
                .select_from(Image)
                .join(Job, col(Job.id) == col(Image.job_id))
                .where(col(Image.id) == image_id)
            )
            .first()
        )
    return entry_of(row) if row is not None else None


def get_entries(db: Database, *, image_ids: Iterable[int]) -> list[GalleryEntry]:
    """These images (those that exist), in the order asked for; duplicates dropped."""
    wanted = list(dict.fromkeys(image_ids))
    if not wanted:
        return []
    with db.read() as session:
        rows = session.connection().execute(
            sa.select(*ENTRY_COLUMNS)
            .select_from(Image)
            .join(Job, col(Job.id) == col(Image.job_id))
            .where(col(Image.id).in_(wanted))
        )
        by_id = {entry.image_id: entry for entry in map(entry_of, rows)}
    return [by_id[image_id] for image_id in wanted if image_id in by_id]


def get_job_detail(db: Database, *, job_id: int) -> Job | None:
    with db.read() as session:
        return session.get(Job, job_id)


def set_favourite(db: Database, *, image_ids: Iterable[int], favourite: bool) -> int:
    """Star or unstar images; returns how many exist."""
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        return 0
    with db.write() as session:
        result = session.execute(
            sa.update(Image).where(col(Image.id).in_(ids)).values(favourite=favourite)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def favourite_ids(db: Database, *, image_ids: Iterable[int]) -> set[int]:
    """Which of these images are starred."""
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        return set()
    with db.read() as session:
        found = session.exec(
            select(Image.id).where(col(Image.id).in_(ids), col(Image.favourite).is_(True))
        ).all()
        return {image_id for image_id in found if image_id is not None}


def existing_image_ids(db: Database, *, image_ids: Iterable[int]) -> set[int]:
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        return set()
    with db.read() as session:
        return {
            image_id
            for image_id in session.exec(select(Image.id).where(col(Image.id).in_(ids))).all()
            if image_id is not None
        }


def latest_preset_images(db: Database, *, slugs: Sequence[str]) -> dict[str, int]:
    """For each preset, the id of the newest image made from it that is not in the trash.

    One short query per preset, each walking `jobs` backwards through its (preset, id)
    index and stopping at the first job with a stored image: the cost stays the same
    however large the gallery grows.
    """
    latest: dict[str, int] = {}
    with db.read() as session:
        for slug in slugs:
            image_id = session.exec(
                select(Image.id)
                .join(Job, col(Job.id) == col(Image.job_id))
                .where(col(Job.preset) == slug, col(Image.deleted_at).is_(None))
                .order_by(col(Job.id).desc(), col(Image.index))
                .limit(1)
            ).first()
            if image_id is not None:
                latest[slug] = image_id
    return latest

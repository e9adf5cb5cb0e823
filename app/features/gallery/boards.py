"""Collections: named boards of images that everyone on the team sees.

An image can be on any number of boards; removing it from one, or deleting a
board, leaves the image where it was. Trashed images stay on their boards but
are not shown until restored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from app.core.errors import Conflict, InvalidParameters, NotFoundError
from app.core.text import line_problem, text_problem
from app.features.people import audit
from app.features.people.permissions import Actor
from app.storage.db.engine import Database
from app.storage.db.tables import Collection, CollectionImage, Image, utcnow

NAME_MAX = 100
DESCRIPTION_MAX = 1000


@dataclass(frozen=True)
class Board:
    id: int
    name: str
    description: str
    image_count: int
    cover_image_id: int | None
    created_at: datetime
    updated_at: datetime


def clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if problem := line_problem(cleaned):
        raise InvalidParameters({"name": problem})
    if not cleaned:
        raise InvalidParameters({"name": "must not be empty"})
    if len(cleaned) > NAME_MAX:
        raise InvalidParameters({"name": f"must be at most {NAME_MAX} characters"})
    return cleaned


def clean_description(description: str) -> str:
    cleaned = description.strip()
    if problem := text_problem(cleaned):
        raise InvalidParameters({"description": problem})
    if len(cleaned) > DESCRIPTION_MAX:
        raise InvalidParameters({"description": f"must be at most {DESCRIPTION_MAX} characters"})
    return cleaned


def list_boards(db: Database) -> list[Board]:
    """Every board, by name, with how many visible images it holds and its newest one."""
    with db.read() as session:
        collections = list(session.exec(select(Collection).order_by(col(Collection.name))).all())
        stats = {
            collection_id: (count, cover)
            for collection_id, count, cover in session.execute(
                sa.select(
                    col(CollectionImage.collection_id),
                    sa.func.count(),
                    sa.func.max(col(Image.id)),
                )
                .join(Image, col(Image.id) == col(CollectionImage.image_id))
                .where(col(Image.deleted_at).is_(None))
                .group_by(col(CollectionImage.collection_id))
            )
        }
    return [
        _board(collection, *stats.get(collection.id or 0, (0, None))) for collection in collections
    ]


def get_board(db: Database, *, collection_id: int) -> Board:
    for board in list_boards(db):
        if board.id == collection_id:
            return board
    raise NotFoundError(f"There is no collection {collection_id}.")


def _board(collection: Collection, count: int, cover: int | None) -> Board:
    assert collection.id is not None
    return Board(
        id=collection.id,
        name=collection.name,
        description=collection.description,
        image_count=count,
        cover_image_id=cover,
        created_at=collection.created_at,
        updated_at=collection.updated_at,
    )


def create_board(db: Database, *, name: str, description: str = "") -> Board:
    collection = Collection(name=clean_name(name), description=clean_description(description))
    try:
        with db.write() as session:
            session.add(collection)
            session.flush()
    except IntegrityError:
        raise Conflict({"name": "a collection with this name exists already"}) from None
    return _board(collection, 0, None)


def update_board(
    db: Database,
    *,
    collection_id: int,
    actor: Actor,
    name: str | None = None,
    description: str | None = None,
) -> Board:
    """Change what is given (None: unchanged); a rename is recorded in the audit log."""
    try:
        with db.write() as session:
            collection = session.get(Collection, collection_id)
            if collection is None:
                raise NotFoundError(f"There is no collection {collection_id}.")
            old_name = collection.name
            if name is not None:
                collection.name = clean_name(name)
            if description is not None:
                collection.description = clean_description(description)
            collection.updated_at = utcnow()
            session.add(collection)
            new_name = collection.name
    except IntegrityError:
        raise Conflict({"name": "a collection with this name exists already"}) from None
    if new_name != old_name:
        audit.record(
            db,
            action=audit.Action.COLLECTION_RENAMED,
            user=actor.user,
            ip=actor.ip,
            detail=f"{collection_id}: {old_name} → {new_name}",
        )
    return get_board(db, collection_id=collection_id)


def delete_board(db: Database, *, collection_id: int, actor: Actor) -> None:
    """Delete a board (its images stay in the gallery); recorded in the audit log."""
    with db.write() as session:
        collection = session.get(Collection, collection_id)
        if collection is None:
            raise NotFoundError(f"There is no collection {collection_id}.")
        name = collection.name
        session.execute(
            sa.delete(CollectionImage).where(col(CollectionImage.collection_id) == collection_id)
        )
        session.delete(collection)
    audit.record(
        db,
        action=audit.Action.COLLECTION_DELETED,
        user=actor.user,
        ip=actor.ip,
        detail=f"{collection_id}: {name}",
    )


def add_images(db: Database, *, collection_id: int, image_ids: Iterable[int]) -> int:
    """Put images on a board (ones already there stay as they are); returns how many were added."""
    ids = list(dict.fromkeys(image_ids))
    with db.write() as session:
        collection = session.get(Collection, collection_id)
        if collection is None:
            raise NotFoundError(f"There is no collection {collection_id}.")
        if not ids:
            return 0
        existing = set(session.exec(select(Image.id).where(col(Image.id).in_(ids))).all())
        missing = [image_id for image_id in ids if image_id not in existing]
        if missing:
            raise NotFoundError(f"There is no image {', '.join(map(str, missing[:5]))}.")
        already = set(
            session.exec(
                select(CollectionImage.image_id).where(
                    CollectionImage.collection_id == collection_id,
                    col(CollectionImage.image_id).in_(ids),
                )
            ).all()
        )
        now = utcnow()
        added = [image_id for image_id in ids if image_id not in already]
        for image_id in added:
            session.add(
                CollectionImage(collection_id=collection_id, image_id=image_id, added_at=now)
            )
        collection.updated_at = now
        session.add(collection)
    return len(added)


def images_on_board(db: Database, *, collection_id: int, image_ids: Iterable[int]) -> set[int]:
    """Which of these images are on the board already."""
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        return set()
    with db.read() as session:
        found = session.exec(
            select(CollectionImage.image_id).where(
                CollectionImage.collection_id == collection_id,
                col(CollectionImage.image_id).in_(ids),
            )
        ).all()
        return set(found)


def remove_images(db: Database, *, collection_id: int, image_ids: Iterable[int]) -> int:
    ids = list(dict.fromkeys(image_ids))
    with db.write() as session:
        collection = session.get(Collection, collection_id)
        if collection is None:
            raise NotFoundError(f"There is no collection {collection_id}.")
        if not ids:
            return 0
        result = session.execute(
            sa.delete(CollectionImage).where(
                col(CollectionImage.collection_id) == collection_id,
                col(CollectionImage.image_id).in_(ids),
            )
        )
        collection.updated_at = utcnow()
        session.add(collection)
        return int(result.rowcount)  # type: ignore[attr-defined]


def boards_of(db: Database, *, image_id: int) -> list[tuple[int, str]]:
    """(id, name) of the boards an image is on."""
    with db.read() as session:
        return [
            (collection_id, name)
            for collection_id, name in session.execute(
                sa.select(col(Collection.id), col(Collection.name))
                .join(CollectionImage, col(CollectionImage.collection_id) == col(Collection.id))
                .where(col(CollectionImage.image_id) == image_id)
                .order_by(col(Collection.name))
            )
        ]


def board_names(db: Database) -> list[tuple[int, str]]:
    """(id, name) of every board, by name: the choices of an "add to collection" menu."""
    with db.read() as session:
        return [
            (collection_id, name)
            for collection_id, name in session.execute(
                sa.select(col(Collection.id), col(Collection.name)).order_by(col(Collection.name))
            )
        ]

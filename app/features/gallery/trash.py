"""Deleting safely: images go to the trash, can be restored for some days, then are purged.

Trashing only stamps `images.deleted_at`; every listing leaves such rows out.
Purging deletes the image rows (their thumbnails and collection entries go with
them) and then the stored bytes no other image shares: the store looks at the rows
as it deletes (app.storage.blobs.protocol), so bytes an image stored meanwhile names are kept. Jobs
stay: what was asked for and what it cost remain in the usage figures.

Only the periodic purge (and an explicit purge) deletes: reading the trash
never does. An image past its days is no longer listed or restorable while it
waits for the next purge.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
import sqlalchemy as sa
from sqlmodel import col, select

from app.features.gallery import lookups
from app.features.people import audit
from app.features.people.permissions import Actor
from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import Image, utcnow

log = logging.getLogger(__name__)

# Stay well under every database's limit on bound parameters.
_BATCH = 500


def purge_time(deleted_at: datetime, *, days: float) -> datetime:
    return deleted_at + timedelta(days=days)


def move_to_trash(db: Database, *, image_ids: Iterable[int], now: datetime | None = None) -> int:
    """Trash these images (those not already trashed); returns how many moved."""
    moment = now or utcnow()
    moved = 0
    with db.write() as session:
        for batch in _batches(image_ids):
            result = session.execute(
                sa.update(Image)
                .where(col(Image.id).in_(batch), col(Image.deleted_at).is_(None))
                .values(deleted_at=moment)
            )
            moved += int(result.rowcount)  # type: ignore[attr-defined]
    return moved


def expiry_cutoff(*, days: float, now: datetime | None = None) -> datetime:
    """Images trashed at or before this moment are due to be purged."""
    return (now or utcnow()) - timedelta(days=days)


def restore(db: Database, *, image_ids: Iterable[int], days: float | None = None) -> int:
    """Take these images out of the trash (those still within their `days`); returns how
    many came back."""
    restored = 0
    with db.write() as session:
        for batch in _batches(image_ids):
            condition = sa.and_(col(Image.id).in_(batch), col(Image.deleted_at).is_not(None))
            if days is not None:
                condition = sa.and_(condition, col(Image.deleted_at) > expiry_cutoff(days=days))
            result = session.execute(sa.update(Image).where(condition).values(deleted_at=None))
            restored += int(result.rowcount)  # type: ignore[attr-defined]
    return restored


@dataclass(frozen=True)
class PurgeResult:
    images: int
    blobs: int


def purge_expired(
    db: Database, blobs: BlobStore, *, days: float, now: datetime | None = None
) -> PurgeResult:
    """Purge every image that has been in the trash for `days` days or more."""
    cutoff = expiry_cutoff(days=days, now=now)
    with db.read() as session:
        expired = list(
            session.exec(
                select(Image.id).where(
                    col(Image.deleted_at).is_not(None), col(Image.deleted_at) <= cutoff
                )
            ).all()
        )
    return purge(db, blobs, image_ids=[image_id for image_id in expired if image_id is not None])


def purge(db: Database, blobs: BlobStore, *, image_ids: Iterable[int]) -> PurgeResult:
    """Delete these trashed images for good; images not in the trash are left alone."""
    digests: set[str] = set()
    deleted = 0
    with db.write() as session:
        for batch in _batches(image_ids):
            condition = sa.and_(col(Image.id).in_(batch), col(Image.deleted_at).is_not(None))
            digests.update(session.exec(select(Image.sha256).where(condition)).all())
            result = session.execute(sa.delete(Image).where(condition))
            deleted += int(result.rowcount)  # type: ignore[attr-defined]
    if not digests:
        return PurgeResult(deleted, 0)
    return PurgeResult(deleted, blobs.discard(digests, gallery=db))


# What people do to images in the trash, each recorded in the audit log as itself.
TRASH_ACTIONS = (audit.Action.DELETE, audit.Action.RESTORE, audit.Action.PURGE)


def change(
    db: Database,
    blobs: BlobStore,
    *,
    actor: Actor,
    action: audit.Action,
    image_ids: list[int],
    days: float,
) -> int:
    """Trash, restore or purge images: only their makers or an admin may; the log says who.
    Returns how many images changed."""
    if action not in TRASH_ACTIONS:
        raise ValueError(f"{action} is not something done to the trash")
    for image_id, owner in lookups.image_owners(db, image_ids=image_ids).items():
        actor.ensure_may_change(owner, what=f"image {image_id}")
    if action is audit.Action.DELETE:
        count = move_to_trash(db, image_ids=image_ids)
    elif action is audit.Action.RESTORE:
        count = restore(db, image_ids=image_ids, days=days)
    else:
        count = purge(db, blobs, image_ids=image_ids).images
    if count:
        audit.record(
            db,
            action=action,
            user=actor.user,
            ip=actor.ip,
            detail=f"{count} image(s): {', '.join(map(str, image_ids[:50]))}",
        )
    return count


def _batches(ids: Iterable[int]) -> Iterable[list[int]]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _BATCH):
        yield unique[start : start + _BATCH]


async def purge_periodically(
    db: Database, blobs: BlobStore, *, days: float, every_seconds: float = 3600.0
) -> None:
    """Purge what has outstayed the trash, at start-up and then every `every_seconds`."""
    while True:
        try:
            result = await anyio.to_thread.run_sync(lambda: purge_expired(db, blobs, days=days))
            if result.images:
                log.info("purged %d image(s) from the trash", result.images)
        except Exception:
            # A failed purge is retried next time; it must not stop the app.
            log.exception("purging the trash failed")
        await anyio.sleep(every_seconds)

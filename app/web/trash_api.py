"""The trash in the JSON API: what was deleted, restoring it, and purging it for good.

Their own router, beside the gallery's (app/web/gallery_api.py): every change here is
audited and, for a purge, takes the image's bytes from the blob store too."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.features.gallery import listing as gallery
from app.features.gallery import trash
from app.features.people import audit
from app.features.people.permissions import Actor
from app.web.deps import ActorDep, ServicesDep
from app.web.gallery_params import DEFAULT_LIMIT, CursorDep, LimitQuery
from app.web.gallery_views import CountAnswer, GalleryImagePage, ImageIds, gallery_image
from app.web.paging import link_next
from app.web.services import Services

router = APIRouter(prefix="/api", tags=["gallery"])


@router.get("/trash", response_model=GalleryImagePage)
def list_trash(
    request: Request,
    response: Response,
    services: ServicesDep,
    cursor: CursorDep,
    limit: LimitQuery = DEFAULT_LIMIT,
) -> GalleryImagePage:
    """Trashed images, each with the moment it will be purged (reading never purges)."""
    days = services.settings.trash_days
    page = gallery.search_images(
        services.db,
        cursor=cursor,
        limit=limit,
        trash=True,
        trashed_after=trash.expiry_cutoff(days=days),
    )
    link_next(response, request, page.next_cursor)
    return GalleryImagePage(
        items=[gallery_image(entry, trash_days=days) for entry in page.items],
        next_cursor=str(page.next_cursor) if page.next_cursor else None,
    )


def _change_trash(
    services: Services, actor: Actor, action: audit.Action, image_ids: list[int]
) -> CountAnswer:
    count = trash.change(
        services.db,
        services.blobs,
        actor=actor,
        action=action,
        image_ids=image_ids,
        days=services.settings.trash_days,
    )
    return CountAnswer(count=count)


@router.post("/trash", response_model=CountAnswer)
def move_to_trash(body: ImageIds, services: ServicesDep, actor: ActorDep) -> CountAnswer:
    """Move images to the trash; they can be restored for `PLAYGROUND_TRASH_DAYS` days."""
    return _change_trash(services, actor, audit.Action.DELETE, body.image_ids)


@router.post("/trash/restore", response_model=CountAnswer)
def restore(body: ImageIds, services: ServicesDep, actor: ActorDep) -> CountAnswer:
    return _change_trash(services, actor, audit.Action.RESTORE, body.image_ids)


@router.post("/trash/purge", response_model=CountAnswer)
def purge(body: ImageIds, services: ServicesDep, actor: ActorDep) -> CountAnswer:
    """Delete trashed images for good, now."""
    return _change_trash(services, actor, audit.Action.PURGE, body.image_ids)

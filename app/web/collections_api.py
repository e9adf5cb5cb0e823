"""Collections in the JSON API: named sets of gallery images, and the images in each.

Their own router, beside the gallery's (app/web/gallery_api.py), since a collection is a
thing of its own with its own life: made, renamed, filled, emptied and deleted."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.features.gallery import boards
from app.web.deps import ActorDep, ServicesDep
from app.web.gallery_views import (
    CollectionCreate,
    CollectionPublic,
    CollectionUpdate,
    CountAnswer,
    ImageIds,
    collection_public,
)

router = APIRouter(prefix="/api", tags=["gallery"])


@router.get("/collections", response_model=list[CollectionPublic])
def list_collections(services: ServicesDep) -> list[CollectionPublic]:
    return [collection_public(board) for board in boards.list_boards(services.db)]


@router.post("/collections", status_code=201, response_model=CollectionPublic)
def create_collection(body: CollectionCreate, services: ServicesDep) -> CollectionPublic:
    board = boards.create_board(services.db, name=body.name, description=body.description)
    return collection_public(board)


@router.get("/collections/{collection_id}", response_model=CollectionPublic)
def get_collection(collection_id: int, services: ServicesDep) -> CollectionPublic:
    return collection_public(boards.get_board(services.db, collection_id=collection_id))


@router.patch("/collections/{collection_id}", response_model=CollectionPublic)
def update_collection(
    collection_id: int, body: CollectionUpdate, services: ServicesDep, actor: ActorDep
) -> CollectionPublic:
    """Change the fields the body names; one left out stays as it is."""
    board = boards.update_board(
        services.db,
        collection_id=collection_id,
        actor=actor,
        name=body.name,
        description=body.description,
    )
    return collection_public(board)


@router.delete("/collections/{collection_id}", status_code=204)
def delete_collection(collection_id: int, services: ServicesDep, actor: ActorDep) -> Response:
    """Delete the collection; its images stay in the gallery."""
    boards.delete_board(services.db, collection_id=collection_id, actor=actor)
    return Response(status_code=204)


@router.post("/collections/{collection_id}/images", response_model=CountAnswer)
def add_to_collection(collection_id: int, body: ImageIds, services: ServicesDep) -> CountAnswer:
    added = boards.add_images(services.db, collection_id=collection_id, image_ids=body.image_ids)
    return CountAnswer(count=added)


@router.delete("/collections/{collection_id}/images/{image_id}", response_model=CountAnswer)
def remove_from_collection(collection_id: int, image_id: int, services: ServicesDep) -> CountAnswer:
    removed = boards.remove_images(services.db, collection_id=collection_id, image_ids=[image_id])
    return CountAnswer(count=removed)

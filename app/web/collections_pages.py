"""Collections in the browser: the list with its form, and a collection's rename and delete.

A collection's images are shown by the gallery page itself (`/gallery?collection=`), so
these routes only make, change and remove collections, then send the browser there."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.core.errors import InvalidParameters
from app.features.gallery import boards
from app.web import urls
from app.web.deps import ActorDep, ServicesDep, TemplatesDep

router = APIRouter(include_in_schema=False)


@router.get("/collections", name="collections_page", response_class=HTMLResponse)
def collections_page(request: Request, services: ServicesDep, templates: TemplatesDep) -> Response:
    context = {"boards": boards.list_boards(services.db), "errors": {}, "values": {}}
    return templates.TemplateResponse(request, "collections.html", context)


@router.post("/collections", response_class=HTMLResponse)
def create_collection_page(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    try:
        board = boards.create_board(services.db, name=name, description=description)
    except InvalidParameters as exc:
        context = {
            "boards": boards.list_boards(services.db),
            "errors": exc.field_errors,
            "values": {"name": name, "description": description},
        }
        return templates.TemplateResponse(request, "collections.html", context, status_code=422)
    return RedirectResponse(urls.collection_gallery(board.id), status_code=303)


@router.post("/collections/{collection_id}/edit")
def edit_collection_page(
    collection_id: int,
    services: ServicesDep,
    actor: ActorDep,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    boards.update_board(
        services.db,
        collection_id=collection_id,
        actor=actor,
        name=name,
        description=description,
    )
    return RedirectResponse(urls.collection_gallery(collection_id), status_code=303)


@router.post("/collections/{collection_id}/delete")
def delete_collection_page(collection_id: int, services: ServicesDep, actor: ActorDep) -> Response:
    boards.delete_board(services.db, collection_id=collection_id, actor=actor)
    return RedirectResponse(urls.collections(), status_code=303)

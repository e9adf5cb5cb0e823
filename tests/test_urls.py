"""Every address the app writes comes from app/web/urls.py, and each of those is the path
its route is served at: a route moved without its function there fails here, and so does
a fast JSON writer whose literal copy of an address drifts from it."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from starlette.routing import Route

from app.core.config import Settings
from app.features.jobs.reads import JobListItem
from app.storage.db.tables import ROW_ID_MAX
from app.web import urls
from app.web.factory import ROUTERS, create_app
from app.web.gallery_views import gallery_page_json
from app.web.views import job_page_json
from tests.support.gallery_seed import GALLERY_ENTRY, IMAGE_SUMMARY, JOB_SUMMARY

IDS = (1, 42, ROW_ID_MAX)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data_dir: Path = tmp_path_factory.mktemp("urls") / "data"
    return create_app(Settings(_env_file=None, data_dir=data_dir))


def path_for(app: FastAPI, name: str, **params: int) -> str:
    return str(app.url_path_for(name, **params))


# Each function of urls.py, with what it must equal for an id (or two) on the built app.
EXPECTED: dict[Callable[..., str], Callable[[FastAPI, int], str]] = {
    urls.image: lambda app, n: path_for(app, "get_image", image_id=n),
    urls.thumbnail: lambda app, n: path_for(app, "get_thumbnail", image_id=n),
    urls.preview: lambda app, n: path_for(app, "get_preview", image_id=n),
    urls.download: lambda app, n: path_for(app, "download_image", image_id=n),
    urls.sidecar: lambda app, n: path_for(app, "download_sidecar", image_id=n),
    urls.remix: lambda app, n: path_for(app, "playground") + f"?remix={n}",
    urls.job_page: lambda app, n: path_for(app, "job_page", job_id=n),
    urls.job_api: lambda app, n: path_for(app, "get_job", job_id=n),
    urls.grid_page: lambda app, n: path_for(app, "grid_page", grid_id=n),
    urls.grid_api: lambda app, n: path_for(app, "get_grid", grid_id=n),
    urls.grid_zip: lambda app, n: path_for(app, "download_grid_zip", grid_id=n),
    urls.contact_sheet: lambda app, n: path_for(app, "contact_sheet", grid_id=n),
    urls.resume_grid: lambda app, n: path_for(app, "resume_grid", grid_id=n),
    urls.collection_gallery: lambda app, n: path_for(app, "gallery_page") + f"?collection={n}",
    urls.favourite_form: lambda app, n: path_for(app, "toggle_favourite", image_id=n),
}
WITHOUT_IDS: dict[Callable[[], str], str] = {
    urls.resume_jobs: "resume_jobs",
    urls.collections: "collections_page",
    urls.sign_in: "sign_in_page",
    urls.playground: "playground",
    urls.account: "account_page",
    urls.admin_people: "people_page",
}
ROUTE_NAMES = {
    "get_image",
    "get_thumbnail",
    "get_preview",
    "download_image",
    "download_sidecar",
    "playground",
    "job_page",
    "get_job",
    "grid_page",
    "get_grid",
    "download_grid_zip",
    "contact_sheet",
    "resume_grid",
    "gallery_page",
    "toggle_favourite",
    *WITHOUT_IDS.values(),
}


def test_every_address_function_is_checked_here() -> None:
    written = {
        name
        for name, function in inspect.getmembers(urls, inspect.isfunction)
        if function.__module__ == urls.__name__
    }
    checked = {function.__name__ for function in [*EXPECTED, *WITHOUT_IDS, urls.job_image]}
    assert written == checked


@pytest.mark.parametrize("number", IDS)
@pytest.mark.parametrize("function", list(EXPECTED), ids=lambda function: function.__name__)
def test_each_address_is_its_routes_path(
    app: FastAPI, function: Callable[[int], str], number: int
) -> None:
    assert function(number) == EXPECTED[function](app, number)


@pytest.mark.parametrize("function", list(WITHOUT_IDS), ids=lambda function: function.__name__)
def test_each_fixed_address_is_its_routes_path(app: FastAPI, function: Callable[[], str]) -> None:
    assert function() == path_for(app, WITHOUT_IDS[function])


@pytest.mark.parametrize("number", IDS)
def test_a_job_image_anchor_is_on_the_job_page(app: FastAPI, number: int) -> None:
    assert urls.job_image(number, 7) == path_for(app, "job_page", job_id=number) + "#image-7"


@pytest.mark.parametrize("next_path", ["/", "/gallery?q=a b&favourite=1", "/jobs/7#image-1"])
def test_sign_in_carries_where_to_go_next(app: FastAPI, next_path: str) -> None:
    address = urls.sign_in(next_path)
    assert address.startswith(path_for(app, "sign_in_page") + "?next=")
    assert parse_qs(urlsplit(address).query) == {"next": [next_path]}


def test_each_route_named_here_is_one_route() -> None:
    # `url_path_for` answers with the first route of a name: a second one would be unreachable.
    routes = [route for router in ROUTERS for route in router.routes]
    names = [route.name for route in routes if isinstance(route, Route)]
    assert {name: names.count(name) for name in ROUTE_NAMES} == dict.fromkeys(ROUTE_NAMES, 1)


def addresses(value: Any) -> Iterator[tuple[str, str]]:
    """Every (key, value) of a parsed answer whose key names an address."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "url" or key.endswith("_url"):
                yield key, inner
            else:
                yield from addresses(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from addresses(inner)


@pytest.mark.parametrize("number", IDS)
def test_the_fast_gallery_writer_writes_the_same_addresses(number: int) -> None:
    entry = replace(GALLERY_ENTRY, image_id=number, job_id=number)
    (item,) = json.loads(gallery_page_json([entry], None, trash_days=30))["items"]
    assert sorted(addresses(item)) == sorted(
        [
            ("url", urls.image(number)),
            ("thumbnail_url", urls.thumbnail(number)),
            ("download_url", urls.download(number)),
            ("sidecar_url", urls.sidecar(number)),
            ("remix_url", urls.remix(number)),
            ("url", urls.job_page(number)),
        ]
    )


@pytest.mark.parametrize("number", IDS)
def test_the_fast_job_writer_writes_the_same_addresses(number: int) -> None:
    job = replace(
        JOB_SUMMARY,
        id=number,
        remix_of_job_id=number,
        remix_of_image_index=0,
        reference_images=[number],
    )
    image = replace(IMAGE_SUMMARY, id=number)
    (item,) = json.loads(job_page_json([JobListItem(job, [image], None)], None))["items"]
    assert sorted(addresses(item)) == sorted(
        [
            ("url", urls.job_page(number)),
            ("api_url", urls.job_api(number)),
            ("url", urls.job_page(number)),  # the job it remixes
            ("url", urls.image(number)),
            ("thumbnail_url", urls.thumbnail(number)),
            ("url", urls.image(number)),  # its reference image
            ("thumbnail_url", urls.thumbnail(number)),
        ]
    )

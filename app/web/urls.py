"""Every address the app's code writes into an answer, a redirect or a tile, one function
each (templates keep their own hrefs).

Answers and pages are built without a request at hand (listings are written row by row,
errors from the exception alone), so `request.url_for` is not there to ask; these plain
f-strings are. Each names the route it stands for, and tests/test_urls.py checks every
one against `app.url_path_for(<that name>, ...)` on a built app, so moving a route
without its function here fails a test rather than a link.

The listings' fast JSON writers (app/web/views.py, app/web/gallery_views.py) keep their
own literal copies, because a call per address per row is a measurable share of the
page; the same test parses what they write and compares each address with these.
"""

from __future__ import annotations

from urllib.parse import quote


def image(image_id: int) -> str:
    """Route `get_image`: the stored image's bytes."""
    return f"/api/images/{image_id}"


def thumbnail(image_id: int) -> str:
    """Route `get_thumbnail`."""
    return f"/api/images/{image_id}/thumbnail"


def preview(image_id: int) -> str:
    """Route `get_preview`: at most 1024 px a side, for images larger than that."""
    return f"/api/images/{image_id}/preview"


def download(image_id: int) -> str:
    """Route `download_image`: the image with its parameters embedded."""
    return f"/api/images/{image_id}/download"


def sidecar(image_id: int) -> str:
    """Route `download_sidecar`: the image's parameters as a JSON file."""
    return f"/api/images/{image_id}/sidecar"


def playground() -> str:
    """Route `playground`: the form and the recent jobs."""
    return "/"


def remix(job_id: int) -> str:
    """Route `playground`, its form filled from the job."""
    return f"/?remix={job_id}"


def job_page(job_id: int) -> str:
    """Route `job_page`."""
    return f"/jobs/{job_id}"


def job_image(job_id: int, image_id: int) -> str:
    """Route `job_page`, scrolled to one of its images."""
    return f"/jobs/{job_id}#image-{image_id}"


def job_api(job_id: int) -> str:
    """Route `get_job`: the job as JSON."""
    return f"/api/jobs/{job_id}"


def resume_jobs() -> str:
    """Route `resume_jobs`: what a stop's undo posts to."""
    return "/jobs/resume"


def grid_page(grid_id: int) -> str:
    """Route `grid_page`."""
    return f"/grids/{grid_id}"


def grid_api(grid_id: int) -> str:
    """Route `get_grid`: the grid as JSON."""
    return f"/api/grids/{grid_id}"


def grid_zip(grid_id: int) -> str:
    """Route `download_grid_zip`."""
    return f"/api/grids/{grid_id}/zip"


def contact_sheet(grid_id: int) -> str:
    """Route `contact_sheet`: the grid as one PNG."""
    return f"/api/grids/{grid_id}/contact-sheet.png"


def resume_grid(grid_id: int) -> str:
    """Route `resume_grid`: what a grid stop's undo posts to."""
    return f"/grids/{grid_id}/resume"


def collections() -> str:
    """Route `collections_page`."""
    return "/collections"


def collection_gallery(collection_id: int) -> str:
    """Route `gallery_page`, narrowed to one collection."""
    return f"/gallery?collection={collection_id}"


def favourite_form(image_id: int) -> str:
    """Route `toggle_favourite`: where a tile's star posts."""
    return f"/gallery/images/{image_id}/favourite"


def sign_in(next_path: str | None = None) -> str:
    """Route `sign_in_page`; with `next_path`, where a signed-in person goes on to."""
    return "/sign-in" if next_path is None else f"/sign-in?next={quote(next_path)}"


def account() -> str:
    """Route `account_page`: a person's tokens and password."""
    return "/account"


def admin_people() -> str:
    """Route `people_page`: the accounts an admin manages."""
    return "/admin/people"

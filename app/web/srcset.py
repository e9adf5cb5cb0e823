"""The renditions a page offers the browser for a stored image, as an `<img srcset>`.

The thumbnail (512 px), the preview (1024 px, for an image larger than that) and the
image itself, each with its own width: the browser takes the smallest that fills the box
the page gives the image at the screen's density. Without the preview a job's card shown
600 css px wide on a laptop took the full 2K PNG (~6 MB in a real gallery) to show it.
"""

from __future__ import annotations

from app.storage.intake import PREVIEW_MAX_SIDE, THUMBNAIL_MAX_SIDE, fitted_width, has_preview
from app.web import urls


def image_srcset(image_id: int, width: int, height: int) -> str:
    """The srcset for this image, or "" when it is no larger than its thumbnail (which is
    then the image's own size: there is nothing to choose between)."""
    if max(width, height) <= THUMBNAIL_MAX_SIDE:
        return ""
    choices = [f"{urls.thumbnail(image_id)} {fitted_width(width, height, THUMBNAIL_MAX_SIDE)}w"]
    if has_preview(width, height):
        choices.append(f"{urls.preview(image_id)} {fitted_width(width, height, PREVIEW_MAX_SIDE)}w")
    choices.append(f"{urls.image(image_id)} {width}w")
    return ", ".join(choices)

"""The gallery page's repeated markup, rendered in Python rather than by Jinja loops.

A gallery page holds up to a hundred tiles, and as a macro each one cost more
than the whole JSON answer for the same image: a macro call, a dozen attribute
lookups through the environment and an escape per value. Here a tile is one
f-string, with the user's text (the prompt) escaped exactly as the templates
escape it (markupsafe) and every other value an integer or a word of ours.
Templates call `gallery_tiles(entries)`; the favourite form is the one
`favourite_button` in gallery_macros.html makes, which the lightbox and job
page swap in (tests/test_gallery_markup.py renders both and compares them
element by element). Likewise the filter form's choices (`Options`): escaped once,
each request only marks the chosen one.
"""

from __future__ import annotations

from collections.abc import Iterable

from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from app.features.gallery.listing import GalleryEntry
from app.features.jobs.references import is_upload
from app.web import urls
from app.web.templating import ALT_TEXT_MAX_CHARS, ratio

CAPTION_MAX_CHARS = 80

_FAVOURITE_FORM = {
    # (next value, class, pressed, title, mark) for an image that is, or is not, a favourite
    True: ("false", " is-on", "true", "Remove from favourites", "★"),
    False: ("true", "", "false", "Add to favourites", "☆"),
}


def _truncate(text: str, length: int, leeway: int) -> str:
    """Jinja's `truncate` filter (whole words, "..." at the end), without its call overhead."""
    if len(text) <= length + leeway:
        return text
    return text[: length - 3].rsplit(" ", 1)[0] + "..."


def render_tiles(
    environment: Environment, entries: Iterable[GalleryEntry], *, csrf_token: str
) -> Markup:
    """The `<li>` of each image, in order."""
    token = escape(csrf_token)
    leeway = int(environment.policies["truncate.leeway"])
    # A tile names its model only when it is not the app's own (uploads say "upload").
    own_model = environment.globals.get("settings_model")
    parts = []
    for entry in entries:
        # Integers all: SQLite keeps ids as rowids, sizes are int columns; the prompt is escaped.
        id, job_id = int(entry.image_id), int(entry.job_id)
        width, height = int(entry.width), int(entry.height)
        alt = escape(_truncate(entry.prompt, ALT_TEXT_MAX_CHARS, leeway))
        caption = escape(_truncate(entry.prompt, CAPTION_MAX_CHARS, leeway))
        if entry.model != own_model:
            label = "upload" if is_upload(entry.model) else escape(entry.model)
            caption = Markup(f'<span class="tile-model">{label}</span> ') + caption
        next_value, on_class, pressed, title, mark = _FAVOURITE_FORM[bool(entry.favourite)]
        favourite = urls.favourite_form(id)
        parts.append(
            f"""
<li class="gallery-item" id="image-{id}" data-image-id="{id}" data-ratio="{ratio(width, height)}">
  <a class="tile-link" href="{urls.job_image(job_id, id)}" data-lightbox="{id}">
    <img src="{urls.thumbnail(id)}" width="{width}" height="{height}" alt="{alt}" \
loading="lazy" decoding="async">
  </a>
  <input class="tile-select" type="checkbox" name="ids" value="{id}" form="selection" \
aria-label="Select image {id}">
  <form class="fav-form" method="post" action="{favourite}" \
hx-post="{favourite}" hx-swap="outerHTML" data-fav-image="{id}">
    <input type="hidden" name="csrf_token" value="{token}">
    <input type="hidden" name="favourite" value="{next_value}">
    <button type="submit" class="fav-button{on_class}" aria-pressed="{pressed}" \
aria-label="Favourite image {id}" title="{title}">{mark}</button>
  </form>
  <p class="gallery-caption">{caption}</p>
</li>"""
        )
    return Markup("".join(parts))


@pass_context
def gallery_tiles(context: Context, entries: Iterable[GalleryEntry]) -> Markup:
    """The template global: the page's CSRF token comes from the template's context."""
    return render_tiles(context.environment, entries, csrf_token=str(context.get("csrf_token", "")))


class Options:
    """The <option>s of a select, escaped once: `render` marks the chosen value."""

    def __init__(self, choices: Iterable[tuple[object, object]]) -> None:
        self._options = tuple(
            (str(value), f'<option value="{escape(value)}"', f">{escape(label)}</option>")
            for value, label in choices
        )

    def render(self, chosen: object = None) -> Markup:
        picked = None if chosen is None else str(chosen)
        return Markup(
            "".join(
                f"{start} selected{end}" if value == picked else start + end
                for value, start, end in self._options
            )
        )


def options(choices: Iterable[tuple[object, object]], chosen: object = None) -> Markup:
    """The template global for choices made per request (collections, people)."""
    return Options(choices).render(chosen)

"""The gallery's repeated markup made in Python (app/web/tiles.py): escaped as the templates
escape, the same page a browser got from the Jinja loops it replaces."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment
from jinja2.filters import do_truncate
from lxml.html import HtmlElement

from app.core.config import Settings
from app.features.gallery.listing import GalleryEntry
from app.features.jobs.references import UPLOAD_MODEL
from app.storage.db.tables import ROW_ID_MAX
from app.web.factory import create_app
from app.web.tiles import Options, render_tiles
from tests.support.gallery_seed import GALLERY_ENTRY
from tests.support.markup import attributes, one, parse, select, text

HOSTILE = '"><script>alert(1)</script> & a lighthouse at dawn, ' + "watercolor " * 20


def entry(
    image_id: int, prompt: str, *, favourite: bool = False, model: str = "seedream-4"
) -> GalleryEntry:
    return replace(
        GALLERY_ENTRY,
        image_id=image_id,
        job_id=image_id * 10,
        favourite=favourite,
        model=model,
        prompt=prompt,
    )


def test_tiles_escape_the_prompt_and_truncate_it_as_jinja_does() -> None:
    env = Environment(autoescape=True)
    env.globals["settings_model"] = "seedream-4"
    html = render_tiles(
        env, [entry(7, HOSTILE), entry(8, "short", favourite=True)], csrf_token='t"k'
    )
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'value="t&#34;k"' in html, "the CSRF token is escaped too"
    alt = re.search(r'alt="([^"]*)"', html)
    caption = re.search(r'class="gallery-caption">([^<]*)<', html)
    assert alt is not None and caption is not None
    for found, length in ((alt.group(1), 200), (caption.group(1), 80)):
        assert found == str(env.filters["e"](do_truncate(env, HOSTILE, length)))
    assert one(html, "li#image-7 a.tile-link").get("href") == "/jobs/70#image-7"
    image = one(html, "li#image-7 img")
    assert (image.get("width"), image.get("height")) == ("2048", "1536")
    # A favourite's button is pressed and its form unsets it; the other's the reverse.
    for tile, pressed, sends, star in (
        ("image-8", "true", "false", "★"),
        ("image-7", "false", "true", "☆"),
    ):
        button = one(html, f"li#{tile} form.fav-form button")
        assert (button.get("aria-pressed"), text(button)) == (pressed, star)
        assert one(html, f"li#{tile} form.fav-form input[name=favourite]").get("value") == sends


def test_options_mark_the_chosen_one_and_escape_the_rest() -> None:
    choices = Options([(1, "Ada"), (2, "<Bob & co>"), ("x", 'say "hi"')])
    assert choices.render(2) == (
        '<option value="1">Ada</option>'
        '<option value="2" selected>&lt;Bob &amp; co&gt;</option>'
        '<option value="x">say &#34;hi&#34;</option>'
    )
    assert "selected" not in choices.render(None)
    assert "selected" not in choices.render(3)


def test_tiles_name_a_model_other_than_the_apps_own() -> None:
    env = Environment(autoescape=True)
    env.globals["settings_model"] = "seedream-4"
    tiles = [
        entry(1, "own"),
        entry(2, "edited", model="<edit>-model"),
        entry(3, "uploaded", model=UPLOAD_MODEL),
    ]
    captions = re.findall(
        r'class="gallery-caption">(.*?)</p>', render_tiles(env, tiles, csrf_token="")
    )
    assert captions == [
        "own",
        '<span class="tile-model">&lt;edit&gt;-model</span> edited',
        '<span class="tile-model">upload</span> uploaded',
    ]


def shape(form: HtmlElement) -> list[tuple[Any, ...]]:
    """The form element by element: tag, attributes and text (the tail too, inside it)."""
    return [
        (
            element.tag,
            attributes(element),
            (element.text or "").strip(),
            (element.tail or "").strip() if element is not form else "",
        )
        for element in form.iter()
    ]


@pytest.mark.parametrize("favourite", [False, True])
def test_a_tiles_favourite_form_is_the_macros(tmp_path: Path, favourite: bool) -> None:
    """The tiles write the `favourite_button` macro of gallery_macros.html out by hand, and
    the lightbox and job page swap the macro's form in for a tile's: the two are one form."""
    app = create_app(Settings(_env_file=None, data_dir=tmp_path / "data"))
    env = app.state.templates.env
    token = 'a"b<c>&d'
    rows = [
        entry(1, 'say "cheese" & <smile>', favourite=favourite),
        entry(42, "a lighthouse", favourite=favourite),
        replace(entry(1, HOSTILE, favourite=favourite), image_id=ROW_ID_MAX, job_id=ROW_ID_MAX),
    ]
    tiles = parse(render_tiles(env, rows, csrf_token=token))
    macros = env.get_template("gallery_macros.html").make_module({"csrf_token": token})
    for row in rows:
        (tile_form,) = select(tiles, f"li#image-{row.image_id} form.fav-form")
        macro_form = one(str(macros.favourite_button(row.image_id, row.favourite)), "form")
        assert shape(tile_form) == shape(macro_form), row.image_id
        assert one(tile_form, "button").get("aria-pressed") == str(favourite).lower()

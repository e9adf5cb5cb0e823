"""Pages parsed, so tests assert on their structure rather than on substrings: a substring
passes when the markup moves to the wrong element, an attribute's quoting changes, or the
text turns up in a comment or a script, and fails when attributes are reordered.

lxml's HTML parser with CSS selectors (cssselect): `select`, `one` and `text` for new tests,
and `Elements` (every element's attributes in document order, by id and by name) for the
tests that read a form field by field."""

from __future__ import annotations

import re
from typing import Any, TypeAlias

import lxml.html
from lxml.html import HtmlElement

# lxml has no types, so this is `str | Any` to mypy; it says what callers pass.
Html: TypeAlias = "str | HtmlElement"


def parse(html: str) -> HtmlElement:
    """A page or an htmx fragment as a tree; a fragment's elements end up in one body."""
    if not html.strip():
        raise AssertionError("expected HTML, got an empty answer")
    return lxml.html.document_fromstring(html)


def _root(html: Html) -> HtmlElement:
    return parse(html) if isinstance(html, str) else html


def select(html: Html, css: str) -> list[HtmlElement]:
    """Every element the CSS selector matches, in document order (none is a fine answer)."""
    found: list[HtmlElement] = _root(html).cssselect(css)
    return found


def one(html: Html, css: str) -> HtmlElement:
    """The one element the selector matches; fails, naming the selector, on none or several."""
    found = select(html, css)
    if len(found) != 1:
        raise AssertionError(f"{css!r} matched {len(found)} elements, expected exactly one")
    return found[0]


def text(element: HtmlElement) -> str:
    """An element's text as a person reads it: its descendants' text, whitespace collapsed."""
    content: str = element.text_content()
    return re.sub(r"\s+", " ", content).strip()


def texts(html: Html, css: str) -> list[str]:
    """The text of every element the selector matches."""
    return [text(element) for element in select(html, css)]


def attributes(element: HtmlElement) -> dict[str, str]:
    """An element's attributes; a boolean one (`checked`) is present with the value ""."""
    return dict(element.attrib)


class Elements:
    """A form read field by field: every element's tag and attributes in document order,
    one by its id, those with a name, and the text of each element with an id."""

    def __init__(self, html: str) -> None:
        root = parse(html)
        tagged: list[Any] = [e for e in root.iter() if isinstance(e.tag, str)]
        self.elements: list[tuple[str, dict[str, str]]] = [(e.tag, attributes(e)) for e in tagged]
        self.texts: dict[str, str] = {
            e.get("id"): e.text_content() for e in tagged if e.get("id") is not None
        }

    def by_id(self, ident: str) -> dict[str, str]:
        return next(attrs for _, attrs in self.elements if attrs.get("id") == ident)

    def named(self, name: str) -> list[dict[str, str]]:
        return [attrs for _, attrs in self.elements if attrs.get("name") == name]

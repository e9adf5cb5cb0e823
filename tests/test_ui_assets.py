"""What the pages are made of, checked without a browser: vendored test files, no inline
scripts or styles, and the form's limits rendered from the rules the server enforces."""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from app.core.resources import TEMPLATES_DIR
from app.domain.rules import SEEDREAM_RULES, form_limits
from tests.support.apps import RunningApp

TESTS = Path(__file__).resolve().parent


def test_vendored_test_files_match_their_recorded_checksums() -> None:
    table = (TESTS / "vendor" / "README.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", table, flags=re.MULTILINE)
    assert rows
    for name, recorded in rows:
        assert hashlib.sha256((TESTS / "vendor" / name).read_bytes()).hexdigest() == recorded, name


def test_templates_have_no_inline_scripts_styles_or_handlers() -> None:
    for template in TEMPLATES_DIR.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"\sstyle=", text), template.name
        assert not re.search(r"\son[a-z]+=|hx-on", text), template.name


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def test_the_form_carries_the_server_s_limits_and_labels_every_control(app: RunningApp) -> None:
    parser = _Collector()
    parser.feed(app.client.get("/").text)
    form = next(attrs for tag, attrs in parser.elements if attrs.get("id") == "generate-form")
    # The emulator serves the built-in schema, so the rules in force are the built-in ones.
    assert json.loads(form["data-limits"] or "") == form_limits(SEEDREAM_RULES)
    labelled = {attrs.get("for") for tag, attrs in parser.elements if tag == "label"}
    for tag, attrs in parser.elements:
        if tag in ("input", "textarea", "select") and attrs.get("type") not in (
            "hidden",
            "radio",
            "checkbox",
        ):
            assert attrs.get("id") in labelled, attrs
    sizes = [attrs for tag, attrs in parser.elements if attrs.get("name") == "image_size"]
    assert len(sizes) == 9 and sum("checked" in attrs for attrs in sizes) == 1


def test_no_limit_is_written_in_the_javascript() -> None:
    """The browser checks the numbers the server renders (data-limits, min, max, maxlength)."""
    from app.core.resources import STATIC_DIR

    script = "\n".join(path.read_text() for path in STATIC_DIR.glob("*.js"))
    numbers = set(re.findall(r"(?<![\w.])\d[\d_]*(?:\.\d+)?", script))
    limits = {
        str(value)
        for value in form_limits(SEEDREAM_RULES).values()
        if isinstance(value, int | float) and value not in (0, 1)
    } | {"2560", "1440", "4096", "4000", "2147483647", "6"}
    assert numbers & limits == set(), "limits belong to the rules, rendered into the page"

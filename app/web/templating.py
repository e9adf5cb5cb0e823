"""The Jinja environment: autoescaped templates, and the filters and globals they use."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, pass_environment
from jinja2.filters import do_truncate

from app import __version__
from app.core.config import Settings
from app.core.resources import TEMPLATES_DIR
from app.domain.model_params import IMAGE_COUNT_FIELDS
from app.domain.parameters import (
    IMAGE_SIZE_LABELS,
    IMAGE_SIZES,
    NAMED_SIZE_PIXELS,
    pixel_size,
    size_label,
    size_short_label,
)
from app.domain.presets import PRESETS
from app.domain.rules import SEEDREAM_RULES, form_limits, has_builtin_record, offered_sizes
from app.features.jobs.references import is_upload, placeholder_ids
from app.features.models.live_rules import RulesInForce
from app.storage.db.tables import JobStatus, utcnow
from app.web.schema_form import FormField, form_fields
from app.web.srcset import image_srcset


def build_templates(settings: Settings, *, static_url: Callable[[str], str]) -> Jinja2Templates:
    """`static_url` names a static file by its content (app/web/assets.py)."""
    templates = Jinja2Templates(directory=TEMPLATES_DIR, context_processors=[upstream_state])
    env = templates.env
    # Starlette turns autoescaping on already; say so here, since prompts are user text.
    env.autoescape = True
    # Templates ship with the package and never change while it runs: checking their
    # files' mtimes on every render is per-request work that belongs at start-up.
    env.auto_reload = False
    env.globals.update(
        version=__version__,
        static_url=static_url,
        demo_mode=settings.demo_mode,
        settings_model=settings.model,
        presets=PRESETS,
        preset_names={preset.slug: preset.name for preset in PRESETS},
        # Every size a stored job may have (the gallery's filter); the form offers the
        # sizes the rules in force allow (offered_sizes).
        image_sizes=IMAGE_SIZES,
        image_size_labels=IMAGE_SIZE_LABELS,
        size_label=size_label,
        size_short_label=size_short_label,
        named_size_pixels=NAMED_SIZE_PIXELS,
        # The built-in limits; the form renders the limits of the rules in force.
        limits=form_limits(SEEDREAM_RULES),
        form_limits=form_limits,
        offered_sizes=offered_sizes,
        pixel_size=pixel_size,
        ratio=ratio,
        image_srcset=image_srcset,
        JobStatus=JobStatus,
        schema_fields=schema_fields,
        image_count_fields=IMAGE_COUNT_FIELDS,
        is_upload=is_upload,
        reference_ids=placeholder_ids,
        has_builtin_record=has_builtin_record,
    )
    env.globals["credits_text"] = credits_text_for(settings.demo_mode)
    env.filters["when"] = format_when
    env.filters["day"] = format_day
    env.filters["sentence"] = as_sentence
    env.filters["credits"] = format_credits
    env.filters["filesize"] = format_filesize
    env.filters["seconds_since"] = seconds_since
    env.filters["alt_text"] = alt_text
    env.filters["json_text"] = json_text
    return templates


def upstream_state(request: Request) -> dict[str, Any]:
    """What every page shows: a refused key blocks everything; the rules in force and the
    last doctor check (looked up only by the templates that show them); who is signed in."""
    services = getattr(request.app.state, "services", None)
    state = request.state
    return {
        "key_problem": services.key_health.problem() if services is not None else None,
        "rules_for": services.rules.in_force if services is not None else None,
        "catalogue": services.catalogue.in_force if services is not None else None,
        "doctor_report": services.doctor_reports.latest if services is not None else None,
        "user": getattr(state, "user", None),
        "sign_in_on": getattr(state, "sign_in_on", False),
        "csrf_token": getattr(state, "csrf_token", ""),
    }


def schema_fields(in_force: RulesInForce) -> list[FormField]:
    """The form of a model without a hand-made one, from its schema (app/web/schema_form.py)."""
    return form_fields(in_force.rules, in_force.image_input)


def ratio(width: int, height: int) -> str:
    """An image's width over its height, for the stylesheets that size a box by it
    (`attr(data-ratio type(<number>))`): the box is then right before the image arrives."""
    return f"{width / height:.4f}" if width > 0 and height > 0 else "1"


ALT_TEXT_MAX_CHARS = 200


@pass_environment
def alt_text(env: Environment, prompt: str) -> str:
    """An image's alt text: its prompt, shortened. A filter, not a macro: a gallery page
    calls it 48 times, and a macro call costs as much as the rest of the tile."""
    return do_truncate(env, prompt, ALT_TEXT_MAX_CHARS)


def json_text(value: object, indent: int | None = None) -> str:
    """A value as JSON to read on a page: its own characters (the page escapes them as it
    escapes any text), where `tojson`, made for scripts, writes `<` as `\\u003c`."""
    return json.dumps(value, indent=indent, ensure_ascii=False)


def format_when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_day(moment: datetime | None) -> str:
    """A date as people say it: "30 Dec", with the year only when it is not this one."""
    if moment is None:
        return "—"
    if moment.year == utcnow().year:
        return f"{moment.day} {moment:%b}"
    return f"{moment.day} {moment:%b %Y}"


def as_sentence(text: str) -> str:
    """A field's message ("a collection with this name exists already") as a sentence."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


DEMO_CREDITS = "0 credits (demo)"


def credits_text_for(demo_mode: bool) -> Any:
    """How every page words an amount of credits; in demo mode nothing is spent, and
    every page says so the same way."""

    def credits_text(amount: float | None) -> str:
        if demo_mode:
            return DEMO_CREDITS
        if amount is None:
            return "—"
        return f"{amount:g} credit{'' if amount == 1 else 's'}"

    return credits_text


def seconds_since(moment: datetime) -> float:
    """Elapsed time by the server's clock; the page counts on from there, whatever its own says."""
    return round(max(0.0, (utcnow() - moment).total_seconds()), 1)


def format_credits(amount: float | None) -> str:
    if amount is None:
        return "—"
    return f"{amount:g}"


def format_filesize(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB"):
        if value < 1000 or unit == "MB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} MB"

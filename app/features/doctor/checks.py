"""`seedream-playground doctor`: the first contact with PixelDojo, diagnosed.

By default it spends nothing: it reads the model's card and schema, asks for a job
that cannot exist (404 with a good key, 401 with a bad one), and reports the
rate-limit headers and the clock against the server's `Date`. With `run=True` it
also spends one 1-image job (app/features/doctor/paid_run.py).

It reports only what it checked. A 404 means something only once the base URL is
known to be PixelDojo's API (the model's card or the catalogue answered): a base
URL without `/api/v1` answers 404 to everything, which says nothing of the key, so
the key is then marked unchecked. The key is never printed, stored or sent anywhere
but the API.

It stays one module, long as it is: each check's verdict depends on what the ones
before it found (a 404 says nothing of the key until the base URL is known), so the
order and the reasoning are read in one place.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from app.core.config import Settings
from app.domain.parameters import DEFAULT_IMAGE_SIZE, size_label
from app.domain.presets import PRESETS, preset_run
from app.domain.rule_changes import differences
from app.domain.rules import (
    BUILTIN_RULES,
    ModelRules,
    SchemaUnreadable,
    builtin_rules,
    default_size,
    effective,
    has_builtin_record,
    image_input,
)
from app.features.doctor.paid_run import Gallery, spend_test_job
from app.features.doctor.report import DoctorResult, Status
from app.features.jobs import callbacks as webhooks
from app.features.models.catalogue import catalogue_from_row
from app.features.models.catalogue import load_row as load_catalogue
from app.features.models.live_rules import keeps, record_read
from app.features.models.rate_budget import upstream_client
from app.storage.db.engine import Database
from app.upstream import (
    AuthenticationFailed,
    MalformedResponse,
    NotFound,
    PermissionDenied,
    PixelDojoClient,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamUnreachable,
)
from app.upstream.errors import redact

# The clock may be this far off before retention figures and expiries mislead.
CLOCK_SKEW_WARN_SECONDS = 60.0

# Told each step as it starts (`Reading the model's schema`), for a person watching.
OnStep = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class Observer:
    """Sees every API answer: the rate-limit headers, and the server's clock."""

    def __init__(self) -> None:
        self.rate_limit_headers: dict[str, str] = {}
        self.skews: list[float] = []
        self.answers = 0

    async def __call__(self, response: httpx.Response) -> None:
        self.answers += 1
        for raw_name, raw_value in response.headers.raw:  # as the server spelled them
            name, lowered = raw_name.decode("latin-1"), raw_name.decode("latin-1").lower()
            if lowered.startswith(("x-ratelimit", "ratelimit")) or lowered == "retry-after":
                self.rate_limit_headers[name] = raw_value.decode("latin-1")
        date = response.headers.get("date")
        if date:
            try:
                server = email.utils.parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError, IndexError):
                return
            self.skews.append(time.time() - server)


def client_for(settings: Settings, observer: Observer, db: Database) -> PixelDojoClient:
    """The app's own client: doctor's calls spend the key's one budget
    (app.features.models.rate_budget), so a doctor run beside a running app never takes
    the key over its rate limit."""
    assert settings.pixeldojo_api_key is not None
    return upstream_client(
        settings,
        db,
        api_key=settings.pixeldojo_api_key,
        base_url=settings.pixeldojo_base_url,
        on_response=observer,
    )


async def check_api_key_model_schema(
    result: DoctorResult,
    client: PixelDojoClient,
    settings: Settings,
    db: Database,
    app_model: str,
    on_step: OnStep = _quiet,
) -> ModelRules | None:
    """The base URL, the key, the model and its live schema; the live rules, if read.
    `app_model` is the app's own model, which decides whether what is read is kept."""
    model = settings.model
    base = settings.pixeldojo_base_url
    started = time.monotonic()
    card: dict[str, Any] | None = None
    model_found: bool | None = None
    unclear: UpstreamHTTPError | MalformedResponse | None = None
    on_step("Reading the model's card")
    try:
        card = await client.model(model)
        model_found = True
    except UpstreamUnreachable as exc:
        result.block(
            "base URL",
            f"cannot be reached: {exc.message}",
            f"{base} cannot be reached ({exc.message}); check PIXELDOJO_BASE_URL and the network.",
        )
        return None
    except NotFound:
        model_found = False
    except (UpstreamHTTPError, MalformedResponse) as exc:
        unclear = exc
    seconds = time.monotonic() - started
    # Whether this is PixelDojo's API at all: its catalogue answers wherever the API is.
    is_api = model_found is True
    if not is_api:
        on_step("Reading the model catalogue")
        try:
            await client.list_models()
            is_api = True
        except NotFound:
            result.block(
                "base URL",
                "answers, but not as PixelDojo's API: GET /models is not found there",
                f"{base} is not PixelDojo's API: /models is not found there (is /api/v1 "
                "missing from PIXELDOJO_BASE_URL?).",
            )
            result.add("API key", "skip", "not checked: the base URL is not PixelDojo's API")
            return None
        except UpstreamError as exc:
            if unclear is None:
                result.add(
                    "base URL",
                    "warn",
                    "answered, but neither the model's card nor the catalogue could be read "
                    f"({exc.message}): it may not be PixelDojo's API",
                )
    if is_api:
        result.add("base URL", "ok", f"PixelDojo's API: answered in {seconds:.2f} s")
    elif unclear is not None:
        answered = (
            f"HTTP {unclear.status_code}" if isinstance(unclear, UpstreamHTTPError) else "oddly"
        )
        status: Status = "note" if isinstance(unclear, AuthenticationFailed) else "warn"
        result.add(
            "base URL",
            status,
            f"answered {answered} to the model's card and the catalogue: it may not be "
            "PixelDojo's API",
        )
        result.add("model", "warn", f"{model}: its card could not be read ({unclear.message})")

    on_step("Checking the API key")
    try:
        await client.check_key()
        if is_api:
            result.add("API key", "ok", "accepted: a job that cannot exist answered 404")
        else:
            result.add(
                "API key",
                "skip",
                "not checked: a 404 says nothing of the key while the base URL may not be "
                "PixelDojo's API",
            )
    except (AuthenticationFailed, PermissionDenied) as exc:
        result.block(
            "API key",
            f"refused: HTTP {exc.status_code}, {exc.message}",
            f"PixelDojo refused the API key (HTTP {exc.status_code}: {exc.message}); "
            "fix PIXELDOJO_API_KEY.",
        )
    except UpstreamError as exc:
        result.add("API key", "warn", f"could not tell whether it is accepted: {exc.message}")

    if model_found is False:
        result.block(
            "model",
            f"PixelDojo has no model {model!r}",
            f"PixelDojo has no model {model!r}; check PLAYGROUND_MODEL (and PIXELDOJO_BASE_URL).",
        )
        return None
    if card is not None:
        result.add("model", "ok", _describe_card(model, card))
    on_step("Reading the model's schema")
    return await _check_schema(
        result, client, settings, db, app_model=app_model, card=card, model_found=model_found
    )


async def _check_schema(
    result: DoctorResult,
    client: PixelDojoClient,
    settings: Settings,
    db: Database,
    *,
    app_model: str,
    card: dict[str, Any] | None,
    model_found: bool | None,
) -> ModelRules | None:
    model = settings.model
    live: ModelRules | None = None
    schema: dict[str, Any] | None = None
    error: str | None = None
    try:
        document = await client.model_schema(model)
        live = ModelRules.from_json_schema(document, model=model)
        schema = dict(document)
    except NotFound:
        error = "PixelDojo publishes no schema for this model"
    except (UpstreamError, SchemaUnreadable) as exc:
        error = f"could not be read: {exc.message if isinstance(exc, UpstreamError) else exc}"
    if live is None:
        result.add("schema", "warn", f"{error}; the built-in rules apply")
    elif not has_builtin_record(model):
        # A model the app knows only by its schema: its form is rendered from it.
        found = image_input(live)
        takes = (
            f"; it takes reference images in {found.name} ({found.min_items} to {found.max_items})"
            if found is not None
            else ""
        )
        result.add(
            "schema",
            "ok",
            f"read: {len(live.properties)} fields, the playground's form is made from them{takes}",
        )
    else:
        result.differences = differences(live, builtin_rules(model))
        if result.differences:
            count = len(result.differences)
            result.add(
                "schema",
                "note",
                f"read; {count} difference{'s' if count != 1 else ''} from the built-in "
                "rules (the app follows the live schema):",
                [change.text for change in result.differences],
            )
        else:
            result.add("schema", "ok", "read; the same as the built-in rules")
        _report_what_changes(result, effective(BUILTIN_RULES.get(model), live))
    if schema is not None or error is not None:
        # What doctor read serves the app too (its rules in force start from it), for a
        # model the app keeps: not a name it would never read again.
        await anyio.to_thread.run_sync(
            lambda: _keep_read(
                db,
                settings,
                app_model=app_model,
                schema=schema,
                card=card,
                error=error,
                model_found=model_found,
            )
        )
    return live


def _keep_read(
    db: Database,
    settings: Settings,
    *,
    app_model: str,
    schema: dict[str, Any] | None,
    card: dict[str, Any] | None,
    error: str | None,
    model_found: bool | None,
) -> None:
    upstream = settings.upstream_name
    catalogue = catalogue_from_row(load_catalogue(db, upstream=upstream))
    if not keeps(settings.model, default=app_model, catalogue=catalogue):
        return
    record_read(
        db,
        upstream=upstream,
        model=settings.model,
        schema=schema,
        card=card,
        error=error,
        model_found=model_found,
    )


def _report_what_changes(result: DoctorResult, rules: ModelRules) -> None:
    """What the live schema changes for a person: the size a run that names none is made
    at, and presets that run at another size or not at all."""
    changes: list[str] = []
    size = default_size(rules)
    if size is not None and size != DEFAULT_IMAGE_SIZE:
        changes.append(
            f"a run that names no size is made at {size_label(size)} ({size}): the live "
            f"schema does not allow {DEFAULT_IMAGE_SIZE}"
        )
    changes.extend(run.note for preset in PRESETS if (run := preset_run(preset, rules)).note)
    if changes:
        result.add("defaults", "note", "the live schema changes what runs by default:", changes)


async def check_callbacks(result: DoctorResult, settings: Settings, db: Database | None) -> None:
    """Whether PixelDojo is asked to call the app back when jobs end, and whether the public
    URL answers as this app from here (a callback address that cannot exist: 404, ours).
    Never blocking: without callbacks, jobs are polled."""
    if settings.callback_base_url is None:
        why = "PLAYGROUND_WEBHOOKS=false" if settings.public_url else "no PLAYGROUND_PUBLIC_URL"
        result.add(
            "callbacks",
            "note",
            f"off ({why}): jobs are polled, and their images stored a few seconds after "
            "they end rather than within a second",
        )
        return
    probe = f"{settings.callback_base_url}{webhooks.PATH_PREFIX}0/doctor"
    try:
        # A client of its own: the key goes to PixelDojo only, never to the public URL.
        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as plain:
            answer = await plain.post(probe)
    except httpx.HTTPError as exc:
        result.add(
            "callbacks",
            "warn",
            f"{settings.public_url} did not answer from here ({exc.__class__.__name__}): "
            "unless the app runs there, PixelDojo cannot call it back; jobs are then polled",
        )
        return
    if answer.status_code != 404 or webhooks.NOT_FOUND_MESSAGE not in answer.text:
        result.add(
            "callbacks",
            "warn",
            f"{settings.public_url} answered HTTP {answer.status_code}, not as this app: "
            "PixelDojo's callbacks would not arrive; jobs are then polled",
        )
        return
    asked, called = webhooks.callback_counts(db) if db is not None else (0, 0)
    seen = (
        f"they came for {called} of the last {asked} jobs that asked"
        if asked
        else "no job has asked yet"
    )
    result.add(
        "callbacks",
        "ok",
        f"on: {settings.public_url} answers as this app, and PixelDojo is asked to call it "
        f"when each job ends; {seen}",
    )


def _describe_card(model: str, card: dict[str, Any]) -> str:
    name = card.get("name")
    cost = card.get("creditCost")
    text = f"{model}" + (f": {name}" if isinstance(name, str) and name else "")
    if isinstance(cost, dict):
        amount = cost.get("amount", cost.get("default"))
        kind = cost.get("type")
        if isinstance(amount, int | float):
            text += f", {amount:g} credit{'s' if amount != 1 else ''}"
            text += f" ({kind})" if isinstance(kind, str) and kind else ""
    elif isinstance(cost, int | float):
        text += f", {cost:g} credit{'s' if cost != 1 else ''}"
    return text


def report_rate_limits(result: DoctorResult, observer: Observer, settings: Settings) -> None:
    result.rate_limit_headers = dict(observer.rate_limit_headers)
    limit = settings.upstream_rate_limit()
    ours = (
        f"the app keeps to {limit:g} requests a minute (PIXELDOJO_RATE_LIMIT_PER_MINUTE)"
        if limit
        else "the app sets no limit of its own (PIXELDOJO_RATE_LIMIT_PER_MINUTE)"
    )
    if not observer.rate_limit_headers:
        result.add("rate limits", "ok", f"no rate-limit headers seen; {ours}")
        return
    shown = [f"{name}: {value}" for name, value in sorted(observer.rate_limit_headers.items())]
    result.add("rate limits", "ok", f"headers seen; {ours}:", shown)


def report_clock(result: DoctorResult, observer: Observer) -> None:
    if not observer.skews:
        result.add("clock", "note", "the server sent no Date header to compare with")
        return
    # The smallest difference: the one least delayed by the network.
    skew = min(observer.skews, key=abs)
    result.clock_skew_seconds = round(skew, 1)
    if abs(skew) < 2:
        result.add("clock", "ok", "agrees with the server's Date (within its 1 s precision)")
        return
    direction = "ahead of" if skew > 0 else "behind"
    status: Status = "warn" if abs(skew) >= CLOCK_SKEW_WARN_SECONDS else "ok"
    advice = (
        "; set the clock (NTP): expiries and retention figures depend on it"
        if status == "warn"
        else ""
    )
    result.add("clock", status, f"{abs(skew):.0f} s {direction} the server's Date{advice}")


async def diagnose(
    settings: Settings,
    *,
    db: Database,
    run: bool = False,
    gallery: Gallery | None = None,
    on_step: OnStep = _quiet,
    model: str | None = None,
) -> DoctorResult:
    """Every check, in order; stops early only where nothing further could be learned.
    `model` (default: the configured one) is the model checked; what is read of it is kept
    for the app only if the app would keep it (app.features.models.live_rules.keeps)."""
    app_model = settings.model
    if model is not None:
        settings = settings.model_copy(update={"model": model})
    result = DoctorResult(base_url=settings.pixeldojo_base_url, model=settings.model, spent=False)
    observer = Observer()
    client = client_for(settings, observer, db)
    secret = settings.pixeldojo_api_key.get_secret_value() if settings.pixeldojo_api_key else ""
    try:
        live = await check_api_key_model_schema(result, client, settings, db, app_model, on_step)
        on_step("Checking callbacks")
        await check_callbacks(result, settings, db)
        if run and not result.blocked:
            await spend_test_job(result, client, settings, live, gallery, on_step)
    finally:
        await client.aclose()
    # Headers and a clock from a server that is not PixelDojo's API say nothing of it.
    reached_api = not any(c.name == "base URL" and c.status == "FAIL" for c in result.checks)
    if observer.answers and reached_api:
        report_rate_limits(result, observer, settings)
        report_clock(result, observer)
    # Whatever the upstream echoed, the key never leaves in a report.
    for check in result.checks:
        check.summary = redact(check.summary, secret)
        check.details = [redact(detail, secret) for detail in check.details]
    if result.blocked:
        result.blocked = redact(result.blocked, secret)
    return result

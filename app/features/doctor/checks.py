"""`seedream-playground doctor`: the first contact with PixelDojo, diagnosed.

By default it spends nothing: it reads the model's card and schema, asks for a job
that cannot exist (404 with a good key, 401 with a bad one), and reports the
rate-limit headers and the clock against the server's `Date`. With `run=True` it
spends one 1-image job at the cheapest size and reports what the service did: the
status words, the time to completion, the output's shape, the image host, the
retention `expiresAt` implies, and the cost against the credits left.

Exit codes: 0 when the app can work (schema differences are reported, not fatal),
1 when something blocks it (the reason in one line), 2 when there is nothing to
check (no key). The key is never printed, stored or sent anywhere but the API.
"""

from __future__ import annotations

import base64
import email.utils
import io
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
import httpx
from PIL import Image as PILImage
from PIL import ImageDraw

from app.core.config import Settings
from app.core.errors import InvalidParameters
from app.core.signing import Signer
from app.domain.model_params import IMAGE_COUNT_FIELDS, ModelParams, RunParams
from app.domain.parameters import NAMED_SIZE_PIXELS, GenerationParams
from app.domain.rules import (
    BUILTIN_RULES,
    ImageInput,
    ModelRules,
    SchemaUnreadable,
    builtin_rules,
    effective,
    has_builtin_record,
    image_input,
    offered_sizes,
)
from app.domain.runs import check_run, with_known_seed
from app.features.gallery import listing as galleries
from app.features.jobs import callbacks as webhooks
from app.features.jobs import references
from app.features.models.live_rules import ago, record_read
from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import DoctorReport, utcnow
from app.storage.intake import check_image
from app.upstream import (
    AuthenticationFailed,
    DownloadRefused,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    PermissionDenied,
    PixelDojoClient,
    RateLimited,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamJob,
    UpstreamState,
    UpstreamUnreachable,
)
from app.upstream.errors import redact

EXIT_OK = 0
EXIT_BLOCKED = 1
EXIT_NOTHING_TO_CHECK = 2

WIDTH = 80
# The clock may be this far off before retention figures and expiries mislead.
CLOCK_SKEW_WARN_SECONDS = 60.0
DOCTOR_PROMPT = "doctor check: a single red apple on a plain white table, soft daylight"
DOWNLOAD_MAX_BYTES = 64 * 1024 * 1024
# What doctor's test reference is called in the gallery (kept there to be served by a link).
DOCTOR_REFERENCE_NAME = "doctor test reference.png"

Status = Literal["ok", "note", "warn", "FAIL"]


@dataclass
class Check:
    name: str
    status: Status
    summary: str
    details: list[str] = field(default_factory=list)


@dataclass
class DoctorResult:
    base_url: str
    model: str
    spent: bool
    ran_at: datetime = field(default_factory=utcnow)
    checks: list[Check] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    rate_limit_headers: dict[str, str] = field(default_factory=dict)
    clock_skew_seconds: float | None = None
    run: dict[str, Any] | None = None
    # Set when something blocks the app: the one-line reason.
    blocked: str | None = None

    def add(self, name: str, status: Status, summary: str, details: Sequence[str] = ()) -> None:
        self.checks.append(Check(name, status, summary, list(details)))

    def block(self, name: str, summary: str, reason: str) -> None:
        self.add(name, "FAIL", summary)
        self.blocked = self.blocked or reason

    @property
    def exit_code(self) -> int:
        return EXIT_BLOCKED if self.blocked else EXIT_OK

    @property
    def headline(self) -> str:
        if self.blocked:
            return f"Blocked: {self.blocked}"
        parts = ["The app can work with this key"]
        if self.differences:
            count = len(self.differences)
            parts.append(
                f"{count} difference{'s' if count != 1 else ''} from the built-in rules "
                "(the live schema wins)"
            )
        if self.run and self.run.get("seconds") is not None:
            parts.append(f"the test job completed in {self.run['seconds']:.0f} s")
        return "; ".join(parts) + "."

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "ok": self.exit_code == EXIT_OK,
            "headline": self.headline,
            "blocked": self.blocked,
            "base_url": self.base_url,
            "model": self.model,
            "ran_at": self.ran_at.isoformat(),
            "spent": self.spent,
            "checks": [asdict(check) for check in self.checks],
            "differences": self.differences,
            "rate_limit_headers": self.rate_limit_headers,
            "clock_skew_seconds": self.clock_skew_seconds,
            "run": self.run,
        }

    def render(self, width: int = WIDTH) -> str:
        """The report as a table that reads well in a terminal `width` columns wide."""
        lines = [
            "Seedream Playground doctor",
            *textwrap.wrap(f"PixelDojo at {self.base_url}, model {self.model}", width),
            "One 1-image job was spent."
            if self.spent
            else "Nothing was spent (doctor --run spends one 1-image job).",
            "",
        ]
        name_width = max(len(check.name) for check in self.checks) + 2 if self.checks else 12
        indent = " " * (2 + 6 + name_width)
        text_width = max(20, width - len(indent))
        for check in self.checks:
            first, *rest = textwrap.wrap(check.summary, text_width) or [""]
            lines.append(f"  {check.status:<6}{check.name:<{name_width}}{first}")
            lines.extend(indent + line for line in rest)
            for detail in check.details:
                wrapped = textwrap.wrap(
                    detail, text_width, initial_indent="- ", subsequent_indent="  "
                )
                lines.extend(indent + line for line in wrapped)
        lines.append("")
        lines.extend(textwrap.wrap(self.headline, width))
        return "\n".join(lines) + "\n"


class _Observer:
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


def client_for(settings: Settings, observer: _Observer) -> PixelDojoClient:
    assert settings.pixeldojo_api_key is not None
    return PixelDojoClient(
        base_url=settings.pixeldojo_base_url,
        api_key=settings.pixeldojo_api_key,
        image_hosts=settings.image_hosts,
        timeout_seconds=settings.request_timeout_seconds,
        download_timeout_seconds=settings.download_timeout_seconds,
        rate_limit_per_minute=settings.upstream_rate_limit(),
        max_submit_wait_seconds=settings.max_submit_wait_seconds,
        on_response=observer,
    )


async def diagnose(
    settings: Settings,
    *,
    db: Database | None = None,
    run: bool = False,
    gallery: Gallery | None = None,
) -> DoctorResult:
    """Every check, in order; stops early only where nothing further could be learned."""
    result = DoctorResult(base_url=settings.pixeldojo_base_url, model=settings.model, spent=False)
    observer = _Observer()
    client = client_for(settings, observer)
    secret = settings.pixeldojo_api_key.get_secret_value() if settings.pixeldojo_api_key else ""
    try:
        live = await _check_reachable_key_model_schema(result, client, settings, db)
        await _check_callbacks(result, settings, db)
        if run and not result.blocked:
            await _test_job(result, client, settings, live, gallery)
    finally:
        await client.aclose()
    if observer.answers:
        _report_rate_limits(result, observer, settings)
        _report_clock(result, observer)
    # Whatever the upstream echoed, the key never leaves in a report.
    for check in result.checks:
        check.summary = redact(check.summary, secret)
        check.details = [redact(detail, secret) for detail in check.details]
    if result.blocked:
        result.blocked = redact(result.blocked, secret)
    return result


async def _check_reachable_key_model_schema(
    result: DoctorResult, client: PixelDojoClient, settings: Settings, db: Database | None
) -> ModelRules | None:
    model = settings.model
    started = time.monotonic()
    card: dict[str, Any] | None = None
    model_found: bool | None = None
    try:
        card = await client.model(model)
        model_found = True
    except UpstreamUnreachable as exc:
        result.block(
            "base URL",
            f"cannot be reached: {exc.message}",
            f"{settings.pixeldojo_base_url} cannot be reached ({exc.message}); "
            "check PIXELDOJO_BASE_URL and the network.",
        )
        return None
    except NotFound:
        model_found = False
    except (UpstreamHTTPError, MalformedResponse) as exc:
        answered = f"HTTP {exc.status_code}" if isinstance(exc, UpstreamHTTPError) else "answered"
        result.add("base URL", "ok", f"reachable ({answered})")
        result.add("model", "warn", f"{model}: its card could not be read ({exc.message})")
    if not any(check.name == "base URL" for check in result.checks):
        result.add("base URL", "ok", f"reachable: answered in {time.monotonic() - started:.2f} s")

    try:
        await client.check_key()
        result.add("API key", "ok", "accepted: a job that cannot exist answered 404")
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
    elif card is not None:
        result.add("model", "ok", _describe_card(model, card))

    live: ModelRules | None = None
    schema: dict[str, Any] | None = None
    error: str | None = None
    if model_found is not False:
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
                f"; it takes reference images in {found.name} "
                f"({found.min_items} to {found.max_items})"
                if found is not None
                else ""
            )
            result.add(
                "schema",
                "ok",
                f"read: {len(live.properties)} fields, the playground's form is made from "
                f"them{takes}",
            )
        else:
            result.differences = live.differences(builtin_rules(model))
            if result.differences:
                count = len(result.differences)
                result.add(
                    "schema",
                    "note",
                    f"read; {count} difference{'s' if count != 1 else ''} from the built-in "
                    "rules (the app follows the live schema):",
                    result.differences,
                )
            else:
                result.add("schema", "ok", "read; the same as the built-in rules")
    if db is not None and (schema is not None or error is not None):
        # What doctor read serves the app too: its rules in force start from it.
        await anyio.to_thread.run_sync(
            lambda: record_read(
                db,
                upstream=settings.upstream_name,
                model=model,
                schema=schema,
                card=card,
                error=error,
                model_found=model_found,
            )
        )
    return live


async def _check_callbacks(result: DoctorResult, settings: Settings, db: Database | None) -> None:
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


def _report_rate_limits(result: DoctorResult, observer: _Observer, settings: Settings) -> None:
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


def _report_clock(result: DoctorResult, observer: _Observer) -> None:
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


# --- doctor --run ----------------------------------------------------------------------


def cheapest_size(rules: ModelRules) -> str | None:
    """The named size with the fewest pixels among those offered (cost may follow size)."""
    named = [size for size in offered_sizes(rules) if size in NAMED_SIZE_PIXELS]
    if not named:
        offered = offered_sizes(rules)
        return offered[0] if offered else None
    return min(named, key=lambda size: NAMED_SIZE_PIXELS[size][0] * NAMED_SIZE_PIXELS[size][1])


async def _test_job(
    result: DoctorResult,
    client: PixelDojoClient,
    settings: Settings,
    live: ModelRules | None,
    gallery: Gallery | None,
) -> None:
    model = settings.model
    rules = effective(BUILTIN_RULES.get(model), live) if live is not None else builtin_rules(model)
    found = image_input(rules)
    params: RunParams
    if has_builtin_record(model) or live is None:
        size = cheapest_size(rules)
        params = GenerationParams(
            prompt=DOCTOR_PROMPT, num_images=1, **({"image_size": size} if size else {})
        )
    else:
        made = schema_test_run(rules, found)
        if isinstance(made, str):
            result.block("test job", f"not sent: {made}", f"no test job can be made ({made}).")
            return
        params = made
    params = with_known_seed(params, rules)
    try:
        check_run(params, rules, references=1 if found is not None else 0)
    except InvalidParameters as exc:  # the rules in force leave no run this form can make
        result.block(
            "test job", f"not sent: {exc.message}", f"no test job fits the rules ({exc.message})."
        )
        return
    body = params.upstream_body()
    run: dict[str, Any] = {"body": body, "status_words": [], "seconds": None}
    result.run = run
    started = time.monotonic()
    try:
        if found is None:
            submitted = await client.submit(model, body)
        else:
            with_reference = await _submit_with_reference(
                result, client, settings, body, found, gallery, run
            )
            if with_reference is None:
                return
            submitted = with_reference
    except UpstreamError as exc:
        sent = not (isinstance(exc, UpstreamUnreachable) and not exc.request_sent)
        result.spent = sent and not isinstance(exc, UpstreamHTTPError)
        result.block(
            "test job",
            f"not accepted: {exc.message}",
            f"PixelDojo did not take the test job ({exc.message}).",
        )
        return
    result.spent = True
    run.update(
        job_id=submitted.job_id,
        credit_cost=submitted.credit_cost,
        credits_remaining=submitted.credits_remaining,
    )
    run["status_words"].append(submitted.status or "(none)")
    result.add(
        "test job",
        "ok",
        f"accepted as {submitted.job_id} ({params.image_size or 'its default size'}, "
        f"1 image, seed {params.seed if params.seed is not None else 'none'})",
    )
    done = await _wait_for(client, submitted, settings, run, started)
    words = ", ".join(run["status_words"])
    if done is None:
        result.block(
            "completion",
            f"not finished after {settings.job_deadline_seconds:g} s (status words: {words})",
            f"the test job {submitted.job_id} did not finish in time.",
        )
        return
    if done.state is UpstreamState.FAILED:
        result.block(
            "completion",
            f"failed upstream: {done.error} (status words: {words})",
            f"the test job failed upstream ({done.error}).",
        )
        return
    run["seconds"] = round(time.monotonic() - started, 1)
    result.add("status words", "ok", words)
    result.add("completion", "ok", f"{run['seconds']:.1f} s after submitting")
    run["output_shape"] = done.output_shape
    result.add("output", "ok", f"{len(done.image_urls)} image URL(s) in {done.output_shape}")
    await _check_image_host(result, client, done, run)
    _report_retention(result, submitted, done, run)
    _report_cost(result, submitted, done)


async def _wait_for(
    client: PixelDojoClient,
    submitted: UpstreamJob,
    settings: Settings,
    run: dict[str, Any],
    started: float,
) -> UpstreamJob | None:
    delay = settings.poll_initial_seconds
    while time.monotonic() - started < settings.job_deadline_seconds:
        await anyio.sleep(delay)
        delay = min(settings.poll_max_seconds, delay * 1.5)
        try:
            job = await client.get_job(submitted.job_id)
        except RateLimited as exc:
            delay = max(delay, exc.retry_after or delay)
            continue
        except (MalformedResponse, UpstreamUnreachable, UpstreamHTTPError) as exc:
            if isinstance(exc, NotFound | AuthenticationFailed):
                raise
            word = "(unreadable answer)" if isinstance(exc, MalformedResponse) else "(error answer)"
            _seen(run, word)
            continue
        _seen(run, job.status or "(none)")
        if job.state is not UpstreamState.RUNNING:
            return job
    return None


def _seen(run: dict[str, Any], word: str) -> None:
    words: list[str] = run["status_words"]
    if not words or words[-1] != word:
        words.append(word)


async def _check_image_host(
    result: DoctorResult, client: PixelDojoClient, done: UpstreamJob, run: dict[str, Any]
) -> None:
    url = done.image_urls[0]
    host = (urlsplit(url).hostname or "").lower()
    run["image_host"] = host
    allowed = client.image_hosts.allows(host)
    run["image_host_allowed"] = allowed
    if not allowed:
        result.block(
            "image host", client.image_hosts.refusal(host), client.image_hosts.refusal(host) + "."
        )
        return
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "image"
        try:
            with path.open("wb") as stream:
                download = await client.download(url, stream, max_bytes=DOWNLOAD_MAX_BYTES)
            checked = await anyio.to_thread.run_sync(check_image, path)
        except DownloadRefused as exc:
            message = exc.message
            result.block(
                "image host", f"{host}: {message}", f"the test image was refused ({message})."
            )
            return
        except UpstreamError as exc:
            result.add(
                "image host", "warn", f"{host} is allowed, but the download failed: {exc.message}"
            )
            return
    run["image"] = {
        "content_type": checked.content_type,
        "width": checked.width,
        "height": checked.height,
        "bytes": download.byte_size,
    }
    result.add(
        "image host",
        "ok",
        f"{host} (allowed); the image downloads: {checked.content_type}, "
        f"{checked.width}×{checked.height}, {download.byte_size:,} bytes",
    )


def _report_retention(
    result: DoctorResult, submitted: UpstreamJob, done: UpstreamJob, run: dict[str, Any]
) -> None:
    expires = done.expires_at or submitted.expires_at
    if expires is None:
        result.add("retention", "note", "no expiresAt given; the app assumes 24 h")
        return
    hours = (expires - utcnow()).total_seconds() / 3600
    run["expires_at"] = expires.isoformat()
    run["retention_hours"] = round(hours, 2)
    shown = f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
    result.add(
        "retention", "ok", f"images expire in {shown} (expiresAt {expires:%Y-%m-%d %H:%M} UTC)"
    )


def _report_cost(result: DoctorResult, submitted: UpstreamJob, done: UpstreamJob) -> None:
    cost = done.credit_cost if done.credit_cost is not None else submitted.credit_cost
    left = submitted.credits_remaining
    if cost is None:
        result.add("credits", "note", "PixelDojo reported no creditCost")
        return
    text = f"creditCost {cost:g} for 1 image"
    text += f"; {left:g} credits left" if left is not None else "; no creditsRemaining reported"
    result.add("credits", "ok", text)


# --- doctor --run on a model that takes reference images ------------------------------------


@dataclass(frozen=True)
class Gallery:
    """Where doctor can keep its test reference, so the app can serve it by a signed link."""

    db: Database
    blobs: BlobStore
    secret: bytes
    scratch_dir: Path


def schema_test_run(rules: ModelRules, found: ImageInput | None) -> ModelParams | str:
    """The cheapest run a model known by its schema takes: the test prompt, one image, the
    smallest size, and its required fields at their defaults; or why there is none."""
    body: dict[str, Any] = {}
    size = cheapest_size(rules)
    for name, prop in rules.properties.items():
        types = prop.get("type") or ()
        if found is not None and name == found.name:
            continue
        if name == "prompt" and (not types or "string" in types):
            body[name] = DOCTOR_PROMPT
        elif name in IMAGE_COUNT_FIELDS and "integer" in types:
            low, _ = rules.bounds(name)
            body[name] = max(1, int(low or 1))
        elif name == "image_size" and size is not None:
            body[name] = size
        elif name in rules.required_fields:
            if "default" in prop:
                body[name] = prop["default"]
            elif prop.get("enum"):
                body[name] = prop["enum"][0]
            else:
                return f"the schema requires {name}, which doctor cannot fill in"
    return ModelParams(body)


def test_reference_png() -> bytes:
    """A small picture to send as the test reference: a red disc on a pale ground, 4:3."""
    image = PILImage.new("RGB", (800, 600), (236, 232, 222))
    ImageDraw.Draw(image).ellipse((250, 150, 550, 450), fill=(200, 30, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def _submit_with_reference(
    result: DoctorResult,
    client: PixelDojoClient,
    settings: Settings,
    body: dict[str, Any],
    found: ImageInput,
    gallery: Gallery | None,
    run: dict[str, Any],
) -> UpstreamJob | None:
    """Submit the test job with one reference, the way the app sends them (a signed link with
    PLAYGROUND_PUBLIC_URL, else a data: URI), and the other way if that is refused; report
    which PixelDojo accepts. A refused run costs nothing; at most one is accepted."""
    picture = test_reference_png()
    ways = ["signed link", "data: URI"] if settings.public_url else ["data: URI"]
    outcomes: dict[str, str] = {}
    run["references"] = outcomes
    for way in ways:
        if way == "data: URI":
            value = "data:image/png;base64," + base64.b64encode(picture).decode("ascii")
        else:
            link = await anyio.to_thread.run_sync(
                lambda: _reference_link(settings, gallery, picture, found)
            )
            if link is None:
                outcomes[way] = "not tried: doctor needs the app's data dir to keep the picture"
                continue
            value = link
        try:
            submitted = await client.submit(
                settings.model, {**body, found.name: found.body_value([value])}
            )
        except InvalidRequest as exc:
            outcomes[way] = f"refused: {exc.message}"
            continue
        outcomes[way] = "accepted"
        _report_references(result, settings, outcomes, way)
        return submitted
    _report_references(result, settings, outcomes, None)
    return None


def _reference_link(
    settings: Settings, gallery: Gallery | None, picture: bytes, found: ImageInput
) -> str | None:
    if gallery is None or settings.public_url is None:
        return None
    gallery.scratch_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=gallery.scratch_dir, suffix=".png") as stream:
        stream.write(picture)
        stream.flush()
        image_id = references.store_upload(
            gallery.db, gallery.blobs, Path(stream.name), name=DOCTOR_REFERENCE_NAME, user=None
        )
    entry = galleries.get_entry(gallery.db, image_id=image_id)
    assert entry is not None
    return references.signed_url(settings.public_url, Signer(gallery.secret), entry, found)


def _report_references(
    result: DoctorResult, settings: Settings, outcomes: dict[str, str], accepted: str | None
) -> None:
    details = [f"{way}: {outcome}" for way, outcome in outcomes.items()]
    if accepted == "signed link":
        result.add(
            "references",
            "ok",
            "PixelDojo takes reference images as signed links to this app "
            "(PLAYGROUND_PUBLIC_URL), the way the app sends them",
            details,
        )
    elif accepted == "data: URI" and settings.public_url:
        result.add(
            "references",
            "warn",
            "PixelDojo takes reference images as data: URIs but not as signed links to "
            f"{settings.public_url}: unset PLAYGROUND_PUBLIC_URL (or make it reachable) "
            "for edits to work",
            details,
        )
    elif accepted == "data: URI":
        result.add(
            "references",
            "ok",
            "PixelDojo takes reference images as data: URIs, the way the app sends them",
            details,
        )
    else:
        advice = (
            "is the app running, and reachable at PLAYGROUND_PUBLIC_URL?"
            if settings.public_url
            else "set PLAYGROUND_PUBLIC_URL so references go as signed links, then run "
            "doctor --run again"
        )
        result.block(
            "references",
            "PixelDojo refused the test reference every way tried",
            f"PixelDojo refused reference images ({'; '.join(details)}); {advice}.",
        )
        result.checks[-1].details = details


# --- Keeping the latest report ---------------------------------------------------------


def save_report(db: Database, *, upstream: str, result: DoctorResult) -> None:
    with db.write() as session:
        row = session.get(DoctorReport, upstream) or DoctorReport(
            upstream=upstream, ran_at=result.ran_at, exit_code=0, headline="", report={}
        )
        row.ran_at = result.ran_at
        row.exit_code = result.exit_code
        row.headline = result.headline
        row.report = result.to_json()
        session.add(row)


def latest_report(db: Database, *, upstream: str) -> DoctorReport | None:
    with db.read() as session:
        return session.get(DoctorReport, upstream)


class LastDoctorReport:
    """The latest doctor report for the app's upstream, as pages show it (looked up at most
    every few seconds: doctor runs in another process)."""

    CACHE_SECONDS = 5.0

    def __init__(self, db: Database, upstream: str) -> None:
        self._db = db
        self._upstream = upstream
        self._cached: tuple[float, DoctorReport | None] | None = None

    def latest(self) -> DoctorReport | None:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.CACHE_SECONDS:
            return self._cached[1]
        found = latest_report(self._db, upstream=self._upstream)
        self._cached = (now, found)
        return found

    @staticmethod
    def when(report: DoctorReport) -> str:
        return ago(report.ran_at, utcnow())

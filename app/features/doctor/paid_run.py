"""`doctor --run`: one 1-image job spent, and what PixelDojo did with it.

At the cheapest size the rules in force allow, it reports the status words, the time to
completion, the output's shape, the image host (and whether the app will download from
it), the retention `expiresAt` implies, and the cost against the credits left. For a
model that takes reference images it sends one, the way the app sends them, and says
which ways PixelDojo takes. Each step is told as it starts, for a person watching.
"""

from __future__ import annotations

import base64
import io
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
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
    builtin_rules,
    effective,
    has_builtin_record,
    image_input,
    offered_sizes,
)
from app.domain.runs import check_run, with_known_seed
from app.features.doctor.report import DoctorResult
from app.features.gallery import lookups
from app.features.jobs import references
from app.storage.blobs.protocol import BlobStore
from app.storage.db.engine import Database
from app.storage.db.tables import utcnow
from app.storage.intake import check_image
from app.upstream import (
    AuthenticationFailed,
    DownloadRefused,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    PixelDojoClient,
    RateLimited,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamJob,
    UpstreamState,
    UpstreamUnreachable,
)

DOCTOR_PROMPT = "doctor check: a single red apple on a plain white table, soft daylight"
DOWNLOAD_MAX_BYTES = 64 * 1024 * 1024
# What doctor's test reference is called in the gallery (kept there to be served by a link).
DOCTOR_REFERENCE_NAME = "doctor test reference.png"


def _quiet(_: str) -> None:
    return None


def cheapest_size(rules: ModelRules) -> str | None:
    """The named size with the fewest pixels among those offered (cost may follow size)."""
    named = [size for size in offered_sizes(rules) if size in NAMED_SIZE_PIXELS]
    if not named:
        offered = offered_sizes(rules)
        return offered[0] if offered else None
    return min(named, key=lambda size: NAMED_SIZE_PIXELS[size][0] * NAMED_SIZE_PIXELS[size][1])


async def spend_test_job(
    result: DoctorResult,
    client: PixelDojoClient,
    settings: Settings,
    live: ModelRules | None,
    gallery: Gallery | None,
    on_step: Callable[[str], None] = _quiet,
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
    on_step("Submitting the test job (1 image)")
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
    on_step(f"Waiting for the test job {submitted.job_id}: {submitted.status or 'submitted'}")
    done = await _wait_for(client, submitted, settings, run, started, on_step)
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
    on_step("Downloading the test image")
    await _check_image_host(result, client, done, run)
    _report_retention(result, submitted, done, run)
    _report_cost(result, submitted, done)


async def _wait_for(
    client: PixelDojoClient,
    submitted: UpstreamJob,
    settings: Settings,
    run: dict[str, Any],
    started: float,
    on_step: Callable[[str], None],
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
        if _seen(run, job.status or "(none)"):
            on_step(f"Waiting for the test job {submitted.job_id}: {job.status or '(none)'}")
        if job.state is not UpstreamState.RUNNING:
            return job
    return None


def _seen(run: dict[str, Any], word: str) -> bool:
    """Keep a status word, unless it is the one before; whether it is new."""
    words: list[str] = run["status_words"]
    if not words or words[-1] != word:
        words.append(word)
        return True
    return False


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
    entry = lookups.get_entry(gallery.db, image_id=image_id)
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

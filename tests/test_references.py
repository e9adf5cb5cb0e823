"""Reference images: a gallery image sent with an edit reaches PixelDojo as one decodable
image of the same shape and content; references a model cannot take are refused before any
upstream call; uploads are checked like downloads; signed links work until they expire and
never carry the key; remix, new seed, export and import keep the references.

It stays one module, long as it is: its sections all work on the one served gallery and
emulator (with a model that takes only small references) its module fixtures make."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image as PILImage
from sqlmodel import select

from app.core.loopback import LoopbackServer
from app.emulator.catalogue import SEEDREAM_EDIT
from app.features.archive.transfer import export_gallery, import_gallery
from app.storage.blobs.choose import open_blob_store
from app.storage.db.engine import Database
from app.storage.db.tables import Image, Job, JobStatus
from app.web.bodies import FORM_AND_JSON_LIMIT
from app.web.factory import create_app
from tests.support.apps import SAME_ORIGIN, RunningApp, make_settings, serve_app
from tests.support.databases import DatabaseChoice
from tests.support.emulators import TEST_KEY, RunningEmulator, serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.markup import Elements

HTMX = {"HX-Request": "true"}
# An edit model whose schema says how large a reference may be, and takes at most two.
SMALL_EDIT = "tiny-edit"
SMALL_EDIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "minLength": 1},
        "image_urls": {
            "type": "array",
            "items": {"type": "string", "format": "uri", "maxWidth": 640, "maxFileSize": 200_000},
            "minItems": 1,
            "maxItems": 2,
        },
    },
    "required": ["prompt", "image_urls"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[RunningEmulator]:
    extra = {SMALL_EDIT: {"card": {"name": "Tiny edit"}, "schema": SMALL_EDIT_SCHEMA}}
    with serve_emulator(extra_models=extra) as running:
        yield running


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, upstream: RunningEmulator
) -> Iterator[RunningApp]:
    data = tmp_path_factory.mktemp("references") / "data"
    with serve_app(make_settings(data, upstream)) as running:
        yield running


@pytest.fixture(scope="module")
def landscape(site: RunningApp) -> dict[str, Any]:
    """A 16:9 image in the team gallery, made by Seedream."""
    made = site.client.post(
        "/api/jobs",
        json={"prompt": "a green bottle on a white table", "image_size": "landscape_16_9"},
    )
    job = wait_for_job(site.client, made.json()["id"])
    image: dict[str, Any] = job["images"][0]
    return image


def _decoded(data: bytes) -> PILImage.Image:
    with PILImage.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert("L").resize((32, 18))


def _difference(first: PILImage.Image, second: PILImage.Image) -> float:
    """Mean absolute difference of two small greyscale images, 0 to 255."""
    pixels = zip(first.tobytes(), second.tobytes(), strict=True)
    return sum(abs(a - b) for a, b in pixels) / (first.width * first.height)


def _edit(site: RunningApp, references: list[int], **fields: Any) -> dict[str, Any]:
    body = {"model": SEEDREAM_EDIT, "prompt": "the same bottle on marble", **fields}
    answer = site.client.post("/api/jobs", json={**body, "reference_images": references})
    assert answer.status_code == 202, answer.text
    return wait_for_job(site.client, answer.json()["id"])


def test_an_edit_sends_the_gallery_image_as_one_decodable_image_of_its_shape_and_content(
    site: RunningApp, upstream: RunningEmulator, landscape: dict[str, Any]
) -> None:
    upstream.emulator.received_references.clear()
    job = _edit(site, [landscape["id"]])
    assert job["status"] == "completed"
    (received,) = upstream.emulator.received_references
    assert received.model == SEEDREAM_EDIT and received.sent_as == "data"
    assert received.width / received.height == pytest.approx(16 / 9, rel=0.01)
    stored = site.client.get(landscape["url"]).content
    sent = upstream.emulator.reference_bytes[received.sha256]
    assert _difference(_decoded(sent), _decoded(stored)) < 2, "the same picture"
    # It fits the default limits (4,096 px a side, 10 MB), so it went as stored.
    assert received.sha256 == hashlib.sha256(stored).hexdigest()

    # The job records its reference, and keeps a note, never the bytes, of what was sent.
    assert [ref["image_id"] for ref in job["reference_images"]] == [landscape["id"]]
    run = upstream.emulator.requests_to("run")[-1]
    assert run.path.endswith(f"/models/{SEEDREAM_EDIT}/run")
    assert run.body["image_urls"][0].startswith("data:image/png;base64,")
    page = Elements(site.client.get(f"/jobs/{job['id']}").text)
    links = [a for tag, a in page.elements if tag == "a" and a.get("href") == landscape["url"]]
    assert links, "the job page links the reference to its image"
    text = site.client.get(f"/jobs/{job['id']}").text
    assert "base64" not in text
    # Shown as the images they are, in the parameters too; the body sent reads as written.
    thumbnail = f'src="/api/images/{landscape["id"]}/thumbnail"'
    params = text[text.index('id="params-heading"') : text.index("Request body sent")]
    assert "<dt>image_urls</dt><dd>" in params and thumbnail in params
    assert "u003c" not in text and "&lt;gallery image" in text

    # The output visibly uses the reference: the emulator's edit is a tinted copy of it.
    output = site.client.get(job["images"][0]["url"]).content
    with PILImage.open(io.BytesIO(output)) as image:
        assert image.width / image.height == pytest.approx(16 / 9, rel=0.01)
    assert _difference(_decoded(output), _decoded(stored)) < 60


def test_references_are_scaled_down_to_the_schema_s_limits(
    site: RunningApp, upstream: RunningEmulator, landscape: dict[str, Any]
) -> None:
    upstream.emulator.received_references.clear()
    answer = site.client.post(
        "/api/jobs",
        json={"model": SMALL_EDIT, "prompt": "greener", "reference_images": [landscape["id"]]},
    )
    assert answer.status_code == 202, answer.text
    wait_for_job(site.client, answer.json()["id"])
    (received,) = upstream.emulator.received_references
    assert max(received.width, received.height) <= 640
    assert received.byte_size <= 200_000
    assert received.width / received.height == pytest.approx(16 / 9, rel=0.01)
    sent = upstream.emulator.reference_bytes[received.sha256]
    assert _difference(_decoded(sent), _decoded(site.client.get(landscape["url"]).content)) < 4


def _three_images(site: RunningApp, landscape: dict[str, Any]) -> list[int]:
    return [_upload(site, _png(40, 30, (shade, 90, 90)))["image_id"] for shade in (10, 20, 30)]


def _upload(site: RunningApp, picture: bytes, name: str | None = None) -> dict[str, Any]:
    answer = site.client.post(
        "/api/uploads",
        params={"name": name} if name else None,
        content=picture,
        headers={"Content-Type": "image/png"},
    )
    assert answer.status_code == 201, answer.text
    upload: dict[str, Any] = answer.json()
    return upload


REFUSED: list[tuple[str, dict[str, Any], Any, str]] = [
    (
        "a model without image inputs",
        {"prompt": "a cat"},
        lambda site, image: [image["id"]],
        "takes no reference images",
    ),
    (
        "more than its maxItems",
        {"model": SMALL_EDIT, "prompt": "x"},
        _three_images,
        "at most 2 reference images",
    ),
    (
        "an image that does not exist",
        {"model": SEEDREAM_EDIT, "prompt": "x"},
        lambda site, image: [image["id"] + 10_000],
        "there is no image",
    ),
    (
        "the same image twice",
        {"model": SEEDREAM_EDIT, "prompt": "x"},
        lambda site, image: [image["id"], image["id"]],
        "the same image twice",
    ),
]


@pytest.mark.parametrize(
    ("body", "references", "message"),
    [(b, r, m) for _, b, r, m in REFUSED],
    ids=[name for name, _, _, _ in REFUSED],
)
def test_references_that_cannot_go_are_refused_with_no_upstream_call(
    site: RunningApp,
    upstream: RunningEmulator,
    landscape: dict[str, Any],
    body: dict[str, Any],
    references: Any,
    message: str,
) -> None:
    image_ids = references(site, landscape)
    before = len(site.client.get("/api/jobs").json()["items"])
    # The model's schema is read (as picking it in the playground does), then not one call.
    site.client.get("/playground/form", params={"model": body.get("model", "seedream-4")})
    upstream.emulator.reset_log()
    answer = site.client.post("/api/jobs", json={**body, "reference_images": image_ids})
    assert answer.status_code == 422
    assert message in answer.json()["error"]["fields"]["reference_images"]
    assert upstream.emulator.requests == [], "0 upstream calls"
    assert len(site.client.get("/api/jobs").json()["items"]) == before, "no job recorded"


def test_the_form_refuses_references_for_a_model_without_image_inputs(
    site: RunningApp, upstream: RunningEmulator, landscape: dict[str, Any]
) -> None:
    upstream.emulator.reset_log()
    posted = {"prompt": "a cat", "image_size": "auto_2K", "num_images": "1"}
    answer = site.client.post(
        "/jobs", data={**posted, "reference_images": str(landscape["id"])}, headers=HTMX
    )
    assert answer.status_code == 422
    assert Elements(answer.text).by_id("reference_images-error") is not None
    assert upstream.emulator.requests == []


def test_an_edit_needs_its_reference(site: RunningApp, upstream: RunningEmulator) -> None:
    upstream.emulator.reset_log()
    answer = site.client.post("/api/jobs", json={"model": SEEDREAM_EDIT, "prompt": "x"})
    assert answer.status_code == 422
    assert "at least 1 reference image" in answer.json()["error"]["fields"]["reference_images"]
    assert upstream.emulator.requests == []


def test_remix_and_new_seed_keep_the_references(
    site: RunningApp, upstream: RunningEmulator, landscape: dict[str, Any]
) -> None:
    job = _edit(site, [landscape["id"]], seed=7)
    remix = Elements(site.client.get(f"/?remix={job['id']}").text)
    assert [a["value"] for a in remix.named("reference_images")] == [str(landscape["id"])]
    assert remix.by_id("model")["name"] == "model"
    chosen = [a for tag, a in remix.elements if tag == "option" and "selected" in a]
    assert any(option["value"] == SEEDREAM_EDIT for option in chosen)

    upstream.emulator.received_references.clear()
    again = site.client.post(f"/api/jobs/{job['id']}/new-seed")
    assert again.status_code == 202, again.text
    assert [ref["image_id"] for ref in again.json()["reference_images"]] == [landscape["id"]]
    assert again.json()["parameters"]["seed"] != 7
    assert len(upstream.emulator.received_references) == 1


# --- Uploads ---------------------------------------------------------------------------


def _png(width: int, height: int, colour: tuple[int, int, int] = (20, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_upload_is_kept_in_the_gallery_marked_as_one_and_sent_as_a_reference(
    site: RunningApp, upstream: RunningEmulator
) -> None:
    picture = _png(300, 200, (200, 40, 40))
    answer = site.client.post(
        "/api/uploads",
        params={"name": "bottle.png"},
        content=picture,
        headers={"Content-Type": "image/png"},
    )
    assert answer.status_code == 201, answer.text
    upload = answer.json()
    assert (upload["width"], upload["height"]) == (300, 200)
    assert site.client.get(upload["url"]).content == picture
    again = site.client.post("/api/uploads", content=picture, headers={"Content-Type": "image/png"})
    assert again.json()["image_id"] == upload["image_id"], "the same bytes: the same image"
    uploads = site.client.get("/api/gallery", params={"model": "upload"}).json()["items"]
    assert upload["image_id"] in [item["id"] for item in uploads]
    others = site.client.get("/api/gallery", params={"model": "seedream-4"}).json()["items"]
    assert upload["image_id"] not in [item["id"] for item in others]
    tile = Elements(site.client.get("/gallery", params={"model": "upload"}).text)
    assert any(tag == "span" and a.get("class") == "tile-model" for tag, a in tile.elements)

    upstream.emulator.received_references.clear()
    _edit(site, [upload["image_id"]])
    (received,) = upstream.emulator.received_references
    assert (received.width, received.height) == (300, 200)
    assert received.sha256 == hashlib.sha256(picture).hexdigest()
    # An upload is no model: nothing can be "run" as one.
    refused = site.client.post("/api/jobs", json={"model": "upload", "prompt": "x"})
    assert refused.status_code == 422 and "model" in refused.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"GIF89a" + bytes(100), 422, "cannot be kept"),
        (b"not an image at all", 422, "not a readable image"),
        (b"", 422, "empty"),
    ],
    ids=["a GIF", "not an image", "empty"],
)
def test_uploads_that_are_not_images_we_keep_are_refused(
    site: RunningApp, body: bytes, status: int, words: str
) -> None:
    before = site.client.get("/api/gallery", params={"model": "upload", "limit": 100}).json()
    answer = site.client.post("/api/uploads", content=body, headers={"Content-Type": "image/png"})
    assert answer.status_code == status
    assert words in answer.json()["error"]["message"]
    after = site.client.get("/api/gallery", params={"model": "upload", "limit": 100}).json()
    assert after == before


def test_uploads_have_a_body_limit_of_their_own_and_their_type_is_sniffed(
    site: RunningApp,
) -> None:
    # A photo-sized upload, past the 1 MiB every form and JSON body is held to.
    noise = PILImage.frombytes("RGB", (800, 800), os.urandom(800 * 800 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="JPEG", quality=100)
    photo = buffer.getvalue()
    assert len(photo) > FORM_AND_JSON_LIMIT
    # Labelled a PNG: what the bytes are decides, not the label.
    answer = site.client.post("/api/uploads", content=photo, headers={"Content-Type": "image/png"})
    assert answer.status_code == 201, answer.text
    served = site.client.get(answer.json()["url"])
    assert served.content == photo
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["content-security-policy"] == "sandbox; default-src 'none'"


def test_uploads_are_held_to_the_byte_and_pixel_caps(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator, download_max_bytes=50_000)
    # A PNG that says it is 5,000 × 5,000: over the pixel cap, refused before decoding it.
    huge = io.BytesIO()
    PILImage.new("1", (5000, 5000)).save(huge, format="PNG")
    with serve_app(settings) as app:
        too_large = app.client.post(
            "/api/uploads",
            content=_png(400, 400) + bytes(60_000),
            headers={"Content-Type": "image/png"},
        )
        # The upload's body limit is the download cap: past it, refused before it is read.
        assert too_large.status_code == 413
        assert "50,000" in too_large.json()["error"]["message"]
        too_many_pixels = app.client.post(
            "/api/uploads", content=huge.getvalue(), headers={"Content-Type": "image/png"}
        )
        assert too_many_pixels.status_code == 422
        assert "pixel cap" in too_many_pixels.json()["error"]["message"]
        assert app.client.get("/api/gallery").json()["items"] == []


# --- Signed links ------------------------------------------------------------------------


def test_with_a_public_url_references_go_as_signed_links_that_expire(
    tmp_path: Path, upstream: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", upstream)
    app = create_app(settings)
    server = LoopbackServer(app)
    # The app's own loopback address is its public one here: the emulator fetches from it.
    app.state.settings = settings.model_copy(update={"public_url": server.url})
    with server, httpx.Client(base_url=server.url, timeout=30, headers=SAME_ORIGIN) as client:
        uploaded = client.post(
            "/api/uploads",
            content=_png(160, 90, (90, 160, 40)),
            headers={"Content-Type": "image/png"},
        )
        image = {"id": uploaded.json()["image_id"], "url": uploaded.json()["url"]}
        upstream.emulator.received_references.clear()
        upstream.emulator.reset_log()
        edit = client.post(
            "/api/jobs",
            json={
                "model": SEEDREAM_EDIT,
                "prompt": "a pear, in bronze",
                "reference_images": [image["id"]],
            },
        )
        assert edit.status_code == 202, edit.text
        assert wait_for_job(client, edit.json()["id"])["status"] == "completed"
        (received,) = upstream.emulator.received_references
        assert received.sent_as == "url"
        assert received.sha256 == hashlib.sha256(client.get(image["url"]).content).hexdigest()
        (run,) = upstream.emulator.requests_to("run")
        (link,) = run.body["image_urls"]
        assert link.startswith(server.url + "/references/")
        assert TEST_KEY not in link and TEST_KEY not in repr(run.body)

        # Anyone may fetch the link (no session), only as signed, only until it expires.
        anonymous = httpx.Client(timeout=10)
        fetched = anonymous.get(link)
        assert fetched.status_code == 200
        # Served as an image only, like every image this app serves.
        assert fetched.headers["content-security-policy"] == "sandbox; default-src 'none'"
        assert fetched.headers["x-content-type-options"] == "nosniff"
        parts = urlsplit(link)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        forged = {**query, "signature": query["signature"][:-2] + "AA"}
        assert anonymous.get(base, params=forged).status_code == 404
        other_image = base.rsplit("/", 1)[0] + f"/{image['id'] + 1}"
        assert anonymous.get(other_image, params=query).status_code == 404
        expired = {**query, "expires": str(int(time.time()) - 1)}
        assert anonymous.get(base, params=expired).status_code == 404
        anonymous.close()


# --- Export and import -------------------------------------------------------------------


@pytest.mark.both_databases
def test_export_and_import_carry_the_references(
    tmp_path: Path, site: RunningApp, landscape: dict[str, Any], database: DatabaseChoice
) -> None:
    edit = _edit(site, [landscape["id"]])
    archive = tmp_path / "gallery.zip"
    source = site.settings
    db = Database.at_path(source.database_path)
    blobs = open_blob_store(source, database_url=db.url)
    export_gallery(db, blobs, archive)
    blobs.close()
    db.dispose()

    # Into a gallery that has a job of its own: everything imported is renumbered.
    target = make_settings(tmp_path / "target", None, database=database)
    db = Database.for_settings(target)
    db.migrate()
    with db.write() as session:
        mine = Job(
            model="seedream-4",
            prompt="mine",
            image_size="auto_2K",
            num_images=1,
            request_body={},
            status=JobStatus.COMPLETED,
        )
        session.add(mine)
        session.flush()
        assert mine.id is not None
        session.add(
            Image(
                job_id=mine.id,
                index=0,
                content_type="image/png",
                width=1,
                height=1,
                byte_size=1,
                sha256="0" * 64,
                source_url="test",
            )
        )
    blobs = open_blob_store(target, database_url=db.url)
    try:
        import_gallery(db, blobs, archive, scratch_dir=target.scratch_dir)
        with db.read() as session:
            imported = session.exec(
                select(Job).where(Job.upstream_job_id == edit["upstream_job_id"])
            ).one()
            assert imported.id != edit["id"], "renumbered"
            (reference_id,) = imported.reference_images or []
            reference = session.get(Image, reference_id)
        assert reference is not None
        assert reference.sha256 == landscape["sha256"], "the same image, under its new number"
        assert reference.id != landscape["id"]
    finally:
        blobs.close()
        db.dispose()

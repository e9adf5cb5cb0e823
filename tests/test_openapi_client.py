"""The OpenAPI description, as the tools a team has read it: it validates, it is public, it
names a bearer scheme and short operation ids, each operation lists only its own errors,
and a client generated from it by openapi-python-client runs a whole flow on its own."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from PIL import Image

from app.features.people import accounts
from app.storage.db.engine import Database
from tests.support.apps import make_settings, serve_app
from tests.support.emulators import RunningEmulator

# The generator reads only JSON and octet-stream answers as such: the image and zip types
# are read as bytes (its own documented setting).
GENERATOR_CONFIG = {
    "content_type_overrides": {
        kind: "application/octet-stream"
        for kind in ("image/png", "image/jpeg", "image/webp", "application/zip")
    }
}


def admin_token(data_dir: Path) -> str:
    db = Database.at_path(data_dir / "playground.db")
    db.migrate()
    admin = accounts.create_user(db, name="Ada", password="a long enough password", is_admin=True)
    assert admin.id is not None
    secret = accounts.create_api_token(db, user_id=admin.id, name="script").secret
    db.dispose()
    return secret


def operation(package: str, operation_id: str) -> ModuleType:
    """The generated module of one operation, whichever tag it was filed under."""
    root = Path(importlib.import_module(package).__file__ or "").parent / "api"
    (found,) = root.glob(f"*/{operation_id}.py")
    return importlib.import_module(f"{package}.api.{found.parent.name}.{operation_id}")


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_description_is_public_valid_and_names_bearer_tokens(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    admin_token(settings.data_dir)  # sign-in on
    with serve_app(settings) as running:
        answer = httpx.get(f"{running.url}/openapi.json")
        assert answer.status_code == 200, "readable without credentials"
        assert running.client.get("/api/jobs").status_code == 401, "the data is not"
    spec: dict[str, Any] = answer.json()
    validate(spec)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    paths = spec["paths"]
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert not [name for name in ids if "_api_" in name], "no path spelt into a name"
    assert paths["/api/jobs"]["post"]["operationId"] == "jobs_create"
    assert paths["/api/gallery"]["get"]["operationId"] == "gallery_search"
    assert paths["/api/jobs"]["get"]["security"] == [{"bearer": []}, {}]
    health = paths["/livez"]["get"]
    assert health["security"] == []
    assert not [status for status in health["responses"] if status >= "400"], "no errors"
    # Only the errors each can give, each a problem document.
    get_job = paths["/api/jobs/{job_id}"]["get"]["responses"]
    assert "404" in get_job and "415" not in get_job and "409" not in get_job
    assert not {"404", "422"} & paths["/api/presets"]["get"]["responses"].keys(), "no input"
    create = paths["/api/jobs"]["post"]["responses"]
    assert {"400", "415", "422", "402", "429"} <= create.keys()
    assert list(create["422"]["content"]) == ["application/problem+json"]
    # Bytes are declared as bytes, the upload's body too.
    image = paths["/api/images/{image_id}"]["get"]["responses"]["200"]["content"]
    assert image["image/png"]["schema"] == {"type": "string", "format": "binary"}
    upload = paths["/api/uploads"]["post"]["requestBody"]["content"]
    assert upload["application/octet-stream"]["schema"]["format"] == "binary"
    # One cursor type: the string next_cursor is what cursor takes.
    for path in ("/api/jobs", "/api/gallery/jobs", "/api/grids"):
        (cursor,) = [p for p in paths[path]["get"]["parameters"] if p["name"] == "cursor"]
        types = {option.get("type") for option in cursor["schema"].get("anyOf", [cursor["schema"]])}
        assert "integer" not in types, path
    # Enums named once, as components, wherever they are taken.
    schemas = spec["components"]["schemas"]
    sizes = schemas["ImageSize"]["enum"]
    assert "auto_2K" in sizes
    assert schemas["JobCreate"]["properties"]["image_size"]["$ref"].endswith("/ImageSize")
    for path in ("/api/gallery", "/api/gallery/jobs", "/api/zip"):
        parameters = {p["name"]: p["schema"] for p in paths[path]["get"]["parameters"]}
        assert parameters["status"]["anyOf"][0] == {"$ref": "#/components/schemas/JobStatus"}
        assert parameters["image_size"]["anyOf"][0] == {"$ref": "#/components/schemas/ImageSize"}
    job = spec["components"]["schemas"]["JobPublic"]["properties"]
    assert job["created_at"]["format"] == "date-time"
    assert "api_url" in job


@pytest.mark.timeout(300)
def test_a_generated_client_creates_waits_searches_downloads_and_uploads(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    token = admin_token(settings.data_dir)
    with serve_app(settings) as running:
        spec = tmp_path / "openapi.json"
        spec.write_bytes(httpx.get(f"{running.url}/openapi.json").content)
        config = tmp_path / "config.json"
        config.write_text(json.dumps(GENERATOR_CONFIG))
        generator = Path(sys.executable).with_name("openapi-python-client")
        output = tmp_path / "playground_client"
        made = subprocess.run(
            [
                str(generator),
                "generate",
                "--path",
                str(spec),
                "--config",
                str(config),
                "--meta",
                "none",
                "--output-path",
                str(output),
            ],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        assert "will not be generated" not in made.stdout + made.stderr, made.stdout
        sys.path.insert(0, str(tmp_path))
        try:
            run_flow("playground_client", running.url, token)
        finally:
            sys.path.remove(str(tmp_path))
            for name in [name for name in sys.modules if name.startswith("playground_client")]:
                del sys.modules[name]


def run_flow(package: str, base_url: str, token: str) -> None:
    client_module = importlib.import_module(f"{package}.client")
    models = importlib.import_module(f"{package}.models")
    types = importlib.import_module(f"{package}.types")
    client = client_module.AuthenticatedClient(base_url=base_url, token=token)

    create = operation(package, "jobs_create")
    body = models.JobCreate(prompt="a lighthouse at dusk")
    first = create.sync_detailed(client=client, body=body, idempotency_key="flow-1")
    assert first.status_code == 202, first.content
    job = first.parsed
    assert first.headers["location"] == job.api_url == f"/api/jobs/{job.id}"
    again = create.sync_detailed(client=client, body=body, idempotency_key="flow-1")
    assert again.parsed.id == job.id, "the same key, the same job"

    get_job = operation(package, "jobs_get")
    deadline = time.monotonic() + 60
    while not job.finished:
        assert time.monotonic() < deadline, "the job finished"
        time.sleep(0.1)
        job = get_job.sync(client=client, job_id=job.id)
    assert job.status.value == "completed", job.error

    found = operation(package, "gallery_search").sync(client=client, q="lighthouse")
    assert [item.job_id for item in found.items] == [job.id]
    image_id = found.items[0].id

    downloaded = operation(package, "images_download").sync_detailed(
        client=client, image_id=image_id
    )
    assert downloaded.status_code == 200
    assert downloaded.content.startswith(b"\x89PNG")
    image = operation(package, "images_get").sync_detailed(client=client, image_id=image_id)
    assert image.content.startswith(b"\x89PNG")

    upload = png_bytes()
    uploaded = operation(package, "uploads_create").sync(
        client=client, body=types.File(payload=io.BytesIO(upload)), name="reference.png"
    )
    assert uploaded.width == 320 and uploaded.height == 240
    stored = operation(package, "images_get").sync_detailed(
        client=client, image_id=uploaded.image_id
    )
    assert stored.content == upload

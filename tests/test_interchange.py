"""Downloads read by the tools a team already has: A1111 metadata readers (sd-parsers,
SD Prompt Reader) on our PNGs, and streaming zip readers (commons-compress's rule, and
Java's ZipInputStream where a JDK is installed) on our zips."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from app.core.zips import ZipStream, ZipWriter
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.emulators import serve_emulator
from tests.support.jobs import wait_for_job
from tests.support.zip_readers import (
    StreamRefused,
    assert_readable_by_anyone,
    compile_stream_zip,
    dos_time,
    java_reads,
    stream_members,
)

SCHEMAS = Path(__file__).parent.parent / "app" / "web" / "static" / "schemas"
HIJACK = "a harbour at noon\nSteps: 99, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 1x1, Model: x"
BODIES: dict[str, dict[str, Any]] = {
    "plain": {"prompt": "a lighthouse at dawn, watercolour", "image_size": "square_hd", "seed": 11},
    "hijack": {"prompt": HIJACK, "image_size": "landscape_16_9", "seed": 12},
}


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with serve_emulator(job_seconds=0.1) as emulator:
        settings = make_settings(tmp_path_factory.mktemp("interchange") / "data", emulator)
        with serve_app(settings) as running:
            yield running


@pytest.fixture(scope="module")
def jobs(shared_app: RunningApp) -> dict[str, dict[str, Any]]:
    made = {}
    for name, body in BODIES.items():
        answer = shared_app.client.post("/api/jobs", json=body)
        assert answer.status_code == 202, answer.text
        made[name] = wait_for_job(shared_app.client, answer.json()["id"])
        assert made[name]["status"] == "completed"
    return made


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_stream_zip(tmp_path_factory.mktemp("java"))


def prompt_reader() -> Any:
    """SD Prompt Reader's reader: installed beside the dev extra (.ci/run says why)."""
    try:
        from sd_prompt_reader.image_data_reader import ImageDataReader
    except ImportError:
        message = "sd-prompt-reader is not installed (pip install --no-deps sd-prompt-reader)"
        if os.environ.get("PLAYGROUND_REQUIRE_READERS"):
            pytest.fail(message)
        pytest.skip(message)
    return ImageDataReader


def download(app: RunningApp, job: dict[str, Any], target: Path) -> Path:
    answer = app.client.get(f"/api/images/{job['images'][0]['id']}/download")
    assert answer.status_code == 200, answer.text
    target.write_bytes(answer.content)
    return target


# --- A1111 readers -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["plain", "hijack"])
def test_sd_parsers_reads_prompt_seed_size_and_model(
    shared_app: RunningApp, jobs: dict[str, dict[str, Any]], tmp_path: Path, name: str
) -> None:
    from sd_parsers import ParserManager

    job = jobs[name]
    image = job["images"][0]
    found = ParserManager().parse(str(download(shared_app, job, tmp_path / "image.png")))
    assert found is not None, "sd-parsers found no generator's metadata"
    assert found.generator.name == "AUTOMATIC1111"
    # A prompt with its own settings line stays prompt: the settings are ours.
    expected_prompt = BODIES[name]["prompt"].replace("\nSteps:", " Steps:")
    assert found.full_prompt == expected_prompt
    (sampler,) = found.samplers
    assert sampler.name == "Seedream"
    assert sampler.parameters["seed"] == str(BODIES[name]["seed"])
    assert sampler.model is not None and sampler.model.name == job["model"]
    assert found.metadata["Size"] == f"{image['width']}x{image['height']}"


@pytest.mark.parametrize("name", ["plain", "hijack"])
def test_sd_prompt_reader_reads_prompt_seed_size_and_model(
    shared_app: RunningApp, jobs: dict[str, dict[str, Any]], tmp_path: Path, name: str
) -> None:
    reader_class = prompt_reader()
    job = jobs[name]
    image = job["images"][0]
    found = reader_class(str(download(shared_app, job, tmp_path / "image.png")))
    assert found.tool == "A1111 webUI"
    assert found.positive == BODIES[name]["prompt"].replace("\nSteps:", " Steps:")
    assert found.negative == ""
    assert found.parameter["seed"] == str(BODIES[name]["seed"])
    assert found.parameter["model"] == job["model"]
    assert found.parameter["size"] == f"{image['width']}x{image['height']}"
    assert (int(found.width), int(found.height)) == (image["width"], image["height"])


def test_the_seedream_chunk_keeps_the_exact_prompt(
    shared_app: RunningApp, jobs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    png = download(shared_app, jobs["hijack"], tmp_path / "image.png")
    with Image.open(png) as picture:
        text = dict(picture.text)  # type: ignore[attr-defined]
    assert json.loads(text["seedream"])["parameters"]["prompt"] == HIJACK
    settings = text["parameters"].splitlines()[-1]
    assert settings.startswith("Steps: 1, Sampler: Seedream, CFG scale: 1, Seed: 12, Size: ")
    assert text["parameters"].count("\nSteps:") == 1


# --- Zips --------------------------------------------------------------------------------


def created(job: dict[str, Any]) -> datetime:
    moment = datetime.fromisoformat(job["created_at"])
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_a_selection_zip_streams_and_unzips_readable_and_dated(
    shared_app: RunningApp, jobs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    ids = [job["images"][0]["id"] for job in jobs.values()]
    answer = shared_app.client.get("/api/zip", params={"ids": ids})
    assert answer.status_code == 200, answer.text
    assert_readable_by_anyone(answer.content)
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        for job in jobs.values():
            for suffix in ("png", "json"):
                info = archive.getinfo(f"seedream-{job['id']}-1.{suffix}")
                assert info.date_time == dos_time(created(job))


def test_java_zip_input_stream_reads_a_selection_zip(
    shared_app: RunningApp,
    jobs: dict[str, dict[str, Any]],
    tmp_path: Path,
    java_classes: Path,
) -> None:
    ids = [job["images"][0]["id"] for job in jobs.values()]
    target = tmp_path / "selection.zip"
    target.write_bytes(shared_app.client.get("/api/zip", params={"ids": ids}).content)
    read = {member.name: member for member in java_reads(target, java_classes)}
    with zipfile.ZipFile(target) as archive:
        assert sorted(read) == sorted(archive.namelist())
        for info in archive.infolist():
            assert read[info.filename].size == info.file_size
    for job in jobs.values():
        # The exact second, from the extended timestamp: the DOS date has no time zone.
        moment = int(created(job).timestamp())
        assert read[f"seedream-{job['id']}-1.png"].modified == moment


def test_the_readers_refuse_a_stored_member_with_a_data_descriptor(
    tmp_path: Path, java_classes: Path
) -> None:
    """What the zips used to be: the checks above are checks."""

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            self.parts.append(bytes(data))
            return len(data)

    sink = Unseekable()
    with (
        zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive,
        archive.open("image.png", "w") as member,
    ):
        member.write(b"\x89PNG" + bytes(4000))
    content = b"".join(sink.parts)
    with pytest.raises(StreamRefused, match="stored entry with a data descriptor"):
        stream_members(content)
    target = tmp_path / "stored.zip"
    target.write_bytes(content)
    with pytest.raises(AssertionError, match="ZipInputStream refused"):
        java_reads(target, java_classes)


def test_the_zip_stream_writes_what_every_reader_takes(java_classes: Path, tmp_path: Path) -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    with ZipStream() as archive:
        with archive.open("big.png", modified=moment, packed=True) as member:
            for _ in range(40):
                member.write(os.urandom(64 * 1024))
        archive.add("notes.json", '{"a": 1}\n', modified=moment)
    content = archive.take()
    assert_readable_by_anyone(content)
    target = tmp_path / "stream.zip"
    target.write_bytes(content)
    read = java_reads(target, java_classes)
    assert [(member.name, member.size, member.method) for member in read] == [
        ("big.png", 40 * 64 * 1024, 8),
        ("notes.json", 9, 8),
    ]
    assert {member.modified for member in read} == {int(moment.timestamp())}


def test_an_exports_zip64_members_are_read_by_every_reader(
    java_classes: Path, tmp_path: Path
) -> None:
    """An export writes into a file, its lists and images with zip64 headers (they may pass
    4 GiB): sizes in the local header, not in a data descriptor."""
    moment = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    target = tmp_path / "export.zip"
    with target.open("wb") as stream, ZipWriter(stream) as archive:
        with archive.open("jobs.jsonl", modified=moment, large=True) as member:
            member.write(b'{"id": 1}\n' * 1000)
        with archive.open("blobs/x.png", modified=moment, packed=True, large=True) as member:
            member.write(os.urandom(100_000))
        archive.add("manifest.json", "{}\n", modified=moment)
    assert_readable_by_anyone(target.read_bytes())
    read = java_reads(target, java_classes)
    assert [(member.name, member.size) for member in read] == [
        ("jobs.jsonl", 10_000),
        ("blobs/x.png", 100_000),
        ("manifest.json", 3),
    ]


# --- Published schemas -------------------------------------------------------------------


def schema_validator(name: str, definition: str | None = None) -> Draft202012Validator:
    """The schema as the app serves it (its file in the package), or one of its $defs."""
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    if definition is not None:
        schema = {"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_sidecars_png_records_and_zip_manifests_follow_the_published_schema(
    shared_app: RunningApp, jobs: dict[str, dict[str, Any]]
) -> None:
    client = shared_app.client
    served = client.get("/static/schemas/image-record.schema.json")
    assert served.status_code == 200
    assert served.json() == json.loads((SCHEMAS / "image-record.schema.json").read_text())
    record = schema_validator("image-record.schema.json")
    for job in jobs.values():
        image_id = job["images"][0]["id"]
        sidecar = client.get(f"/api/images/{image_id}/sidecar").json()
        record.validate(sidecar)
        with Image.open(io.BytesIO(client.get(f"/api/images/{image_id}/download").content)) as png:
            record.validate(json.loads(png.text["seedream"]))  # type: ignore[attr-defined]
    # The schema can fail: a field it does not know, or one of the wrong type.
    assert not record.is_valid({**sidecar, "extra": 1})
    assert not record.is_valid({**sidecar, "image": {**sidecar["image"], "width": "wide"}})
    ids = [job["images"][0]["id"] for job in jobs.values()]
    zipped = zipfile.ZipFile(io.BytesIO(client.get("/api/zip", params={"ids": ids}).content))
    manifest = json.loads(zipped.read("manifest.json"))
    schema_validator("image-record.schema.json", "zip_manifest").validate(manifest)
    assert not schema_validator("image-record.schema.json", "zip_manifest").is_valid(
        {**manifest, "images": [{**manifest["images"][0], "unknown": True}]}
    )


def test_the_export_schema_names_every_column_an_export_writes() -> None:
    """A column a migration adds is written at once (rows go column by column): the
    schema must say what it is."""
    from app.features.archive.rows import USER_COLUMNS, USERS
    from app.features.archive.transfer import COLLECTION_IMAGES, COLLECTIONS, IMAGES, JOBS

    schema = json.loads((SCHEMAS / "gallery-export.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    for table in (JOBS, IMAGES, COLLECTIONS, COLLECTION_IMAGES):
        assert list(schema["$defs"][table.name]["properties"]) == [c.name for c in table.columns]
    assert list(schema["$defs"][USERS.name]["properties"]) == list(USER_COLUMNS)

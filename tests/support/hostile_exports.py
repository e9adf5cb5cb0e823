"""An honest export of a small gallery and the ways to make it hostile, for the tests of
importing one: `export_and_target` (a fixture, offered to every test through
tests/conftest.py) makes the export and a gallery to import it into; `HOSTILE` names each
hostility with the one line that refuses it."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from app.features.archive import transfer as archive
from app.storage.blobs.choose import open_blob_store
from app.storage.blobs.protocol import BlobStore
from app.storage.blobs.sqlite import SQLiteBlobStore
from app.storage.db.blob_tables import BLOBS
from app.storage.db.engine import Database
from tests.support.apps import in_process, make_settings
from tests.support.databases import SQLITE, DatabaseChoice
from tests.support.emulators import serve_emulator
from tests.support.hostile_zip import RawZip, huge_png
from tests.support.jobs import wait_for_job


@dataclass(frozen=True)
class Export:
    members: dict[str, bytes]

    def rows(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.members[name].splitlines() if line.strip()]

    def first(self, prefix: str) -> str:
        return next(name for name in self.members if name.startswith(prefix))


@pytest.fixture(scope="module")
def export_and_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Export, Path]]:
    """An honest export of a small gallery, and a gallery (one job of its own) to import into."""
    root = tmp_path_factory.mktemp("galleries")
    with serve_emulator() as emulator:
        for name, prompts in (("source", ["a lighthouse", "two foxes"]), ("target", ["mine"])):
            with in_process(make_settings(root / name, emulator)) as client:
                for prompt in prompts:
                    job = client.post("/api/jobs", json={"prompt": prompt, "num_images": 2})
                    wait_for_job(client, job.json()["id"])
    # The worker's own scratch folder, left behind: the imports below must leave nothing.
    shutil.rmtree(root / "target" / "tmp", ignore_errors=True)
    source = make_settings(root / "source", None)
    db = Database.at_path(source.database_path)
    blobs = SQLiteBlobStore(source.image_store_path)
    archive.export_gallery(db, blobs, root / "honest.zip")
    blobs.close()
    db.dispose()
    with zipfile.ZipFile(root / "honest.zip") as honest:
        members = {name: honest.read(name) for name in honest.namelist()}
    yield Export(members), root / "target"


def rebuilt(export: Export, change: Callable[[dict[str, bytes], RawZip], None]) -> RawZip:
    """The export written again member by member, after `change` has had its way."""
    members = dict(export.members)
    extra = RawZip()
    change(members, extra)
    out = RawZip()
    for name, data in members.items():
        out.add(name, data)
    out.members.extend(extra.members)
    return out


def swap_blob(content: bytes) -> Callable[[dict[str, bytes], RawZip], None]:
    """Replace an image's bytes with `content`, its rows agreeing (labelled image/png)."""

    def change(members: dict[str, bytes], extra: RawZip) -> None:
        old = next(name for name in members if name.startswith("blobs/"))
        new_sha = hashlib.sha256(content).hexdigest()
        members[f"blobs/{new_sha}.png"] = content
        del members[old]
        members["images.jsonl"] = members["images.jsonl"].replace(
            old.removeprefix("blobs/").partition(".")[0].encode(), new_sha.encode()
        )
        rows = [json.loads(line) for line in members["images.jsonl"].splitlines()]
        for row in rows:
            if row["sha256"] == new_sha:
                row["byte_size"] = len(content)
        members["images.jsonl"] = b"".join(json.dumps(row).encode() + b"\n" for row in rows)

    return change


def swap_thumbnail(content: bytes) -> Callable[[dict[str, bytes], RawZip], None]:
    def change(members: dict[str, bytes], extra: RawZip) -> None:
        name = next(name for name in members if name.startswith("thumbnails/"))
        members[name] = content

    return change


HTML = b"<!doctype html><html><body><script>fetch('/api/me')</script></body></html>\n"
JAVASCRIPT = b"fetch('/api/tokens',{method:'POST',body:'{\"name\":\"x\"}'}).then(r=>r.json())\n"
ONE_GIB = 1024


def zip_bomb_in_rows(members: dict[str, bytes], extra: RawZip) -> None:
    """jobs.jsonl as 1 GiB of zeros in a thousandth of that: one endless line."""
    del members["jobs.jsonl"]
    extra.add_zeros("jobs.jsonl", ONE_GIB)


def zip_bomb_with_a_lying_header(members: dict[str, bytes], extra: RawZip) -> None:
    """An image whose headers say 1,000 bytes, whose data inflates to 64 MiB."""
    for name in [name for name in members if name.startswith("blobs/")][:1]:
        del members[name]
        extra.add_zeros(name, 64, declared_size=1000)


def one_gib_member(members: dict[str, bytes], extra: RawZip) -> None:
    extra.add_zeros("blobs/" + "ab" * 32, ONE_GIB)


def traversal_names(members: dict[str, bytes], extra: RawZip) -> None:
    for name in ("../../outside.txt", "/tmp/absolute.txt", "blobs/../../../outside.png"):
        extra.add(name, b"written where it should not be")


def huge_thumbnail(members: dict[str, bytes], extra: RawZip) -> None:
    swap_thumbnail(huge_png(50_000, 50_000))(members, extra)


def _a_png(members: dict[str, bytes]) -> str | None:
    """An image named as a PNG (left alone if another hostility has replaced them all)."""
    return next((name for name in members if re.fullmatch(r"blobs/\w+\.png", name)), None)


def misnamed_image(members: dict[str, bytes], extra: RawZip) -> None:
    """A PNG under a name that says JPEG."""
    if name := _a_png(members):
        members[name.removesuffix(".png") + ".jpg"] = members.pop(name)


def image_under_two_names(members: dict[str, bytes], extra: RawZip) -> None:
    """The same image by digest alone (as version 2 named it) and with its extension."""
    if name := _a_png(members):
        members[name.removesuffix(".png")] = members[name]


def missing_member(members: dict[str, bytes], extra: RawZip) -> None:
    del members[next(name for name in members if name.startswith("blobs/"))]


def bad_json(members: dict[str, bytes], extra: RawZip) -> None:
    members["collections.jsonl"] = b'{"id": 1, "name": "unfinished\n'


def edit_rows(
    member: str, change: Callable[[list[dict[str, Any]]], None]
) -> Callable[[dict[str, bytes], RawZip], None]:
    """Change a member's rows (left alone if another hostility has replaced or broken it,
    when every hostility is at once)."""

    def edit(members: dict[str, bytes], extra: RawZip) -> None:
        try:
            rows = [json.loads(line) for line in members[member].splitlines()]
        except (KeyError, ValueError):
            return
        change(rows)
        members[member] = b"".join(json.dumps(row).encode() + b"\n" for row in rows)

    return edit


def _references_that_are_not_image_ids(rows: list[dict[str, Any]]) -> None:
    rows[0]["reference_images"] = [{"id": 1}, "../../etc/passwd"]


references_that_are_not_image_ids = edit_rows("jobs.jsonl", _references_that_are_not_image_ids)

# The security report's archive: 783 KB holding 772 MiB of newlines.
BLANK_MIB = 772


def blank_lines(members: dict[str, bytes], extra: RawZip) -> None:
    """jobs.jsonl as nothing but newlines, deflated a thousandfold."""
    members.pop("jobs.jsonl", None)
    extra.add_repeated("jobs.jsonl", b"\n", BLANK_MIB)


def _a_row_repeated(rows: list[dict[str, Any]]) -> None:
    rows.insert(1, dict(rows[0]))


def _a_long_prompt(rows: list[dict[str, Any]]) -> None:
    rows[0]["prompt"] = "x" * 900_000


def _a_trillion_images(rows: list[dict[str, Any]]) -> None:
    rows[0]["num_images"] = 10**12


def _a_name_users_add_refuses(rows: list[dict[str, Any]]) -> None:
    name = "<img src=x onerror=alert(1)>"
    rows.append({"id": 1, "name": name, "name_key": name, "created_at": "2025-01-01T00:00:00Z"})


def _a_blank_collection_name(rows: list[dict[str, Any]]) -> None:
    rows.append({"id": 1, "name": "   ", "description": ""})


HOSTILE = {
    "html labelled as an image": (
        swap_blob(HTML),
        r"blobs/[0-9a-f]{64}\.png: the file is not a readable image",
    ),
    "javascript labelled as an image": (
        swap_blob(JAVASCRIPT),
        r"blobs/[0-9a-f]{64}\.png: the file is not a readable image",
    ),
    "javascript labelled as a thumbnail": (
        swap_thumbnail(JAVASCRIPT),
        r"thumbnails/[0-9a-f]{64}\.webp: the file is not a readable image",
    ),
    "zip bomb in the rows": (
        zip_bomb_in_rows,
        r"jobs\.jsonl line 1: over 1,048,576 bytes|more than the [\d,]+ an import may write",
    ),
    "zip bomb with a lying header": (
        zip_bomb_with_a_lying_header,
        r"blobs/[0-9a-f]{64}\.png: cannot be read \(Bad CRC-32",
    ),
    "a 1 GB member": (
        one_gib_member,
        r"'blobs/(ab){32}' is 1,073,741,824 bytes uncompressed, over the 67,108,864-byte limit",
    ),
    "traversal names": (
        traversal_names,
        r"the archive holds '\.\./\.\./outside\.txt', which an export never does",
    ),
    "a 50,000 × 50,000 thumbnail": (
        huge_thumbnail,
        r"thumbnails/[0-9a-f]{64}\.webp: the image is (over|50000×50000 pixels, over) "
        r"the [\d,]+-pixel cap",
    ),
    "an image named as another type": (
        misnamed_image,
        r"blobs/[0-9a-f]{64}\.jpg: it is image/png, not what its name says",
    ),
    "an image under two names": (
        image_under_two_names,
        r"the archive holds 'blobs/[0-9a-f]{64}(\.png)?' and 'blobs/[0-9a-f]{64}(\.png)?': "
        r"the same bytes",
    ),
    "a missing member": (missing_member, r"images\.jsonl line \d+: the archive has no blobs/"),
    "bad JSON": (bad_json, r"collections\.jsonl line 1: not valid JSON"),
    "references that are not image ids": (
        references_that_are_not_image_ids,
        r"jobs\.jsonl line 1: jobs\.reference_images is not a list of at most 50 image ids",
    ),
    "blank lines": (blank_lines, r"jobs\.jsonl line 1: a blank line, which an export never"),
    "a row repeated": (
        edit_rows("jobs.jsonl", _a_row_repeated),
        r"jobs\.jsonl line 2: id 1 does not follow 1 \(an export writes each row once, in id",
    ),
    "a 900,000-character prompt": (
        edit_rows("jobs.jsonl", _a_long_prompt),
        r"jobs\.jsonl line 1: jobs\.prompt must be at most 4,000 characters \(this is 900,000\)",
    ),
    "a trillion images to a job": (
        edit_rows("jobs.jsonl", _a_trillion_images),
        r"jobs\.jsonl line 1: jobs\.num_images must be between 1 and 6",
    ),
    "a name users add refuses": (
        edit_rows("users.jsonl", _a_name_users_add_refuses),
        r"users\.jsonl line 1: users\.name '<img src=x onerror=alert\(1\)>' is not one "
        r"`users add` takes \(use 1–64 letters",
    ),
    "a blank collection name": (
        edit_rows("collections.jsonl", _a_blank_collection_name),
        r"collections\.jsonl line 1: collections\.name must not be empty",
    ),
}


def gallery_state(data_dir: Path, database: DatabaseChoice = SQLITE) -> dict[str, Any]:
    """Every row of every table, every stored image, and which files the data dir holds."""
    settings = make_settings(data_dir, None, database=database)
    db = Database.for_settings(settings)
    try:
        with db.read() as session:
            connection = session.connection()
            rows = {
                table.name: [
                    dict(row)
                    for row in connection.execute(
                        sa.select(table).order_by(*table.primary_key.columns)
                    ).mappings()
                ]
                for table in SQLModel.metadata.sorted_tables
            }
        blobs = open_blob_store(settings, database_url=db.url)
        try:
            stored = {
                sha: hashlib.sha256(b"".join(blobs.iter_chunks(sha))).hexdigest()
                for sha in stored_digests(db, blobs)
            }
        finally:
            blobs.close()
    finally:
        db.dispose()
    files = sorted(
        str(path.relative_to(data_dir))
        for path in data_dir.rglob("*")
        if path.is_file() and not path.name.endswith(("-wal", "-shm", "-journal"))
    )
    return {"rows": rows, "blobs": stored, "files": files}


def stored_digests(db: Database, blobs: BlobStore) -> set[str]:
    if isinstance(blobs, SQLiteBlobStore):
        return blobs.digests()
    with db.read() as session:
        return set(session.connection().execute(sa.select(BLOBS.c.sha256)).scalars())


def files_under(root: Path, *, leaving_out: Path) -> list[str]:
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path != leaving_out and leaving_out not in path.parents
    )

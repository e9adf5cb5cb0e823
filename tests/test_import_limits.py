"""An import reads no more of an archive than it must: too many members, a member of blank
lines, or a list of rows past its cap are refused before the rest is read, and the limits
refuse only what the app itself would (tests/support/hostile_exports.py makes the exports)."""

from __future__ import annotations

import re
import shutil
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from app.cli import main as cli
from app.features.archive import checks as archive_checks
from app.features.archive.members import ArchiveError
from app.features.archive.rows import ROW_MEMBERS, KeyOrder, checked_row
from tests.support.hostile_exports import BLANK_MIB, Export, blank_lines, rebuilt
from tests.support.hostile_zip import RawZip


def test_an_archive_with_too_many_members_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = RawZip()
    for number in range(50):
        many.add(f"thumbnails/{number + 1}", b"")
    path = tmp_path / "many.zip"
    many.write(path)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit, match=r"has 50 members, more than the 10 an import reads"):
        cli.main(["import", str(path), "--max-members", "10"])


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many bytes the import takes out of each member (after inflating), by name."""
    counted: Counter[str] = Counter()
    read = zipfile.ZipExtFile.read

    def counting(self: zipfile.ZipExtFile, n: int | None = -1) -> bytes:
        data = read(self, n)
        counted[self.name] += len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting)
    return counted


def test_the_blank_line_archive_is_refused_within_its_first_line(
    export_and_target: tuple[Export, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reads: Counter[str],
) -> None:
    """783 KB of deflated newlines once kept an import busy for a minute: now the first blank
    line refuses it, before more than one line's cap of it has been read."""
    export, template = export_and_target
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)
    hostile = tmp_path / "blank.zip"
    rebuilt(export, blank_lines).write(hostile)
    with zipfile.ZipFile(hostile) as archive:
        member = archive.getinfo("jobs.jsonl")
    assert member.compress_size <= 783 * 1024 and member.file_size == BLANK_MIB * 1024 * 1024

    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    with pytest.raises(SystemExit, match=r"jobs\.jsonl line 1: a blank line"):
        cli.main(["import", str(hostile)])
    assert 0 < reads["jobs.jsonl"] <= archive_checks.ImportLimits().max_row_bytes


def test_a_list_of_rows_over_its_cap_is_refused_before_any_of_it_is_read(
    export_and_target: tuple[Export, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reads: Counter[str],
) -> None:
    """By its header, before a byte of it is inflated: over --max-rows-bytes, and over the
    default cap (a header saying 3 GiB, in an archive of a few kilobytes)."""
    export, template = export_and_target
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    honest = tmp_path / "honest.zip"
    rebuilt(export, lambda members, extra: None).write(honest)
    size = len(export.members["jobs.jsonl"])
    with pytest.raises(SystemExit) as refused:
        cli.main(["import", str(honest), "--max-rows-bytes", str(size - 1)])
    assert str(refused.value) == (
        f"Import failed, nothing was changed: 'jobs.jsonl' is {size:,} bytes uncompressed, "
        f"over the {size - 1:,}-byte limit for it (--max-rows-bytes raises it)"
    )

    def three_gib(members: dict[str, bytes], extra: RawZip) -> None:
        del members["images.jsonl"]
        extra.add_zeros("images.jsonl", 1, declared_size=3 * 1024**3)

    huge = tmp_path / "huge.zip"
    rebuilt(export, three_gib).write(huge)
    with pytest.raises(
        SystemExit,
        match=r"'images\.jsonl' is 3,221,225,472 bytes uncompressed, "
        r"over the 2,147,483,648-byte limit for it \(--max-rows-bytes raises",
    ):
        cli.main(["import", str(huge)])
    assert reads["jobs.jsonl"] == reads["images.jsonl"] == 0
    assert cli.main(["import", str(honest), "--max-rows-bytes", str(size)]) == 0


def test_the_limits_refuse_only_what_the_app_itself_would(
    export_and_target: tuple[Export, Path],
) -> None:
    """Taken: a prompt of 4,000 characters (non-Latin ones too) and six images, another
    model's job with no prompt, an upload with its own size, a name with every kind of
    character `users add` allows, a board named as boards are. Refused, naming the field:
    what the app would trim or refuse itself, and a row not after the one before it."""
    export, _ = export_and_target
    job = export.rows("jobs.jsonl")[0]
    made = "2025-01-01T00:00:00+00:00"

    def check(member: str, *records: dict[str, Any]) -> None:
        order = KeyOrder(ROW_MEMBERS[member])
        for line, record in enumerate(records, 1):
            checked_row(member, record, order, where=f"{member} line {line}")

    check(
        "jobs.jsonl",
        {**job, "id": 1, "prompt": "灯" * 4000, "num_images": 6},
        {**job, "id": 2, "model": "some-upscaler", "prompt": "", "upstream_job_id": None},
        {**job, "id": 3, "model": "upload", "prompt": "pasted image", "custom_width": 40},
    )
    check("users.jsonl", {"id": 1, "name": "Ana.B_2@x-y z", "name_key": "ana.b_2@x-y z"})
    check("collections.jsonl", {"id": 1, "name": "Keepers, 2025", "description": "best of"})
    check(
        "collection_images.jsonl",
        {"collection_id": 1, "image_id": 7},
        {"collection_id": 1, "image_id": 9},
        {"collection_id": 2, "image_id": 1},
    )

    refused = [
        ("jobs.jsonl", {**job, "prompt": "  "}, r"jobs\.prompt must not be empty"),
        ("jobs.jsonl", {**job, "num_images": 0}, r"jobs\.num_images must be between 1 and 6"),
        (
            "users.jsonl",
            {"id": 1, "name": " ana", "name_key": "ana"},
            r"users\.name ' ana' is not trimmed",
        ),
        (
            "users.jsonl",
            {"id": 1, "name": "ana", "name_key": "bob"},
            r"users\.name_key is not the key of users\.name",
        ),
        (
            "collections.jsonl",
            {"id": 1, "name": "two  spaces"},
            r"collections\.name is not as a board keeps it",
        ),
        (
            "collections.jsonl",
            {"id": 1, "name": "Keepers", "description": "d" * 1001},
            r"collections\.description (is longer than its 1000|must be at most 1000) characters",
        ),
    ]
    for member, record, expected in refused:
        with pytest.raises(ArchiveError, match=rf"^{re.escape(member)} line 1: {expected}"):
            check(member, {"created_at": made, **record})
    with pytest.raises(
        ArchiveError,
        match=r"^collection_images\.jsonl line 3: collection_id, image_id \(2, 1\) does not "
        r"follow \(2, 1\)",
    ):
        check(
            "collection_images.jsonl",
            {"collection_id": 1, "image_id": 9},
            {"collection_id": 2, "image_id": 1},
            {"collection_id": 2, "image_id": 1},
        )

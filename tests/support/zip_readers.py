"""Zips read as the strictest readers read them, front to back without the central directory.

`stream_members` follows commons-compress's `ZipArchiveInputStream` with its defaults: a
stored member whose sizes are only in a data descriptor is refused (nothing says where
its bytes end), a deflated one is read by inflating it to its end. `java_reads` runs
Java's own `java.util.zip.ZipInputStream` (tests/readers/StreamZip.java, compiled once per
run) where a JDK is installed; CI installs one and sets PLAYGROUND_REQUIRE_READERS=1.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import subprocess
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_DESCRIPTOR = b"PK\x07\x08"
_DATA_DESCRIPTOR_FLAG = 0x08
_STORED, _DEFLATED = 0, 8
_ZIP64_EXTRA = 0x0001
_JAVA_SOURCE = Path(__file__).parent.parent / "readers" / "StreamZip.java"


class StreamRefused(Exception):
    """What a streaming reader says when it cannot go on."""


@dataclass(frozen=True)
class StreamedMember:
    name: str
    data: bytes
    method: int


def stream_members(archive: bytes) -> list[StreamedMember]:
    """Every member, read from the local headers alone, its CRC and size checked."""
    members: list[StreamedMember] = []
    at = 0
    while archive.startswith(_LOCAL, at):
        (flags, method, crc, packed, size, name_length, extra_length) = struct.unpack(
            "<2xHH4xIIIHH", archive[at + 4 : at + 30]
        )
        name = archive[at + 30 : at + 30 + name_length].decode("utf-8")
        extra = archive[at + 30 + name_length : at + 30 + name_length + extra_length]
        zip64 = _has_zip64(extra)
        at += 30 + name_length + extra_length
        described = bool(flags & _DATA_DESCRIPTOR_FLAG)
        if zip64 and not described:
            size, packed = struct.unpack("<QQ", _zip64_sizes(extra))
        if method == _STORED:
            if described:
                raise StreamRefused(
                    f"{name}: a stored entry with a data descriptor, its size unknown here"
                )
            data = archive[at : at + packed]
            at += packed
        elif method == _DEFLATED:
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            data = inflater.decompress(archive[at:])
            if not inflater.eof:
                raise StreamRefused(f"{name}: the deflate stream does not end")
            at = len(archive) - len(inflater.unused_data)
        else:
            raise StreamRefused(f"{name}: compression method {method}")
        if described:
            if archive.startswith(_DESCRIPTOR, at):
                at += 4
            sizes = "<IQQ" if zip64 else "<III"
            crc, _, size = struct.unpack_from(sizes, archive, at)
            at += struct.calcsize(sizes)
        if len(data) != size or zlib.crc32(data) != crc:
            raise StreamRefused(f"{name}: its size or CRC is not the header's")
        members.append(StreamedMember(name, data, method))
    if not archive.startswith(_CENTRAL, at):
        raise StreamRefused(f"at byte {at}: neither a member nor the central directory")
    return members


def assert_readable_by_anyone(content: bytes) -> None:
    """Every member streams, and unzips readable by all, as zipfile reads it too."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None
        streamed = stream_members(content)
        assert [member.name for member in streamed] == archive.namelist()
        for member, info in zip(streamed, archive.infolist(), strict=True):
            assert member.data == archive.read(info)
            assert stat.S_IMODE(info.external_attr >> 16) == 0o644, info.filename
            assert stat.S_ISREG(info.external_attr >> 16), info.filename


def dos_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    """A member's date as a zip's DOS date holds it: UTC here, to the even second below."""
    utc = moment.astimezone(UTC)
    return (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second - utc.second % 2)


def _has_zip64(extra: bytes) -> bool:
    return _zip64_sizes(extra) != b""


def _zip64_sizes(extra: bytes) -> bytes:
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if kind == _ZIP64_EXTRA:
            return extra[at + 4 : at + 4 + 16]
        at += 4 + length
    return b""


@dataclass(frozen=True)
class JavaMember:
    name: str
    size: int
    method: int
    modified: int  # seconds since the epoch


def java_reads(archive: Path, classes: Path) -> list[JavaMember]:
    """The members as java.util.zip.ZipInputStream reads them; fails with its message."""
    result = subprocess.run(
        ["java", "-cp", str(classes), "StreamZip", str(archive)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"ZipInputStream refused the zip: {result.stdout}"
    members = []
    for line in result.stdout.splitlines():
        name, size, method, modified = line.split("\t")
        members.append(JavaMember(name, int(size), int(method), int(modified)))
    return members


def compile_stream_zip(target: Path) -> Path:
    """StreamZip.class in `target`; skipped without a JDK (failed under CI, which has one)."""
    if shutil.which("javac") is None or shutil.which("java") is None:
        message = "no JDK here (apt install default-jdk-headless) to run ZipInputStream"
        if os.environ.get("PLAYGROUND_REQUIRE_READERS"):
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run(
        ["javac", "-d", str(target), str(_JAVA_SOURCE)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target

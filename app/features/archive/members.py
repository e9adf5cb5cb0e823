"""Reading the members of an untrusted zip: counted as they stream, refused in one line.

A member's header may lie about its size, so every read here counts the bytes
as they come and stops at the member's cap, whatever the header said. A list of
rows (`jobs.jsonl` and the like) is read a line at a time, each line within its
own cap; a blank line refuses it at once: an export writes none, and a member of
nothing but newlines deflates a thousandfold, so skipping them would let a file
of a few hundred kilobytes keep an import busy for a minute.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

from app.core.errors import plain_reason

CHUNK_BYTES = 1024 * 1024


class ArchiveError(Exception):
    """An archive that cannot be imported; its message is one line saying why."""

    def __init__(self, message: str) -> None:
        one_line = " ".join(message.split())
        super().__init__(one_line[:500])


def stream_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, limit: int
) -> Iterator[bytes]:
    """The member's bytes a chunk at a time, counted: past `limit` it is refused, whatever
    its header said."""
    received = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                received += len(chunk)
                if received > limit:
                    raise ArchiveError(
                        f"{info.filename}: more than the {limit:,} bytes it may hold"
                    )
                yield chunk
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        raise ArchiveError(f"{info.filename}: cannot be read ({plain_reason(exc)})") from None
    except RuntimeError as exc:  # zipfile's word for an encrypted member
        raise ArchiveError(f"{info.filename}: cannot be read ({plain_reason(exc)})") from None


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, limit: int) -> bytes:
    return b"".join(stream_member(archive, info, limit=limit))


def records(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, limit: int, member_limit: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each line of a .jsonl member: each line within `limit`,
    the whole member within `member_limit`, no line blank."""
    pending = b""
    line = 0
    for chunk in stream_member(archive, info, limit=member_limit):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if len(pending) > limit:
            raise ArchiveError(
                f"{info.filename} line {line + len(lines) + 1}: over {limit:,} bytes"
            )
        for raw in lines:
            line += 1
            yield line, _record(info.filename, line, raw, limit)
    # Every line an export writes ends in a newline, so nothing is left after the last.
    if pending:
        yield line + 1, _record(info.filename, line + 1, pending, limit)


def _record(name: str, line: int, raw: bytes, limit: int) -> dict[str, Any]:
    if len(raw) > limit:
        raise ArchiveError(f"{name} line {line}: over {limit:,} bytes")
    if not raw.strip():
        raise ArchiveError(f"{name} line {line}: a blank line, which an export never writes")
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise ArchiveError(f"{name} line {line}: not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ArchiveError(f"{name} line {line}: not a JSON object")
    return record

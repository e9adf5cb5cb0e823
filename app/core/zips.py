"""Every zip the app writes, written here: selection and grid downloads, and gallery exports.

Each member is one that any reader takes, a streaming one included:

- Deflated, never stored. A zip written as it is sent cannot go back to put a
  member's sizes and CRC in its local header, so they follow the data in a data
  descriptor; a streaming reader (Java's `ZipInputStream`, commons-compress by
  default) finds the end of a deflated member by inflating it, but refuses a stored
  one whose header gives no size. Images are compressed already, so they are
  deflated at level 0 (stored blocks inside the deflate stream: no work, five bytes
  in 64 KiB); text at zlib's usual level.
- Mode 0644, like a file anyone saves: a teammate who unzips a download can read
  what it holds. (Whether an export file is private is the file's mode, not its
  members'.)
- Dated: the DOS date in UTC, and the exact moment again in an extended timestamp
  field (the one Info-ZIP, 7-Zip and Java read), so an unzip anywhere shows when
  each image was made, whatever its time zone.

`ZipWriter` writes into a file; `ZipStream` into memory, handing the bytes on as they
are written (`take`), so a zip of a thousand images streams holding one chunk.
"""

from __future__ import annotations

import io
import stat
import struct
import sys
import zipfile
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any, Protocol

MEMBER_MODE = 0o644
# Already compressed (PNG, JPEG, WebP): deflate's stored blocks, at copying speed.
PACKED_LEVEL = 0
TEXT_LEVEL = 6
_UNIX = 3
_EXTENDED_TIMESTAMP = 0x5455
_MODIFIED_PRESENT = 0x01
# A DOS date holds years 1980 to 2107.
_DOS_FIRST = datetime(1980, 1, 1, tzinfo=UTC)
_DOS_LAST = datetime(2107, 12, 31, 23, 59, 58, tzinfo=UTC)


class Writable(Protocol):
    """What a zip is written into: a file, or a ZipStream's memory."""

    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def member_info(name: str, *, modified: datetime, packed: bool = False) -> zipfile.ZipInfo:
    """A member's header: deflated (at level 0 if `packed`), mode 0644, dated `modified`."""
    moment = min(max(modified.astimezone(UTC), _DOS_FIRST), _DOS_LAST)
    info = zipfile.ZipInfo(name, date_time=moment.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    # ZipFile.open(info, "w") compresses at the ZipInfo's own level: `compress_level`
    # from Python 3.13, `_compresslevel` before it (the attribute writestr sets).
    level_attribute = "compress_level" if sys.version_info >= (3, 13) else "_compresslevel"
    setattr(info, level_attribute, PACKED_LEVEL if packed else TEXT_LEVEL)
    # Unix, so the mode bits hold wherever the server runs.
    info.create_system = _UNIX
    info.external_attr = (stat.S_IFREG | MEMBER_MODE) << 16
    seconds = min(max(int(moment.timestamp()), 0), 2**32 - 1)
    info.extra = struct.pack("<HHBI", _EXTENDED_TIMESTAMP, 5, _MODIFIED_PRESENT, seconds)
    return info


class ZipWriter:
    """A zip of members as `member_info` makes them, written into `target`."""

    def __init__(self, target: Writable) -> None:
        self._zip = zipfile.ZipFile(target, "w", allowZip64=True)

    def add(
        self, name: str, data: bytes | str, *, modified: datetime, packed: bool = False
    ) -> None:
        """A member whose bytes are all at hand."""
        content = data.encode("utf-8") if isinstance(data, str) else data
        info = member_info(name, modified=modified, packed=packed)
        # Known before the header is written, so zip64 headers only if it needs them.
        info.file_size = len(content)
        with self._zip.open(info, "w") as member:
            member.write(content)

    def open(
        self, name: str, *, modified: datetime, packed: bool = False, large: bool = False
    ) -> IO[bytes]:
        """A member written in pieces. `large`: it may pass 2 GiB (zip64 headers from the start,
        which a member cannot switch to once its header is written)."""
        info = member_info(name, modified=modified, packed=packed)
        return self._zip.open(info, "w", force_zip64=large)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> ZipWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _Sink(io.RawIOBase):
    """Where a ZipStream's zipfile writes: a stream that cannot seek, kept until taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class ZipStream(ZipWriter):
    """A ZipWriter into memory: `take` hands on what has been written since it was last
    called, so the caller sends each piece as it comes."""

    def __init__(self) -> None:
        self._sink = _Sink()
        super().__init__(self._sink)

    def take(self) -> bytes:
        return self._sink.take()

    def __enter__(self) -> ZipStream:
        return self

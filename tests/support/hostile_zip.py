"""Zips as an attacker writes them: any name, any header, members that inflate a
thousandfold. Python's zipfile will not write such things, so this writes the format
itself (PKWARE APPNOTE: local headers, central directory, end record; no zip64)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

STORED, DEFLATED = 0, 8


@dataclass
class Member:
    name: str
    data: bytes  # as stored in the archive (compressed for DEFLATED)
    crc: int
    size: int  # uncompressed, as the headers declare it
    method: int


@dataclass
class RawZip:
    members: list[Member] = field(default_factory=list)

    def add(self, name: str, content: bytes, *, deflate: bool = True) -> None:
        if deflate:
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = packer.compress(content) + packer.flush()
        else:
            data = content
        method = DEFLATED if deflate else STORED
        self.members.append(Member(name, data, zlib.crc32(content), len(content), method))

    def add_zeros(self, name: str, size_mib: int, *, declared_size: int | None = None) -> None:
        self.add_repeated(name, b"\0", size_mib, declared_size=declared_size)

    def add_repeated(
        self, name: str, byte: bytes, size_mib: int, *, declared_size: int | None = None
    ) -> None:
        """`size_mib` MiB of one byte, deflated about a thousandfold, in a second or so:
        one full-flushed block of a MiB, repeated (each is independent of the last)."""
        chunk = byte * (1024 * 1024)
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
        data = block * size_mib + packer.flush(zlib.Z_FINISH)
        crc = 0
        for _ in range(size_mib):
            crc = zlib.crc32(chunk, crc)
        size = len(chunk) * size_mib
        self.members.append(
            Member(name, data, crc, size if declared_size is None else declared_size, DEFLATED)
        )

    def write(self, path: Path) -> None:
        body = bytearray()
        directory = bytearray()
        for member in self.members:
            name = member.name.encode()
            offset = len(body)
            body += struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0x800,  # UTF-8 names
                member.method,
                0,
                0x21,
                member.crc,
                len(member.data),
                member.size,
                len(name),
                0,
            )
            body += name + member.data
            directory += struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0x800,
                member.method,
                0,
                0x21,
                member.crc,
                len(member.data),
                member.size,
                len(name),
                0,
                0,
                0,
                0,
                0o644 << 16,
                offset,
            )
            directory += name
        end = struct.pack(
            "<IHHHHIIH",
            0x06054B50,
            0,
            0,
            len(self.members),
            len(self.members),
            len(directory),
            len(body),
            0,
        )
        path.write_bytes(bytes(body + directory + end))


def huge_png(width: int, height: int) -> bytes:
    """A real PNG of `width`×`height` black pixels (1 bit each), a few hundred KB for 50,000²:
    rows are deflated in full-flushed blocks, each repeated."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte, then the pixels
    rows_per_block = 1000
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(row * rows_per_block) + packer.flush(zlib.Z_FULL_FLUSH)
    blocks, rest = divmod(height, rows_per_block)
    deflated = block * blocks + packer.compress(row * rest) + packer.flush(zlib.Z_FINISH)
    adler = 1
    for _ in range(blocks):
        adler = zlib.adler32(row * rows_per_block, adler)
    adler = zlib.adler32(row * rest, adler)
    idat = b"\x78\xda" + deflated + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )

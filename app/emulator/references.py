"""Reference images: which field of a run carries them, and receiving them as PixelDojo would.

An edit run sends images as `data:` URIs or links; the emulator decodes every one
(fetching links itself) and refuses one that is not an image, so the app's way of
sending references is tested end to end. What arrived is recorded, decoded, for tests
to compare with what the app sent; the first reference of a job is kept (beside the
state file, if any) because its stand-in output is made from it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image as PILImage

from app.emulator.config import EmulatorConfig

# A reference fetched from a URL may be at most this large.
FETCH_MAX_BYTES = 32 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class ReceivedReference:
    """A reference image as the emulator received it, decoded."""

    model: str
    position: int
    # "data" (a data: URI) or "url" (fetched from the link sent).
    sent_as: str
    format: str
    width: int
    height: int
    byte_size: int
    sha256: str


def reference_field(schema: Mapping[str, Any]) -> str | None:
    """The run field that carries images: the first whose value, or whose list's items,
    are `format: uri` strings (the emulator's models, fal's edit among them, say so)."""
    properties = schema.get("properties")
    for name, prop in (properties if isinstance(properties, Mapping) else {}).items():
        if not isinstance(prop, Mapping):
            continue
        items = prop.get("items")
        if prop.get("format") == "uri" or (
            isinstance(items, Mapping) and items.get("format") == "uri"
        ):
            return str(name)
    return None


class ReferenceDesk:
    """Every reference received, and the bytes of those kept."""

    def __init__(self, config: EmulatorConfig, folder: Path | None = None) -> None:
        self._config = config
        self._folder = folder
        self.received: list[ReceivedReference] = []
        self.bytes_by_sha: dict[str, bytes] = {}
        self._lock = threading.Lock()

    async def receive(self, api_id: str, position: int, value: Any) -> bytes | str:
        """A reference's bytes, decoded and checked to be an image; or what is wrong with it."""
        if not isinstance(value, str):
            return "must be a URL or a data: URI"
        if value.startswith("data:"):
            if not self._config.accept_data_uris:
                return "data: URIs are not accepted; send a URL"
            header, comma, payload = value.partition(",")
            if not comma or not header.endswith(";base64"):
                return "a data: URI must be base64 (data:image/png;base64,...)"
            try:
                data = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                return "the data: URI is not valid base64"
            sent_as = "data"
        elif value.startswith(("http://", "https://")):
            if not self._config.accept_reference_urls:
                return "URLs are not accepted; send a data: URI"
            fetched = await fetch(value)
            if isinstance(fetched, str):
                return fetched
            data, sent_as = fetched, "url"
        else:
            return "must be an http(s) URL or a data: URI"
        try:
            with PILImage.open(io.BytesIO(data)) as image:
                image.load()
                kind, (width, height) = image.format or "unknown", image.size
        except Exception as exc:  # anything Pillow cannot decode is not an image
            return f"is not a decodable image ({exc.__class__.__name__})"
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            self.received.append(
                ReceivedReference(
                    model=api_id,
                    position=position,
                    sent_as=sent_as,
                    format=kind,
                    width=width,
                    height=height,
                    byte_size=len(data),
                    sha256=digest,
                )
            )
            self.bytes_by_sha[digest] = data
        return data

    def keep(self, data: bytes) -> str:
        """Keep a reference an output is made from (in the folder, if any); its sha256."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            self.bytes_by_sha[digest] = data
        if self._folder is not None:
            self._folder.mkdir(parents=True, exist_ok=True)
            (self._folder / digest).write_bytes(data)
        return digest

    def get(self, digest: str) -> bytes | None:
        """A kept reference, from memory or (after a restart) from the folder."""
        with self._lock:
            found = self.bytes_by_sha.get(digest)
        if found is None and self._folder is not None and (self._folder / digest).is_file():
            found = (self._folder / digest).read_bytes()
            with self._lock:
                self.bytes_by_sha[digest] = found
        return found


async def fetch(url: str) -> bytes | str:
    """Fetch a reference sent as a link, as PixelDojo would; or why it could not be."""
    try:
        async with (
            httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                return f"the link answered HTTP {response.status_code}"
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data.extend(chunk)
                if len(data) > FETCH_MAX_BYTES:
                    return "the linked image is too large"
            return bytes(data)
    except httpx.HTTPError as exc:
        return f"the link could not be fetched ({exc.__class__.__name__})"

"""Previews: the middle rendition, kept beside the thumbnail.

A job's card on a laptop shows an image some 600 css px wide: the thumbnail (512 px) is
too small for it and the full image (a 2K PNG, ~6 MB) far too big, so the browser is
offered a WebP of at most PREVIEW_MAX_SIDE a side between the two (app/web/srcset.py).

It is made with the thumbnail when the image is stored (app/storage/intake.py,
`make_renditions`), kept in the blob store beside the thumbnail under the image's digest,
and deleted with it. An image stored before previews existed, or imported (exports leave
previews out: they can always be made again from the image), has none: `Previews` makes
it on the first request for it, and keeps it.
"""

from __future__ import annotations

import io
import threading

from app.storage.blobs.protocol import BlobNotFound, BlobStore
from app.storage.intake import make_preview


class Previews:
    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        # Requests waiting for the same image's preview share one making of it (`find`).
        self._making: dict[str, threading.Lock] = {}
        self._making_guard = threading.Lock()

    def find(self, sha256: str) -> bytes | None:
        """The preview of the image with this digest (one larger than a preview), made and
        stored if it is not yet; None if the image's bytes are gone (a purge took them)."""
        data = self._blobs.read_preview(sha256)
        if data is not None:
            return data
        # A page shows several cards at once, each asking: one request makes the preview
        # and the others wait for it rather than decode the same image at once.
        with self._making_guard:
            lock = self._making.setdefault(sha256, threading.Lock())
        with lock:
            try:
                data = self._blobs.read_preview(sha256)
                if data is None:
                    data = self._make(sha256)
            finally:
                with self._making_guard:
                    self._making.pop(sha256, None)
        return data

    def _make(self, sha256: str) -> bytes | None:
        try:
            source = io.BytesIO(b"".join(self._blobs.iter_chunks(sha256)))
        except BlobNotFound:
            return None
        data = make_preview(source).data
        self._blobs.put_preview(sha256, data)
        return data

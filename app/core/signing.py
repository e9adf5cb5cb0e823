"""Signing: the one place the app's secret is turned into something another party holds.

Everything signed is signed here, each purpose with a key of its own derived from
the app's secret (app/features/people/access.py `load_secret`), so a value signed
for one purpose never passes for another: a reference link never helps forge a
session, a callback address never a form token.

    key(purpose)        = HMAC-SHA256(secret, purpose.label)
    sign(purpose, msg)  = HMAC-SHA256(key(purpose), msg), cut to purpose.size bytes

One mechanism, ours rather than itsdangerous': the formats are fixed by others.
The callback address is a short path segment PixelDojo is handed, and the
reference link's query (`expires=&side=&bytes=&signature=`) is stated in
docs/upstream-contract.md; itsdangerous' `value.signature` tokens fit neither,
and two mechanisms would be two things to get right. The derivation is the one
reference links, callbacks and the demo upstream's key already used, so links
and callback addresses handed out before, and the demo upstream's jobs, stay
good; sessions and form tokens moved onto it, which signed people out once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class Purpose:
    """What a signature is for. `label` is what the purpose's key is derived from: changing
    one invalidates everything signed for it. `size` is how many bytes of the MAC are kept;
    `hex` writes them as hex digits (a path segment), else as unpadded URL-safe base64."""

    label: str
    size: int
    hex: bool = False


# The signed-in cookie's token (app/web/auth.py).
SESSION = Purpose("session cookies", 32)
# The token forms and htmx send back, tied to a session (app/web/gate.py).
CSRF = Purpose("cross-site request tokens", 32)
# Links PixelDojo fetches reference images from (app/features/jobs/references.py).
REFERENCE_LINK = Purpose("reference image links", 24)
# The callback addresses PixelDojo is given (app/features/jobs/callbacks.py).
CALLBACK = Purpose("pixeldojo callbacks", 16, hex=True)
# Not a signature: the demo upstream's API key, a value of the secret's no one else holds.
DEMO_UPSTREAM_KEY = Purpose("demo upstream key", 16, hex=True)

PURPOSES = (SESSION, CSRF, REFERENCE_LINK, CALLBACK, DEMO_UPSTREAM_KEY)


class Signer:
    """Signs and checks values for every purpose with keys derived from one secret."""

    def __init__(self, secret: bytes) -> None:
        self._keys = {
            purpose: hmac.new(secret, purpose.label.encode(), hashlib.sha256).digest()
            for purpose in PURPOSES
        }

    def sign(self, purpose: Purpose, message: str) -> str:
        mac = hmac.new(self._keys[purpose], message.encode(), hashlib.sha256).digest()
        return _text(purpose, mac)

    def valid(self, purpose: Purpose, message: str, presented: str) -> bool:
        """Whether `presented` is the signature of `message` (compared in constant time)."""
        return hmac.compare_digest(presented.encode(), self.sign(purpose, message).encode())

    def derived(self, purpose: Purpose) -> str:
        """The purpose's key itself, as text: for a value that only has to be the secret's and
        unguessable (the demo upstream's API key), not a signature of anything."""
        return _text(purpose, self._keys[purpose])


def _text(purpose: Purpose, mac: bytes) -> str:
    kept = mac[: purpose.size]
    if purpose.hex:
        return kept.hex()
    return base64.urlsafe_b64encode(kept).decode().rstrip("=")


# --- Masking: a token shown in a compressed page ----------------------------------------
# Pages are gzipped (app/web/compression.py) and may echo what a visitor typed, so a
# token written the same way in every page could be guessed a byte at a time from the
# compressed sizes (BREACH). Each page carries it masked afresh: a random pad and the
# token XORed with it, which compress to nothing anyone can compare.
MASK_PREFIX = "m."


def mask_token(token: str) -> str:
    plain = token.encode()
    pad = secrets.token_bytes(len(plain))
    masked = pad + bytes(a ^ b for a, b in zip(plain, pad, strict=True))
    return MASK_PREFIX + base64.urlsafe_b64encode(masked).decode().rstrip("=")


def unmask_token(presented: str) -> str:
    """The token a masked one carries; anything else is returned as it came (an unmasked
    token is still a token, and a malformed one fails the signature check that follows)."""
    if not presented.startswith(MASK_PREFIX):
        return presented
    body = presented[len(MASK_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError:
        return presented
    half = len(raw) // 2
    if len(raw) % 2 or not half:
        return presented
    pad, masked = raw[:half], raw[half:]
    try:
        return bytes(a ^ b for a, b in zip(masked, pad, strict=True)).decode()
    except UnicodeDecodeError:
        return presented

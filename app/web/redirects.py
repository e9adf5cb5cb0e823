"""Where a page may send someone next: only a path on this site, whether it came from a form's
`next` field or from the Referer header."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request


def safe_next(target: str | None, fallback: str = "/") -> str:
    """`target` if it is a path on this site, else `fallback`: never a redirect elsewhere
    (`//evil.example`, `/\\evil.example` and `https://…` all fall back)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return fallback
    return target


def back(request: Request, next_page: str | None, fallback: str = "/") -> str:
    """Where a form goes back to: its `next`, else the page it came from (the Referer, if it
    is this site), each checked by `safe_next`."""
    if next_page:
        return safe_next(next_page, fallback)
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.scheme not in ("http", "https") or referer.netloc != request.url.netloc:
        return fallback
    return safe_next(referer.path + (f"?{referer.query}" if referer.query else ""), fallback)

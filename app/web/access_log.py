"""What the access log may say about a request: all of it but the signatures of signed
addresses.

A signed address is its own permission (app/web/gate.py `SIGNED_ROUTES`): whoever
reads one in a log could fetch a gallery image by its reference link, or bring a
job's poll forward by its callback address, until it expires. uvicorn logs each
request's path and query as they came; a filter on its access logger rewrites that
part of the record before any handler formats it, so every line, whatever writes it,
says which address was asked for but never its signature.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, unquote, unquote_plus

from app.features.jobs import callbacks as webhooks
from app.features.jobs import references

REDACTED = "[redacted]"
ACCESS_LOGGER = "uvicorn.access"
# Query parameters that carry a signature, on whatever path (app/features/jobs/references.py).
SIGNATURE_PARAMETERS = frozenset({references.SIGNATURE_PARAMETER})


def redact(target: str) -> str:
    """A request's path and query as the log may show them: each signature replaced.

    Judged on the decoded path and names, as the app's routing reads them, so a
    signature cannot slip through spelled with percent escapes."""
    path, mark, query = target.partition("?")
    decoded = unquote(path)
    if decoded.startswith(webhooks.PATH_PREFIX):
        job, slash, _ = decoded.removeprefix(webhooks.PATH_PREFIX).partition("/")
        if slash:
            path = f"{webhooks.PATH_PREFIX}{quote(job)}/{REDACTED}"
    if query:
        query = "&".join(_redact_parameter(pair) for pair in query.split("&"))
    return path + mark + query


def _redact_parameter(pair: str) -> str:
    name, equals, _ = pair.partition("=")
    if equals and unquote_plus(name).lower() in SIGNATURE_PARAMETERS:
        return f"{name}={REDACTED}"
    return pair


class RedactSignatures(logging.Filter):
    """uvicorn's access record is (client, method, path and query, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def install() -> None:
    """Redact the access log of this process (once, however many apps it builds). A filter
    on the logger stays when uvicorn configures its logging afterwards."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, RedactSignatures) for existing in logger.filters):
        logger.addFilter(RedactSignatures())

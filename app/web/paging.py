"""`Link: <…>; rel="next"` (RFC 8288) on the API's paginated listings.

A generic client (or `curl --next`-style script) follows the header without knowing the
body's shape; the body's `next_cursor` stays for those that read it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response


def next_link(request: Request, next_cursor: object | None) -> dict[str, str]:
    """The Link header naming the next page: this request's address, its query kept but for
    `cursor`. Empty on the last page."""
    if next_cursor is None or next_cursor == "":
        return {}
    url = request.url.remove_query_params("cursor").include_query_params(cursor=str(next_cursor))
    # Relative to this server: correct behind any proxy that keeps the path.
    target = url.path + (f"?{url.query}" if url.query else "")
    return {"Link": f'<{target}>; rel="next"'}


def link_next(response: Response, request: Request, next_cursor: object | None) -> None:
    response.headers.update(next_link(request, next_cursor))


# A cursor that is a record's id, declared as the string `next_cursor` is (one type for
# both, so generated clients pass one page's cursor to the next call as it is).
IdCursorQuery = Annotated[
    str | None,
    # Digits only; one past any row id is no page (404), as a path id past them is.
    Query(pattern=r"^[0-9]{1,40}$", description="next_cursor of the previous page"),
]


def id_cursor(text: str | None) -> int | None:
    return int(text) if text else None

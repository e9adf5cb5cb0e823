"""The gate every HTTP request passes: who may call, who is calling, and the answer's headers.

It is middleware rather than a per-route dependency so that a route added later
is protected without anyone remembering to. In order:

1. Without sign-in (no accounts yet), only this machine is answered: the Host
   header must name loopback, and so must the caller's address and any address
   a proxy says it forwarded for.
2. The person is found from their session cookie or an API token (Bearer).
3. With sign-in on, anonymous requests are refused, except the sign-in page, static
   files and the probes (/livez, /readyz, /healthz): 401 for the API and htmx, a redirect
   for pages.
   Signed reference-image links (/references/...) are answered to anyone, on any
   host name: PixelDojo fetches them, and each names one image until it expires.
   So are PixelDojo's signed callbacks (/webhooks/pixeldojo/..., app/features/jobs/callbacks.py),
   which skip the cross-site check too: each can only bring one job's poll forward.
4. Every answer gets a Content-Security-Policy and its companions (with images
   served by redirect to an S3-compatible store, pages may load images from that
   store's origin as well); signed-in pages and API answers are marked
   `Cache-Control: no-store`.

The gate never reads a request body. The cross-site check (`check_same_site`)
runs after routing, as a dependency of every route: an undeclared method gets
its 405 from the router, and a form is parsed once, by the route's own bounded
parser (app/web/bodies.py counts the bytes), never by the gate.

It runs before every request, so it keeps its own cost small: headers are read
in one pass over the raw list, who holds a cookie or token comes from a short
cache (app/features/people/credentials.py) and only a miss goes to a worker thread for the
database, and the answer's headers are encoded once for each kind of answer.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import anyio
from starlette.requests import Request, cookie_parser
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import CrossSiteRequest
from app.core.signing import mask_token
from app.features.jobs import callbacks as webhooks
from app.features.people.access import Access, caller_is_local, host_is_loopback
from app.features.people.credentials import Credential
from app.web import urls
from app.web.ops import MACHINE_PATHS, PROBE_PATHS
from app.web.problems import problem_response
from app.web.services import Services

SESSION_COOKIE = "playground_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# Methods that may change something. Others (GET, HEAD, OPTIONS, and ones no route
# declares, which the router answers 405) need no cross-site check.
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Bodies a page on another site cannot send without a CORS preflight (which this app never
# answers): a script's JSON, or an image's bytes uploaded as a reference.
NOT_SENDABLE_CROSS_SITE = ("application/json", "image/png", "image/jpeg", "image/webp")
# /api/sign-in exchanges a name and password for an API token (the command line's `login`).
# The OpenAPI description holds no data: tools read it before they hold a token.
PUBLIC_PATHS = frozenset({"/sign-in", "/api/sign-in", "/openapi.json", *PROBE_PATHS})
PUBLIC_PREFIXES = ("/static/",)
# Files that are the same for everyone may be cached; nothing else a signed-in person sees.
CACHEABLE_PREFIXES = ("/static/", "/docs/assets/")
# Addresses signed by the app for PixelDojo to call (app/features/jobs/references.py,
# app/features/jobs/callbacks.py):
# their signature is their permission, so neither the local-only check nor sign-in applies.
SIGNED_ROUTES = (
    ("/references/", frozenset({"GET", "HEAD"})),
    (webhooks.PATH_PREFIX, frozenset({"POST"})),
)

IMG_SRC = "img-src 'self' data: blob:"
CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; script-src 'self'; style-src 'self'; {IMG_SRC}; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI (served from the app, app/web/docs.py) sets inline styles on its elements;
# its script is ours and external, like every page's.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs"})
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


RawHeaders = tuple[tuple[bytes, bytes], ...]


class Gate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services: Services | None = getattr(scope["app"].state, "services", None)
        if services is None:  # not started yet
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if _is_signed(path, scope["method"]):
            signed = _with_headers(send, answer_headers(services.image_origin, path, False))
            await self.app(scope, receive, signed)
            return
        access = services.access
        host, authorization, cookie = _request_headers(scope)

        sign_in_on = access.cached_sign_in_on()
        if sign_in_on is None:
            sign_in_on = await anyio.to_thread.run_sync(access.sign_in_on)
        if not sign_in_on and not _from_this_machine(scope, host):
            refused = _with_headers(send, answer_headers(services.image_origin, path, False))
            await _refuse_caller(scope, receive, refused)
            return

        identity = await _identify(access, authorization, cookie) if sign_in_on else None
        if isinstance(identity, Response):
            refused = _with_headers(send, answer_headers(services.image_origin, path, False))
            await identity(scope, receive, refused)
            return
        state = scope.setdefault("state", {})
        state["sign_in_on"] = sign_in_on
        if identity is None:
            user, session_hash, by_token = None, None, False
            state["csrf_token"] = mask_token(access.sessionless_csrf_token)
        else:
            user, session_hash = identity.user, identity.session_hash
            by_token = identity.token_id is not None
            state["csrf_token"] = mask_token(identity.csrf_token)
        state["user"] = user
        state["session_hash"] = session_hash
        state["by_token"] = by_token
        send = _with_headers(send, answer_headers(services.image_origin, path, user is not None))

        if sign_in_on and user is None and not _is_public(path):
            await _ask_to_sign_in(Request(scope, receive))(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _request_headers(scope: Scope) -> tuple[str, str, str]:
    """Host, Authorization and Cookie (the first of each), in one pass over the raw list."""
    host = authorization = cookie = None
    for name, value in scope["headers"]:
        if name == b"host":
            host = host if host is not None else value
        elif name == b"authorization":
            authorization = authorization if authorization is not None else value
        elif name == b"cookie":
            cookie = cookie if cookie is not None else value
    return (
        host.decode("latin-1") if host else "",
        authorization.decode("latin-1") if authorization else "",
        cookie.decode("latin-1") if cookie else "",
    )


def _from_this_machine(scope: Scope, host: str) -> bool:
    if not host_is_loopback(host):
        return False
    client = scope.get("client")
    return caller_is_local(client[0] if client else None, Request(scope).headers)


async def _identify(
    access: Access, authorization: str, cookie: str
) -> Credential | Response | None:
    """Who the request signs in as (None: nobody), or the refusal of a bad API token.

    A bad or revoked token is refused outright rather than treated as anonymous: a script
    should hear that its token stopped working, not be redirected to a sign-in page."""
    scheme, _, presented = authorization.partition(" ")
    if presented and scheme.lower() == "bearer":
        secret = presented.strip()
        credential = access.cached_token(secret)
        if credential is None:
            credential = await anyio.to_thread.run_sync(access.look_up_token, secret)
        if credential is None:
            refusal = _json_error(
                401, "invalid_token", "This API token is not valid or was revoked."
            )
            refusal.headers["www-authenticate"] = 'Bearer error="invalid_token"'
            return refusal
        if access.token_use_due(credential):
            await anyio.to_thread.run_sync(access.record_token_use, secret, credential)
        return credential
    signed = cookie_parser(cookie).get(SESSION_COOKIE) if cookie else None
    token = access.unsign_session(signed) if signed else None
    if token is None:
        return None
    credential = access.cached_session(token)
    if credential is None:
        credential = await anyio.to_thread.run_sync(access.look_up_session, token)
    return credential


def _is_signed(path: str, method: str) -> bool:
    return any(path.startswith(prefix) and method in methods for prefix, methods in SIGNED_ROUTES)


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def wants_json(request: Request) -> bool:
    path = request.url.path
    return (
        path.startswith("/api/")
        or path in MACHINE_PATHS
        or path == "/openapi.json"
        or "application/json" in request.headers.get("accept", "")
    )


def _ask_to_sign_in(request: Request) -> Response:
    if wants_json(request):
        response = _json_error(401, "sign_in_required", "Sign in, or send an API token.")
        response.headers["www-authenticate"] = "Bearer"
        return response
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.headers.get("hx-request"):
        current = request.headers.get("hx-current-url", "")
        page = current.split(request.headers.get("host", ""), 1)[-1] if current else here
        return Response(status_code=401, headers={"HX-Redirect": urls.sign_in(page or "/")})
    return RedirectResponse(urls.sign_in(here), status_code=303)


# --- Cross-site requests: a dependency of every route -------------------------------------


async def check_same_site(request: Request) -> None:
    """Refuse a state-changing request that did not come from this site's own pages.

    `Sec-Fetch-Site` (sent by current browsers) or else `Origin` must say so; a
    request with neither must be JSON (a cross-site form cannot send JSON) or
    carry the CSRF token, in the `X-CSRF-Token` header or the form's
    `csrf_token` field. Requests authenticated by an API token carry no ambient
    credential and skip this. An image's bytes (a reference upload) count as JSON does:
    a page elsewhere cannot send either without a CORS preflight, which this app never
    answers.
    """
    if request.method not in STATE_CHANGING_METHODS or getattr(request.state, "by_token", False):
        return
    if _is_signed(request.url.path, request.method):
        # PixelDojo's server calls it, carrying no cookie: the URL's signature is its check.
        return
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site in ("same-origin", "none"):
            return
        raise CrossSiteRequest(f"it came from another site (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == f"{request.url.scheme}://{request.headers.get('host', '')}":
            return
        raise CrossSiteRequest(f"it came from {origin}")
    # Neither header: an old browser, or a script.
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(NOT_SENDABLE_CROSS_SITE):
        return
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        # The route's own parser (Starlette's, bounded, cached on the request): the route
        # reads the same parsed form, and a malformed one is its 400, not ours.
        value = (await request.form()).get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    services: Services = request.app.state.services
    session_hash: str | None = getattr(request.state, "session_hash", None)
    if presented and services.access.csrf_valid(session_hash, presented):
        return
    raise CrossSiteRequest("it carried no valid CSRF token")


# --- Answers --------------------------------------------------------------------------------


def _json_error(status: int, code: str, message: str) -> JSONResponse:
    return problem_response(status, code, message)


async def _refuse_caller(scope: Scope, receive: Receive, send: Send) -> None:
    message = (
        "This Seedream Playground runs without sign-in, so it answers only on this machine "
        "(localhost, 127.0.0.1), not through a proxy. To share it, create an admin account "
        "(seedream-playground users add NAME --admin) and start it again."
    )
    response: Response = (
        _json_error(403, "local_only", message)
        if wants_json(Request(scope))
        else PlainTextResponse(message, status_code=403)
    )
    await response(scope, receive, send)


def page_policy(image_origin: str | None) -> str:
    """The pages' policy; images may also come from where image routes redirect to."""
    if image_origin is None:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace(IMG_SRC, f"{IMG_SRC} {image_origin}")


def answer_headers(image_origin: str | None, path: str, signed_in: bool) -> RawHeaders:
    """The headers the gate adds to an answer to `path` (encoded once per kind of answer)."""
    # Whatever a signed-in person sees, and every API answer, may hold what is theirs.
    no_store = not path.startswith(CACHEABLE_PREFIXES) and (signed_in or path.startswith("/api/"))
    return _encoded_headers(image_origin, docs=path in DOCS_PATHS, no_store=no_store)


@functools.cache
def _encoded_headers(image_origin: str | None, *, docs: bool, no_store: bool) -> RawHeaders:
    headers = {
        "content-security-policy": DOCS_CONTENT_SECURITY_POLICY
        if docs
        else page_policy(image_origin),
        **SECURITY_HEADERS,
    }
    if no_store:
        headers["cache-control"] = "no-store"
    return tuple(
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    )


def _with_headers(send: Send, extra: RawHeaders) -> Callable[[Message], Awaitable[None]]:
    """Add the gate's headers the answer does not set itself (a route may set its own)."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            present = {name.lower() for name, _ in headers}
            headers.extend(header for header in extra if header[0] not in present)
            message["headers"] = headers
        await send(message)

    return send_with_headers

"""The gate every HTTP request passes: host check, sign-in, cross-site protection, headers.

It is middleware rather than a per-route dependency so that a route added later
is protected without anyone remembering to. In order:

1. Without sign-in (no accounts yet), only loopback host names are answered.
2. The person is found from their session cookie or an API token (Bearer).
3. With sign-in on, anonymous requests are refused, except the sign-in page,
   static files and /healthz: 401 for the API and htmx, a redirect for pages.
4. State-changing requests must come from this site: `Sec-Fetch-Site` (sent by
   current browsers) or else `Origin` must say so; a request with neither must be
   JSON (a cross-site form cannot send JSON) or carry the CSRF token. Requests
   authenticated by an API token carry no ambient credential and skip this.
5. Every answer gets a Content-Security-Policy and its companions. With images
   served by redirect to an S3-compatible store, its pages may load images from that
   store's origin as well.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, quote

import anyio
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import accounts
from app.access import host_is_loopback
from app.models import User
from app.services import Services

SESSION_COOKIE = "playground_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/sign-in", "/healthz"})
PUBLIC_PREFIXES = ("/static/",)
# Reading a form body only to find the token; larger posts must send the header.
CSRF_BODY_LIMIT = 1024 * 1024

IMG_SRC = "img-src 'self' data: blob:"
CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; script-src 'self'; style-src 'self'; {IMG_SRC}; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's interactive docs load Swagger UI / ReDoc from a CDN with an inline bootstrap
# script; they render only the schema, never user text.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


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
        request = Request(scope, receive)
        send = _with_security_headers(
            send, docs=scope["path"] in DOCS_PATHS, image_origin=services.image_origin
        )

        sign_in_on = await anyio.to_thread.run_sync(services.access.sign_in_on)
        if not sign_in_on and not host_is_loopback(request.headers.get("host", "")):
            await _refuse_host(scope, receive, send)
            return

        identity = await _identify(services, request, sign_in_on=sign_in_on)
        if isinstance(identity, Response):
            await identity(scope, receive, send)
            return
        user, session_hash, by_token = identity
        state = scope.setdefault("state", {})
        state["user"] = user
        state["session_hash"] = session_hash
        state["sign_in_on"] = sign_in_on
        state["csrf_token"] = services.access.csrf_token(session_hash)

        if sign_in_on and user is None and not _is_public(scope["path"]):
            await _ask_to_sign_in(request)(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and not by_token:
            verdict, receive = await _check_same_site(services, request, session_hash, receive)
            if verdict is not None:
                await verdict(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _identify(
    services: Services, request: Request, *, sign_in_on: bool
) -> tuple[User | None, str | None, bool] | Response:
    """(person, session hash, signed in by API token), or the refusal of a bad token."""
    if not sign_in_on:
        return None, None, False
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential:
        user = await anyio.to_thread.run_sync(
            lambda: accounts.user_for_api_token(services.db, secret=credential.strip())
        )
        if user is None:
            return _json_error(401, "invalid_token", "This API token is not valid or was revoked.")
        return user, None, True
    cookie = request.cookies.get(SESSION_COOKIE)
    token = services.access.unsign_session(cookie) if cookie else None
    if token is None:
        return None, None, False
    found = await anyio.to_thread.run_sync(
        lambda: accounts.user_for_session(services.db, token=token)
    )
    if found is None:
        return None, None, False
    user, session_hash = found
    return user, session_hash, False


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def wants_json(request: Request) -> bool:
    path = request.url.path
    return (
        path.startswith("/api/")
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
        return Response(
            status_code=401, headers={"HX-Redirect": f"/sign-in?next={quote(page or '/')}"}
        )
    return RedirectResponse(f"/sign-in?next={quote(here)}", status_code=303)


async def _check_same_site(
    services: Services, request: Request, session_hash: str | None, receive: Receive
) -> tuple[Response | None, Receive]:
    """None if the request may go on (and the receive to pass on), else the refusal."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site in ("same-origin", "none"):
            return None, receive
        return _csrf_refusal(f"it came from another site (Sec-Fetch-Site: {site})"), receive
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin == own:
            return None, receive
        return _csrf_refusal(f"it came from {origin}"), receive
    # Neither header: an old browser, or a script.
    if request.headers.get("content-type", "").startswith("application/json"):
        return None, receive
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        presented, receive = await _token_from_form(request)
    if presented and services.access.csrf_valid(session_hash, presented):
        return None, receive
    return _csrf_refusal("it carried no valid CSRF token"), receive


async def _token_from_form(request: Request) -> tuple[str | None, Receive]:
    """Read the form to find the token, then hand the same body on to the route."""
    content_type = request.headers.get("content-type", "")
    length = int(request.headers.get("content-length") or 0)
    if length > CSRF_BODY_LIMIT:
        return None, request.receive
    body = await request.body()

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    token: str | None = None
    if content_type.startswith("application/x-www-form-urlencoded"):
        token = parse_qs(body.decode("latin-1")).get(CSRF_FIELD, [None])[0]
    elif content_type.startswith("multipart/form-data"):
        form = await Request(request.scope, replay).form()
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    return token, replay


def _csrf_refusal(reason: str) -> Response:
    return _json_error(
        403,
        "cross_site_request",
        f"This request was refused because {reason}. Reload the page and try again.",
    )


def _json_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _refuse_host(scope: Scope, receive: Receive, send: Send) -> None:
    response = PlainTextResponse(
        "This Seedream Playground runs without sign-in, so it answers only on this machine "
        "(localhost, 127.0.0.1). To share it, create an admin account "
        "(seedream-playground users add NAME --admin) and start it again.",
        status_code=403,
    )
    await response(scope, receive, send)


def page_policy(image_origin: str | None) -> str:
    """The pages' policy; images may also come from where image routes redirect to."""
    if image_origin is None:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace(IMG_SRC, f"{IMG_SRC} {image_origin}")


def _with_security_headers(
    send: Send, *, docs: bool, image_origin: str | None
) -> Callable[[Message], Awaitable[None]]:
    policy = DOCS_CONTENT_SECURITY_POLICY if docs else page_policy(image_origin)

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.setdefault("content-security-policy", policy)
            for name, value in SECURITY_HEADERS.items():
                headers.setdefault(name, value)
        await send(message)

    return send_with_headers

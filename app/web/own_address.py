"""Demo mode: the built-in emulator calls the app back, as PixelDojo does.

PixelDojo calls back at `PLAYGROUND_PUBLIC_URL` (app/features/jobs/callbacks.py). Demo
mode's PixelDojo is the emulator in this very process, which reaches the app wherever
the app was reached itself: the server names that address in every request's
`server`. The first request teaches it (a job is only ever submitted by a request,
or by a batch a request started), so demo jobs end by callback, as real ones with a
public URL do, instead of waiting for their next poll. Demo mode is one process by
design (it refuses `--no-worker`), so this one process knowing its address is enough.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.web.services import Services


def address_url(server: tuple[str, int] | list[object] | None) -> str | None:
    """The base URL of a server's (host, port), or None for a socket without one."""
    if not server or len(server) != 2:
        return None
    host, port = server
    if not isinstance(host, str) or not isinstance(port, int) or not host:
        return None
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class LearnOwnAddress:
    """ASGI middleware, installed in demo mode only, when no public URL is set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.learned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.learned and scope["type"] == "http":
            services: Services | None = getattr(scope["app"].state, "services", None)
            url = address_url(scope.get("server"))
            if services is not None and url is not None:
                services.submitter.callback_base.url = url
                self.learned = True
        await self.app(scope, receive, send)

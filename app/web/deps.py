"""Dependencies as `Annotated` aliases, so route signatures read as sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from app.core.errors import Forbidden
from app.features.people.permissions import Actor
from app.storage.db.tables import User
from app.web.services import Services


# Async on purpose: FastAPI runs a plain `def` dependency in the thread pool, and a
# thread hop per dependency per request cost more than the gallery query itself
# (docs/benchmarks.md). These only read app state, so they never block the loop.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_templates(request: Request) -> Jinja2Templates:
    templates: Jinja2Templates = request.app.state.templates
    return templates


def current_user(request: Request) -> User | None:
    """The signed-in person; None when nobody is, or when the app runs without sign-in."""
    user: User | None = getattr(request.state, "user", None)
    return user


def require_admin(request: Request) -> User | None:
    """An admin, or the one local person when the app runs without sign-in."""
    if not sign_in_on(request):
        return None
    user = current_user(request)
    if user is None or not user.is_admin:
        raise Forbidden("Only an admin can do this.")
    return user


def sign_in_on(request: Request) -> bool:
    return bool(getattr(request.state, "sign_in_on", False))


def actor(request: Request) -> Actor:
    """Who makes this request; domain functions ask it whether they may change a thing."""
    return Actor(user=current_user(request), sign_in_on=sign_in_on(request), ip=client_ip(request))


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


# The dependency forms of the functions above, async for the reason given at the top.
async def _current_user_dependency(request: Request) -> User | None:
    return current_user(request)


async def _require_admin_dependency(request: Request) -> User | None:
    return require_admin(request)


async def _client_ip_dependency(request: Request) -> str | None:
    return client_ip(request)


async def _actor_dependency(request: Request) -> Actor:
    return actor(request)


ServicesDep = Annotated[Services, Depends(get_services)]
CurrentUser = Annotated[User | None, Depends(_current_user_dependency)]
AdminUser = Annotated[User | None, Depends(_require_admin_dependency)]
ClientIP = Annotated[str | None, Depends(_client_ip_dependency)]
ActorDep = Annotated[Actor, Depends(_actor_dependency)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"

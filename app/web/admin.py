"""Admin: people and their budgets, the team's spend, the audit log (pages and JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import Conflict, InvalidParameters, NotFoundError
from app.features.people import accounts, audit, budgets
from app.storage.db.tables import User, utcnow
from app.web import urls
from app.web.deps import AdminUser, ClientIP, ServicesDep, TemplatesDep

router = APIRouter(prefix="/admin", include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["admin"])


# --- The domain steps both the pages and the API take ----------------------------------


def add_person(
    services: ServicesDep,
    *,
    actor: User | None,
    ip: str | None,
    name: str,
    password: str,
    is_admin: bool,
) -> User:
    # The first account turns sign-in on: it must be able to manage the others.
    first = not accounts.users_exist(services.db)
    try:
        user = accounts.create_user(
            services.db, name=name, password=password, is_admin=is_admin or first
        )
    except accounts.AccountError as exc:
        raise _refusal(exc) from None
    services.access.forget()
    role = "admin" if user.is_admin else "member"
    audit.record(
        services.db,
        action=audit.Action.USER_ADDED,
        user=actor,
        ip=ip,
        detail=f"{user.name} ({role})",
    )
    return user


def change_person(
    services: ServicesDep,
    *,
    actor: User | None,
    ip: str | None,
    user_id: int,
    is_admin: bool | None,
    budget_changes: Mapping[str, float | None],
) -> User:
    """Change what is given: the role unless None, the budgets named in `budget_changes`."""
    try:
        if is_admin is not None:
            user = accounts.set_admin(services.db, user_id=user_id, is_admin=is_admin)
            audit.record(
                services.db,
                action=audit.Action.ADMIN_CHANGED,
                user=actor,
                ip=ip,
                detail=f"{user.name}: {'admin' if is_admin else 'member'}",
            )
        if budget_changes:
            user = accounts.set_budgets(services.db, user_id=user_id, changes=budget_changes)
            audit.record(
                services.db,
                action=audit.Action.BUDGET_CHANGED,
                user=actor,
                ip=ip,
                detail=f"{user.name}: daily {_limit(user.daily_budget)}, "
                f"monthly {_limit(user.monthly_budget)}",
            )
    except accounts.AccountError as exc:
        if exc.field == "user":
            raise NotFoundError(exc.message) from None
        raise _refusal(exc) from None
    found = accounts.get_user(services.db, user_id=user_id)
    if found is None or found.removed_at is not None:
        raise NotFoundError(f"There is no account {user_id}.")
    return found


def remove_person(
    services: ServicesDep, *, actor: User | None, ip: str | None, user_id: int
) -> User:
    try:
        user = accounts.remove_user(services.db, user_id=user_id)
    except accounts.AccountError as exc:
        if exc.field == "user":
            raise NotFoundError(exc.message) from None
        raise _refusal(exc) from None
    services.access.forget()
    audit.record(services.db, action=audit.Action.USER_REMOVED, user=actor, ip=ip, detail=user.name)
    return user


def _refusal(exc: accounts.AccountError) -> InvalidParameters:
    if isinstance(exc, accounts.AccountConflict):
        return Conflict({exc.field: exc.message})
    return InvalidParameters({exc.field: exc.message})


def _limit(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def _credits_field(raw: str, field: str) -> float | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameters(
            {field: "must be a number of credits, or empty for no limit"}
        ) from None
    if value < 0:
        raise InvalidParameters({field: "must be 0 or more"})
    return value


# --- Pages ---------------------------------------------------------------------------


@router.get("")
def admin_home(admin: AdminUser) -> Response:
    return RedirectResponse(urls.admin_people(), status_code=303)


def _people_page(
    request: Request, services: ServicesDep, templates: TemplatesDep, **extra: Any
) -> Response:
    context = {
        "people": budgets.team_spend(services.db, now=utcnow()),
        "users": {user.id: user for user in accounts.list_users(services.db)},
        **extra,
    }
    status = 422 if extra.get("errors") else 200
    return templates.TemplateResponse(request, "admin_people.html", context, status_code=status)


@router.get("/people", name="people_page", response_class=HTMLResponse)
def people_page(
    request: Request, services: ServicesDep, templates: TemplatesDep, admin: AdminUser
) -> Response:
    return _people_page(request, services, templates)


@router.post("/people", response_class=HTMLResponse)
def add_person_page(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    admin: AdminUser,
    ip: ClientIP,
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    is_admin: Annotated[bool, Form()] = False,
) -> Response:
    try:
        add_person(services, actor=admin, ip=ip, name=name, password=password, is_admin=is_admin)
    except InvalidParameters as exc:
        return _people_page(request, services, templates, errors=exc.field_errors, name=name)
    return RedirectResponse(urls.admin_people(), status_code=303)


@router.post("/people/{user_id}", response_class=HTMLResponse)
def change_person_page(
    user_id: int,
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    admin: AdminUser,
    ip: ClientIP,
    daily_budget: Annotated[str, Form()] = "",
    monthly_budget: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
) -> Response:
    try:
        change_person(
            services,
            actor=admin,
            ip=ip,
            user_id=user_id,
            is_admin={"admin": True, "member": False}.get(role),
            # The page's form shows both budgets, so both are given.
            budget_changes={
                "daily_budget": _credits_field(daily_budget, "daily_budget"),
                "monthly_budget": _credits_field(monthly_budget, "monthly_budget"),
            },
        )
    except InvalidParameters as exc:
        return _people_page(request, services, templates, errors=exc.field_errors)
    return RedirectResponse(urls.admin_people(), status_code=303)


@router.post("/people/{user_id}/remove", response_class=HTMLResponse)
def remove_person_page(
    user_id: int,
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    admin: AdminUser,
    ip: ClientIP,
) -> Response:
    try:
        remove_person(services, actor=admin, ip=ip, user_id=user_id)
    except InvalidParameters as exc:
        return _people_page(request, services, templates, errors=exc.field_errors)
    return RedirectResponse(urls.admin_people(), status_code=303)


@router.get("/spend", response_class=HTMLResponse)
def spend_page(
    request: Request, services: ServicesDep, templates: TemplatesDep, admin: AdminUser
) -> Response:
    now = utcnow()
    context = {
        "people": budgets.team_spend(services.db, now=now),
        "by_day": budgets.spend_by_day(services.db, now=now),
    }
    return templates.TemplateResponse(request, "admin_spend.html", context)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    admin: AdminUser,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    events, next_cursor = audit.recent_events(services.db, before_id=before)
    return templates.TemplateResponse(
        request, "admin_audit.html", {"events": events, "next_cursor": next_cursor}
    )


# --- JSON ------------------------------------------------------------------------------


class PersonPublic(BaseModel):
    id: int
    name: str
    is_admin: bool
    daily_budget: float | None
    monthly_budget: float | None
    created_at: datetime


class PersonCreate(BaseModel):
    model_config = ConfigDict(strict=True)

    name: str = Field(pattern=accounts.NAME_PATTERN.pattern)
    password: str = Field(min_length=accounts.PASSWORD_MIN_CHARS)
    is_admin: bool = False


class PersonChange(BaseModel):
    """Fields left out stay as they are; a `null` budget means no limit."""

    model_config = ConfigDict(strict=True)

    is_admin: bool | None = None
    daily_budget: float | None = Field(None, ge=0)
    monthly_budget: float | None = Field(None, ge=0)


class SpendPublic(BaseModel):
    user_id: int | None
    name: str
    today: float
    this_month: float
    daily_budget: float | None
    monthly_budget: float | None


class AuditEventPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    detail: str
    ip: str | None


def _public(user: User) -> PersonPublic:
    return PersonPublic.model_validate(user, from_attributes=True)


@api_router.get("/users", response_model=list[PersonPublic])
def list_people(services: ServicesDep, admin: AdminUser) -> list[PersonPublic]:
    return [_public(user) for user in accounts.list_users(services.db)]


@api_router.post("/users", response_model=PersonPublic, status_code=201)
def create_person(
    body: PersonCreate, services: ServicesDep, admin: AdminUser, ip: ClientIP
) -> PersonPublic:
    return _public(
        add_person(
            services,
            actor=admin,
            ip=ip,
            name=body.name,
            password=body.password,
            is_admin=body.is_admin,
        )
    )


@api_router.patch("/users/{user_id}", response_model=PersonPublic)
def update_person(
    user_id: int, body: PersonChange, services: ServicesDep, admin: AdminUser, ip: ClientIP
) -> PersonPublic:
    """Change what the body names; a field left out stays as it is (`null` budget: no limit)."""
    return _public(
        change_person(
            services,
            actor=admin,
            ip=ip,
            user_id=user_id,
            is_admin=body.is_admin,
            budget_changes=body.model_dump(
                include=set(accounts.BUDGET_FIELDS) & body.model_fields_set
            ),
        )
    )


@api_router.delete("/users/{user_id}", status_code=204)
def delete_person(user_id: int, services: ServicesDep, admin: AdminUser, ip: ClientIP) -> Response:
    remove_person(services, actor=admin, ip=ip, user_id=user_id)
    return Response(status_code=204)


@api_router.get("/spend", response_model=list[SpendPublic])
def team_spend(services: ServicesDep, admin: AdminUser) -> list[SpendPublic]:
    return [
        SpendPublic.model_validate(row, from_attributes=True)
        for row in budgets.team_spend(services.db, now=utcnow())
    ]


@api_router.get("/audit", response_model=list[AuditEventPublic])
def audit_log(
    services: ServicesDep,
    admin: AdminUser,
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditEventPublic]:
    events, _ = audit.recent_events(services.db, before_id=before, limit=limit)
    return [AuditEventPublic.model_validate(event, from_attributes=True) for event in events]

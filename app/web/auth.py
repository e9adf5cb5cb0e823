"""Signing in and out, and a person's own account: budgets, password, API tokens."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import (
    InvalidParameters,
    NotFoundError,
    SignInRequired,
    TooManyAttempts,
    WrongPassword,
)
from app.core.text import Line, WordedLine
from app.features.people import accounts, audit, budgets, throttle
from app.storage.db.tables import User, utcnow
from app.web import urls
from app.web.deps import BrowserUser, ClientIP, CurrentUser, ServicesDep, TemplatesDep
from app.web.gate import SESSION_COOKIE
from app.web.redirects import safe_next

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["account"])


# --- Signing in and out ------------------------------------------------------------


@router.get("/sign-in", name="sign_in_page", response_class=HTMLResponse)
def sign_in_page(
    request: Request,
    templates: TemplatesDep,
    next_page: Annotated[str | None, Query(alias="next")] = None,
) -> Response:
    if not getattr(request.state, "sign_in_on", False):
        return RedirectResponse(urls.playground(), status_code=303)
    return templates.TemplateResponse(
        request, "sign_in.html", {"next_page": safe_next(next_page), "name": ""}
    )


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    ip: ClientIP,
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next_page: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    db = services.db
    context: dict[str, Any] = {"next_page": safe_next(next_page), "name": name}
    checked = _check_password(services, name=name, password=password, ip=ip)
    if isinstance(checked, float):
        context["error"] = throttle.wait_message(checked)
        return templates.TemplateResponse(
            request,
            "sign_in.html",
            context,
            status_code=429,
            headers={"Retry-After": str(math.ceil(checked))},
        )
    if checked is None:
        context["error"] = "Wrong name or password."
        return templates.TemplateResponse(request, "sign_in.html", context, status_code=401)
    user = checked
    assert user.id is not None
    token = accounts.start_session(db, user_id=user.id, ip=ip, days=services.settings.session_days)
    audit.record(db, action=audit.Action.SIGN_IN, user=user, ip=ip)
    response = RedirectResponse(safe_next(next_page), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        services.access.sign_session(token),
        max_age=int(services.settings.session_days * 86400),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


def _check_password(
    services: ServicesDep, *, name: str, password: str, ip: str | None
) -> User | float | None:
    """The person a name and password sign in as; None when they are wrong, or the seconds
    to wait when too many guesses came first (counted through the one throttle, and audited
    the same, whether the sign-in page or the command line's `login` asks)."""
    db = services.db
    checked = throttle.check_password(db, throttle.Attempt(name=name, address=ip), password)
    if checked.wait:
        return float(checked.wait)
    if checked.user is None:
        audit.record(
            db, action=audit.Action.SIGN_IN_FAILED, user=None, actor=name[:64] or "?", ip=ip
        )
    return checked.user


@router.post("/sign-out")
def sign_out(request: Request, services: ServicesDep, user: CurrentUser, ip: ClientIP) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    token = services.access.unsign_session(cookie) if cookie else None
    if token is not None:
        accounts.end_session(services.db, token=token)
    if user is not None:
        audit.record(services.db, action=audit.Action.SIGN_OUT, user=user, ip=ip)
    response = RedirectResponse(urls.sign_in(), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- One's own account ---------------------------------------------------------------


def _signed_in(user: User | None) -> User:
    if user is None:
        raise SignInRequired("Accounts exist only once sign-in is on.")
    return user


def _account_context(services: ServicesDep, user: User) -> dict[str, Any]:
    assert user.id is not None
    with services.db.read() as session:
        spend = budgets.spend_of(session, user_id=user.id, now=utcnow())
    return {
        "account": user,
        "spend": spend,
        "tokens": accounts.list_api_tokens(services.db, user_id=user.id),
    }


@router.get("/account", name="account_page", response_class=HTMLResponse)
def account_page(
    request: Request, services: ServicesDep, templates: TemplatesDep, user: CurrentUser
) -> Response:
    if user is None:
        return RedirectResponse(urls.playground(), status_code=303)
    return templates.TemplateResponse(request, "account.html", _account_context(services, user))


@router.post("/account/tokens", response_class=HTMLResponse)
def create_token_page(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    user: BrowserUser,
    ip: ClientIP,
    name: Annotated[str, Form()] = "",
) -> Response:
    person = _signed_in(user)
    assert person.id is not None
    context = _account_context(services, person)
    try:
        new = accounts.create_api_token(services.db, user_id=person.id, name=name)
    except accounts.AccountError as exc:
        context["token_error"] = exc.message
        return templates.TemplateResponse(request, "account.html", context, status_code=422)
    audit.record(
        services.db, action=audit.Action.TOKEN_CREATED, user=person, ip=ip, detail=new.token.name
    )
    context = _account_context(services, person)
    context["new_token"] = new
    return templates.TemplateResponse(request, "account.html", context)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token_page(
    token_id: int, services: ServicesDep, user: CurrentUser, ip: ClientIP
) -> Response:
    person = _signed_in(user)
    _revoke(services, person, token_id, ip)
    return RedirectResponse(urls.account(), status_code=303)


@router.post("/account/password", response_class=HTMLResponse)
def change_password_page(
    request: Request,
    services: ServicesDep,
    templates: TemplatesDep,
    user: BrowserUser,
    ip: ClientIP,
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
    revoke_tokens: Annotated[bool, Form()] = False,
) -> Response:
    person = _signed_in(user)
    assert person.id is not None
    context = _account_context(services, person)
    # Counted with the sign-ins at this name and address: a stolen session guesses no faster.
    attempt = throttle.Attempt(name=person.name, address=ip)
    checked = throttle.check_password(services.db, attempt, current)
    if checked.wait:
        context["password_error"] = throttle.wait_message(checked.wait)
        return templates.TemplateResponse(
            request,
            "account.html",
            context,
            status_code=429,
            headers={"Retry-After": str(math.ceil(checked.wait))},
        )
    if checked.user is None:
        context["password_error"] = "The current password is not right."
        return templates.TemplateResponse(request, "account.html", context, status_code=422)
    try:
        accounts.set_password(
            services.db, user_id=person.id, password=new, revoke_tokens=revoke_tokens
        )
    except accounts.AccountError as exc:
        context["password_error"] = f"New password: {exc.message}."
        return templates.TemplateResponse(request, "account.html", context, status_code=422)
    audit.record(
        services.db,
        action=audit.Action.PASSWORD_CHANGED,
        user=person,
        ip=ip,
        detail="API tokens revoked" if revoke_tokens else "",
    )
    # The new password signed every session out, this one too.
    return RedirectResponse(urls.sign_in(), status_code=303)


def _revoke(services: ServicesDep, person: User, token_id: int, ip: str | None) -> None:
    assert person.id is not None
    if not accounts.revoke_api_token(services.db, user_id=person.id, token_id=token_id):
        raise NotFoundError(f"You have no live token {token_id}.")
    audit.record(
        services.db, action=audit.Action.TOKEN_REVOKED, user=person, ip=ip, detail=str(token_id)
    )


# --- The same over JSON ----------------------------------------------------------------


class Me(BaseModel):
    name: str | None
    is_admin: bool
    sign_in: bool
    daily_budget: float | None
    monthly_budget: float | None
    spent_today: float
    spent_this_month: float


class TokenCreate(BaseModel):
    model_config = ConfigDict(strict=True)

    # Not only spaces: the schema says so, create_api_token refuses it.
    name: WordedLine = Field(min_length=1, max_length=80)


class TokenPublic(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class NewTokenPublic(TokenPublic):
    token: str = Field(description="Shown this once; keep it somewhere safe")


@api_router.get("/me", response_model=Me)
def me(request: Request, services: ServicesDep, user: CurrentUser) -> Me:
    if user is None:
        return Me(
            name=None,
            is_admin=True,
            sign_in=False,
            daily_budget=None,
            monthly_budget=None,
            spent_today=0,
            spent_this_month=0,
        )
    assert user.id is not None
    with services.db.read() as session:
        spend = budgets.spend_of(session, user_id=user.id, now=utcnow())
    return Me(
        name=user.name,
        is_admin=user.is_admin,
        sign_in=True,
        daily_budget=user.daily_budget,
        monthly_budget=user.monthly_budget,
        spent_today=spend.today,
        spent_this_month=spend.this_month,
    )


@api_router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(services: ServicesDep, user: CurrentUser) -> list[TokenPublic]:
    person = _signed_in(user)
    assert person.id is not None
    return [
        TokenPublic.model_validate(token, from_attributes=True)
        for token in accounts.list_api_tokens(services.db, user_id=person.id)
    ]


@api_router.post("/tokens", response_model=NewTokenPublic, status_code=201)
def create_token(
    body: TokenCreate, services: ServicesDep, user: BrowserUser, ip: ClientIP
) -> NewTokenPublic:
    """Make an API token, signed in with a browser: a token cannot make another (403)."""
    person = _signed_in(user)
    assert person.id is not None
    try:
        new = accounts.create_api_token(services.db, user_id=person.id, name=body.name)
    except accounts.AccountError as exc:
        raise InvalidParameters({exc.field: exc.message}) from None
    audit.record(
        services.db, action=audit.Action.TOKEN_CREATED, user=person, ip=ip, detail=body.name
    )
    public = TokenPublic.model_validate(new.token, from_attributes=True)
    return NewTokenPublic(**public.model_dump(), token=new.secret)


class SignInForToken(BaseModel):
    """A name and password, exchanged for a new API token (the command line's `login`)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: Line = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    token_name: WordedLine = Field("command line", min_length=1, max_length=80)


@api_router.post(
    "/sign-in",
    response_model=NewTokenPublic,
    status_code=201,
    responses={429: {"description": "Too many wrong passwords: try again after Retry-After"}},
)
def sign_in_for_token(body: SignInForToken, services: ServicesDep, ip: ClientIP) -> NewTokenPublic:
    """A new API token for a name and password: slowed down after failures and audited as
    the sign-in page is. The token acts with its owner's rights until revoked."""
    checked = _check_password(services, name=body.name, password=body.password, ip=ip)
    if isinstance(checked, float):
        raise TooManyAttempts(throttle.wait_message(checked), retry_after=checked)
    if checked is None:
        raise WrongPassword("Wrong name or password.")
    assert checked.id is not None
    try:
        new = accounts.create_api_token(services.db, user_id=checked.id, name=body.token_name)
    except accounts.AccountError as exc:
        raise InvalidParameters({exc.field: exc.message}) from None
    audit.record(
        services.db, action=audit.Action.TOKEN_CREATED, user=checked, ip=ip, detail=body.token_name
    )
    public = TokenPublic.model_validate(new.token, from_attributes=True)
    return NewTokenPublic(**public.model_dump(), token=new.secret)


@api_router.delete("/tokens/{token_id}", status_code=204)
def delete_token(token_id: int, services: ServicesDep, user: CurrentUser, ip: ClientIP) -> Response:
    _revoke(services, _signed_in(user), token_id, ip)
    return Response(status_code=204)

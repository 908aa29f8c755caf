"""Sign-up, sign-in, sign-out and the account page (§12; ADR 0018, 0019).

Every rule (password policy, rate limits, rotation, ending sessions) is the
core's ``Accounts`` use case; these handlers read forms, set or clear the
session cookie and render. A successful form post answers ``303 See Other``
(so reloading never re-submits), except where a secret is shown once (a new
API token), which is rendered in the answer to the post itself and never
stored.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath

from fleetprompt_core.base.errors import Unauthenticated, ValidationFailed
from fleetprompt_http.handling import services_of
from fleetprompt_http.security_headers import ContentPolicy, declare
from fleetprompt_http.web.rendering import FormErrors, form_dict, page, see_other
from fleetprompt_http.web.visitor import (
    Visitor,
    check_unsafe,
    end_session_cookie,
    run,
    session_cookie,
)

__all__ = ["AccountPages", "safe_next"]

_NOTICES: Final = {
    "name": "Your display name was saved.",
    "password": "Your password was changed; every other session has been signed out.",
    "revoked": "The token was revoked.",
    "welcome": "Welcome! Your account is ready.",
}


def safe_next(value: object, default: str = "/") -> str:
    """A local path to return to after sign-in (never another site)."""
    if (
        isinstance(value, str)
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and len(value) <= 2000
        and value.isprintable()
    ):
        return value
    return default


class AccountPages(Controller):
    path = "/"
    opt = declare(content=ContentPolicy.PAGE)
    include_in_schema = False

    # ------------------------------------------------------------------ sign-up

    @get("/signup", name="signup")
    async def signup_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        signup = services_of(request).web.signup
        return await run(
            request,
            lambda v: page(
                request,
                v,
                "signup.html",
                {"form": {}, "errors": FormErrors(), "open": signup},
                status=200 if signup else 403,
            ),
        )

    @post("/signup", name="signup_post")
    async def signup(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_dict(request)
        services = services_of(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            payload = {
                key: form.get(key, "") for key in ("username", "email", "displayName", "password")
            }
            try:
                signed_in = visitor.app.accounts.sign_up(
                    visitor.call, payload, previous_session=visitor.session_token
                )
            except ValidationFailed as error:
                kept = {k: v for k, v in form.items() if k != "password"}
                return page(
                    request,
                    visitor,
                    "signup.html",
                    {"form": kept, "errors": FormErrors(error.fields), "open": True},
                    status=400,
                )
            response = see_other("/account?done=welcome")
            response.set_cookie(session_cookie(services, signed_in))
            return response

        return await run(request, work)

    # ------------------------------------------------------------------ sign-in, sign-out

    @get("/signin", name="signin")
    async def signin_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        next_path = safe_next(request.query_params.get("next"))
        return await run(
            request,
            lambda v: page(
                request,
                v,
                "signin.html",
                {"identifier": "", "next": next_path, "failed": None},
            ),
        )

    @post("/signin", name="signin_post")
    async def signin(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_dict(request)
        services = services_of(request)
        next_path = safe_next(form.get("next"))

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            try:
                signed_in = visitor.app.accounts.sign_in(
                    visitor.call,
                    form.get("identifier", ""),
                    form.get("password", ""),
                    previous_session=visitor.session_token,
                )
            except Unauthenticated as error:
                return page(
                    request,
                    visitor,
                    "signin.html",
                    {
                        "identifier": form.get("identifier", ""),
                        "next": next_path,
                        "failed": error.message,
                    },
                    status=401,
                )
            response = see_other(next_path)
            response.set_cookie(session_cookie(services, signed_in))
            return response

        return await run(request, work)

    @post("/signout", name="signout")
    async def signout(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_dict(request)
        services = services_of(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            if visitor.session_token is not None:
                visitor.app.accounts.sign_out(visitor.session_token)
            response = see_other("/")
            response.set_cookie(end_session_cookie(services))
            return response

        return await run(request, work)

    # ------------------------------------------------------------------ the account page

    @get("/account", name="account")
    async def account(self, request: Request[Any, Any, Any]) -> Response[Any]:
        notice = _NOTICES.get(request.query_params.get("done", ""))
        return await run(request, lambda v: _account_page(request, v, notice=notice))

    @post("/account/name", name="account_name")
    async def account_name(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            try:
                visitor.app.accounts.set_display_name(visitor.call, form.get("displayName", ""))
            except ValidationFailed as error:
                return _account_page(request, visitor, errors=FormErrors(error.fields), form=form)
            return see_other("/account?done=name")

        return await run(request, work)

    @post("/account/password", name="account_password")
    async def account_password(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_dict(request)
        services = services_of(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            try:
                signed_in = visitor.app.accounts.change_password(
                    visitor.call, form.get("currentPassword", ""), form.get("newPassword", "")
                )
            except ValidationFailed as error:
                return _account_page(request, visitor, errors=FormErrors(error.fields))
            response = see_other("/account?done=password")
            response.set_cookie(session_cookie(services, signed_in))
            return response

        return await run(request, work)

    @post("/account/tokens", name="account_tokens")
    async def create_token(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            days = form.get("expiresInDays", "").strip()
            try:
                issued = visitor.app.credentials.issue_own_api_token(
                    visitor.call,
                    name=form.get("name", "").strip() or None,
                    expires_in_days=int(days)
                    if days.isascii() and days.isdigit()
                    else days or None,
                )
            except ValidationFailed as error:
                return _account_page(request, visitor, errors=FormErrors(error.fields), form=form)
            return _account_page(request, visitor, issued=issued)

        return await run(request, work)

    @post("/account/tokens/{token_id:str}/revoke", name="account_token_revoke")
    async def revoke_token(
        self, request: Request[Any, Any, Any], token_id: FromPath[str]
    ) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            visitor.app.credentials.revoke_own_api_token(visitor.call, token_id)
            return see_other("/account?done=revoked")

        return await run(request, work)


def _account_page(
    request: Request[Any, Any, Any],
    visitor: Visitor,
    *,
    notice: str | None = None,
    errors: FormErrors | None = None,
    form: dict[str, str] | None = None,
    issued: object = None,
) -> Response[Any]:
    if visitor.me is None:
        raise Unauthenticated()
    tokens = visitor.app.credentials.list_own_api_tokens(visitor.call)
    now = visitor.app.runtime.clock.now_ms()
    return page(
        request,
        visitor,
        "account.html",
        {
            "notice": notice,
            "errors": errors or FormErrors(),
            "form": form or {},
            "tokens": tokens,
            "now": now,
            "issued": issued,
        },
        status=400 if errors else 200,
    )

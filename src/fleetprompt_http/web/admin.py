"""The admin page (§12, A1–A4 in pages): moderation, roles, verification, audit log.

Users are named by username (external id) or e-mail here, and looked up by
the core (admins only); every change is the core's admin use case with the
idempotency key its form carries.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Controller, Request, Response, get, post

from fleetprompt_core.base.enums import VerificationStatus
from fleetprompt_core.base.errors import DomainError, Unauthenticated, ValidationFailed
from fleetprompt_http.security_headers import ContentPolicy, declare
from fleetprompt_http.web.rendering import FormErrors, form_dict, page, see_other
from fleetprompt_http.web.visitor import Visitor, check_unsafe, run

__all__ = ["AdminPages"]

_FILTERS: Final = ("type", "listingId", "actorUserId")
_NOTICES: Final = {
    "suspended": "The listing was suspended.",
    "unsuspended": "The suspension was lifted; the listing is unlisted.",
    "roles": "The user's roles were changed.",
    "verification": "The publisher's verification was recorded.",
}


def _admin_page(
    request: Request[Any, Any, Any],
    visitor: Visitor,
    *,
    notice: str | None = None,
    errors: dict[str, FormErrors] | None = None,
    form: dict[str, str] | None = None,
    failure: str | None = None,
) -> Response[Any]:
    if not visitor.signed_in:
        raise Unauthenticated()
    params: dict[str, object] = {"limit": "25"}
    for key in (*_FILTERS, "cursor"):
        value = request.query_params.get(key)
        if value:
            params[key] = value
    audit = visitor.app.admin.read_audit(visitor.call, params)
    return page(
        request,
        visitor,
        "admin.html",
        {
            "events": audit.items,
            "next_cursor": audit.next_cursor,
            "filters": {k: request.query_params.get(k, "") for k in _FILTERS},
            "notice": notice,
            "failure": failure,
            "errors": errors or {},
            "form": form or {},
            "statuses": [s.value for s in VerificationStatus],
        },
        status=400 if (errors or failure) else 200,
    )


class AdminPages(Controller):
    path = "/admin"
    opt = declare(content=ContentPolicy.PAGE)
    include_in_schema = False

    @get("/", name="admin")
    async def admin(self, request: Request[Any, Any, Any]) -> Response[Any]:
        notice = _NOTICES.get(request.query_params.get("done", ""))
        return await run(request, lambda v: _admin_page(request, v, notice=notice))

    @post("/moderation", name="admin_moderation")
    async def moderation(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            admin = visitor.app.admin
            listing_id = form.get("listingId", "").strip()
            reason = form.get("reason", "").strip() or None
            key = form.get("key", "")
            try:
                if form.get("action") == "unsuspend":
                    admin.unsuspend_listing(
                        visitor.call, listing_id, {"reason": reason}, idempotency_key=key
                    )
                    done = "unsuspended"
                else:
                    admin.suspend_listing(
                        visitor.call, listing_id, {"reason": reason}, idempotency_key=key
                    )
                    done = "suspended"
            except ValidationFailed as error:
                return _admin_page(
                    request, visitor, errors={"moderation": FormErrors(error.fields)}, form=form
                )
            except DomainError as error:
                if error.code.value in ("UNAUTHORIZED", "UNAUTHENTICATED"):
                    raise
                return _admin_page(request, visitor, failure=error.message, form=form)
            return see_other(f"/admin?done={done}")

        return await run(request, work)

    @post("/roles", name="admin_roles")
    async def roles(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            app = visitor.app
            try:
                user = app.storefront.find_user(visitor.call, form.get("user", ""))
                verb = "revoke" if form.get("action") == "revoke" else "grant"
                app.admin.change_roles(
                    visitor.call,
                    user.user_id,
                    {verb: [form.get("role", "")]},
                    idempotency_key=form.get("key", ""),
                )
            except ValidationFailed as error:
                return _admin_page(
                    request, visitor, errors={"roles": FormErrors(error.fields)}, form=form
                )
            except DomainError as error:
                if error.code.value in ("UNAUTHORIZED", "UNAUTHENTICATED"):
                    raise
                return _admin_page(request, visitor, failure=error.message, form=form)
            return see_other("/admin?done=roles")

        return await run(request, work)

    @post("/verification", name="admin_verification")
    async def verification(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await form_dict(request)

        def work(visitor: Visitor) -> Response[Any]:
            check_unsafe(request, visitor, form)
            app = visitor.app
            try:
                user = app.storefront.find_user(visitor.call, form.get("user", ""))
                app.admin.set_verification(
                    visitor.call,
                    user.user_id,
                    {
                        "status": form.get("status", ""),
                        "reason": form.get("reason", "").strip() or None,
                    },
                    idempotency_key=form.get("key", ""),
                )
            except ValidationFailed as error:
                return _admin_page(
                    request, visitor, errors={"verification": FormErrors(error.fields)}, form=form
                )
            except DomainError as error:
                if error.code.value in ("UNAUTHORIZED", "UNAUTHENTICATED"):
                    raise
                return _admin_page(request, visitor, failure=error.message, form=form)
            return see_other("/admin?done=verification")

        return await run(request, work)

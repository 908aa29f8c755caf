"""A1–A4: moderation, roles, publisher verification and the audit log (admins only)."""

from __future__ import annotations

from typing import Annotated, Any, Final, TypedDict

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, QueryParameter

from fleetprompt_core import (
    ReasonPayload,
    RoleChangePayload,
    SuspendPayload,
    VerificationPayload,
)
from fleetprompt_core.base.errors import ErrorCode
from fleetprompt_core.policies.pagination import DEFAULT_LIMIT, MAX_LIMIT
from fleetprompt_http import wire
from fleetprompt_http.handling import call_use_case, query, respond, services_of, write
from fleetprompt_http.openapi import AUDIT, documented
from fleetprompt_http.routes.docs import KEY_REQUIRED, errors
from fleetprompt_http.routes.publisher import ListingEnvelope, ProfileEnvelope

__all__ = ["AdminController"]

_PRIVATE: Final = (ErrorCode.UNAUTHENTICATED, ErrorCode.UNAUTHORIZED)
_WRITE: Final = (
    *_PRIVATE,
    ErrorCode.NOT_FOUND,
    ErrorCode.CONFLICT,
    ErrorCode.TOO_LARGE,
    ErrorCode.UNSUPPORTED,
)


class UserEnvelope(TypedDict):
    user: wire.UserWire


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]  # noqa: RUF012 - Litestar reads a class attribute

    @post(
        "/listings/{listing_id:str}/suspend",
        summary="Suspend a listing (hidden, not installable), with a reason",
        status_code=200,
        responses=errors(*_WRITE),
        operation_class=documented(SuspendPayload, idempotency="required"),
    )
    async def suspend(
        self,
        request: Request[Any, Any, Any],
        listing_id: FromPath[str],
        key: Annotated[str | None, KEY_REQUIRED] = None,
    ) -> Response[ListingEnvelope]:
        admin = services_of(request).app.admin
        return await write(
            request,
            lambda call, body: admin.suspend_listing(call, listing_id, body, idempotency_key=key),
            lambda v: {"listing": wire.publisher_listing(v)},
        )

    @post(
        "/listings/{listing_id:str}/unsuspend",
        summary="Lift a suspension (the listing becomes unlisted)",
        status_code=200,
        responses=errors(*_WRITE),
        operation_class=documented(ReasonPayload, body_required=False, idempotency="required"),
    )
    async def unsuspend(
        self,
        request: Request[Any, Any, Any],
        listing_id: FromPath[str],
        key: Annotated[str | None, KEY_REQUIRED] = None,
    ) -> Response[ListingEnvelope]:
        admin = services_of(request).app.admin
        return await write(
            request,
            lambda call, body: admin.unsuspend_listing(call, listing_id, body, idempotency_key=key),
            lambda v: {"listing": wire.publisher_listing(v)},
        )

    @post(
        "/users/{user_id:str}/roles",
        summary="Grant or revoke the publisher and admin roles",
        status_code=200,
        responses=errors(*_WRITE),
        operation_class=documented(RoleChangePayload, idempotency="required"),
    )
    async def change_roles(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[str],
        key: Annotated[str | None, KEY_REQUIRED] = None,
    ) -> Response[UserEnvelope]:
        admin = services_of(request).app.admin
        return await write(
            request,
            lambda call, body: admin.change_roles(call, user_id, body, idempotency_key=key),
            lambda v: {"user": wire.user(v)},
        )

    @post(
        "/publishers/{publisher_id:str}/verification",
        summary="Set a publisher's verification (informational; grants nothing)",
        status_code=200,
        responses=errors(*_WRITE),
        operation_class=documented(VerificationPayload, idempotency="required"),
    )
    async def set_verification(
        self,
        request: Request[Any, Any, Any],
        publisher_id: FromPath[str],
        key: Annotated[str | None, KEY_REQUIRED] = None,
    ) -> Response[ProfileEnvelope]:
        admin = services_of(request).app.admin
        return await write(
            request,
            lambda call, body: admin.set_verification(
                call, publisher_id, body, idempotency_key=key
            ),
            lambda v: {"profile": wire.publisher_profile(v)},
        )

    @get(
        "/audit",
        summary="The audit log, newest first",
        responses=errors(*_PRIVATE),
        operation_class=documented(query=AUDIT),
    )
    async def audit(
        self,
        request: Request[Any, Any, Any],
        type_: Annotated[str | None, QueryParameter(name="type", description="Event type.")] = None,
        listing_id: Annotated[str | None, QueryParameter(name="listingId")] = None,
        actor_user_id: Annotated[str | None, QueryParameter(name="actorUserId")] = None,
        cursor: Annotated[str | None, QueryParameter(description="Opaque cursor.")] = None,
        limit: Annotated[
            str | None, QueryParameter(description=f"1..{MAX_LIMIT} (default {DEFAULT_LIMIT}).")
        ] = None,
    ) -> Response[wire.AuditEventPage]:
        params = query(request)
        admin = services_of(request).app.admin
        page = await call_use_case(request, lambda call: admin.read_audit(call, params))
        return respond(wire.page(page, wire.audit_event))

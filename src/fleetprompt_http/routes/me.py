"""``GET /v1/me``: who the credentials of a request sign in as.

A client checks its token with it, and learns its user id and roles, before
calling anything else. An anonymous request answers ``UNAUTHENTICATED``.
"""

from __future__ import annotations

from typing import Any, TypedDict

from litestar import Request, Response, get

from fleetprompt_core.base.errors import ErrorCode
from fleetprompt_http import wire
from fleetprompt_http.handling import call_use_case, respond, services_of
from fleetprompt_http.openapi import documented
from fleetprompt_http.routes.docs import errors

__all__ = ["me"]


class MeEnvelope(TypedDict):
    user: wire.UserWire


@get(
    "/v1/me",
    summary="The signed-in user",
    description="The user the request's credentials sign in as, with its roles.",
    tags=["account"],
    responses=errors(ErrorCode.UNAUTHENTICATED, ErrorCode.RATE_LIMITED),
    operation_class=documented(),
)
async def me(request: Request[Any, Any, Any]) -> Response[MeEnvelope]:
    credentials = services_of(request).app.credentials
    user = await call_use_case(request, credentials.me)
    return respond({"user": wire.user(user)})

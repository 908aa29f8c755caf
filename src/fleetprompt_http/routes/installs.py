"""I1–I5: a buyer's install intents and their single-use install tokens."""

from __future__ import annotations

from typing import Annotated, Any, Final, TypedDict

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, QueryParameter

from fleetprompt_core import CancelIntentPayload, NewIntentPayload, TokenPayload
from fleetprompt_core.base.enums import InstallIntentStatus
from fleetprompt_core.base.errors import ErrorCode
from fleetprompt_http import wire
from fleetprompt_http.handling import call_use_case, query, respond, services_of, write
from fleetprompt_http.openapi import PAGE, choice, documented
from fleetprompt_http.routes.docs import CURSOR, KEY_REQUIRED, LIMIT, errors

__all__ = ["InstallController"]

_READ: Final = (ErrorCode.UNAUTHENTICATED,)
_WRITE: Final = (
    ErrorCode.UNAUTHENTICATED,
    ErrorCode.NOT_FOUND,
    ErrorCode.CONFLICT,
    ErrorCode.RATE_LIMITED,
    ErrorCode.TOO_LARGE,
    ErrorCode.UNSUPPORTED,
)


class IntentEnvelope(TypedDict):
    installIntent: wire.InstallIntentWire


class InstallController(Controller):
    path = "/v1/install/intents"
    tags = ["install"]  # noqa: RUF012 - Litestar reads a class attribute

    @post(
        "/",
        summary="Turn a published release into an install intent",
        status_code=201,
        responses=errors(*_WRITE),
        operation_class=documented(NewIntentPayload, location=True, idempotency="required"),
    )
    async def create_intent(
        self, request: Request[Any, Any, Any], key: Annotated[str | None, KEY_REQUIRED] = None
    ) -> Response[IntentEnvelope]:
        installs = services_of(request).app.installs
        return await write(
            request,
            lambda call, body: installs.create_intent(call, body, idempotency_key=key),
            lambda v: {"installIntent": wire.install_intent(v)},
            201,
            location=lambda v: f"{self.path}/{v.install_intent_id}",
        )

    @get(
        "/",
        summary="The caller's install intents, newest first",
        responses=errors(*_READ),
        operation_class=documented(query={**PAGE, "status": choice(InstallIntentStatus)}),
    )
    async def list_intents(
        self,
        request: Request[Any, Any, Any],
        status: Annotated[
            str | None,
            QueryParameter(description="created | token_issued | redeemed | expired | canceled"),
        ] = None,
        cursor: Annotated[str | None, CURSOR] = None,
        limit: Annotated[str | None, LIMIT] = None,
    ) -> Response[wire.InstallIntentPage]:
        params = query(request)
        installs = services_of(request).app.installs
        page = await call_use_case(request, lambda call: installs.list_intents(call, params))
        return respond(wire.page(page, wire.install_intent))

    @get(
        "/{install_intent_id:str}",
        summary="One of the caller's install intents",
        responses=errors(*_READ, ErrorCode.NOT_FOUND),
        operation_class=documented(),
    )
    async def get_intent(
        self, request: Request[Any, Any, Any], install_intent_id: FromPath[str]
    ) -> Response[IntentEnvelope]:
        installs = services_of(request).app.installs
        intent = await call_use_case(
            request, lambda call: installs.get_intent(call, install_intent_id)
        )
        return respond({"installIntent": wire.install_intent(intent)})

    @post(
        "/{install_intent_id:str}/token",
        summary="Issue a short-lived single-use install token (revokes earlier ones)",
        description="The raw token is in this answer only; a replay answers `installToken: null`.",
        status_code=201,
        responses=errors(*_WRITE),
        operation_class=documented(TokenPayload, body_required=False, idempotency="required"),
    )
    async def issue_token(
        self,
        request: Request[Any, Any, Any],
        install_intent_id: FromPath[str],
        key: Annotated[str | None, KEY_REQUIRED] = None,
    ) -> Response[wire.IssuedTokenWire]:
        installs = services_of(request).app.installs
        return await write(
            request,
            lambda call, body: installs.issue_token(
                call, install_intent_id, body, idempotency_key=key
            ),
            wire.issued_token,
            201,
        )

    @post(
        "/{install_intent_id:str}/cancel",
        summary="Cancel an install intent (revokes its tokens)",
        status_code=200,
        responses=errors(*_WRITE),
        operation_class=documented(
            CancelIntentPayload, body_required=False, idempotency="required"
        ),
    )
    async def cancel_intent(
        self,
        request: Request[Any, Any, Any],
        install_intent_id: FromPath[str],
        key: Annotated[str | None, KEY_REQUIRED] = None,
    ) -> Response[IntentEnvelope]:
        installs = services_of(request).app.installs
        return await write(
            request,
            lambda call, body: installs.cancel_intent(
                call, install_intent_id, body, idempotency_key=key
            ),
            lambda v: {"installIntent": wire.install_intent(v)},
        )

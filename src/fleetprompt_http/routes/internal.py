"""X1: server-to-server redemption of an install token (§7).

The handler reads the delegation headers and the browser markers from the raw
header list (:mod:`fleetprompt_http.redeem`) and passes them, with the exact
raw body bytes, to the core, which checks the HMAC signature, timestamp
window, source allowlist, duplicates and browser context before it parses
anything. The access log names the caller only once the core has verified the
source. No CORS headers are ever sent here (the server configures no CORS at
all).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, post
from litestar.exceptions import HTTPException
from litestar.params import HeaderParameter

from fleetprompt_core import RedeemPayload
from fleetprompt_core.base.errors import ErrorCode
from fleetprompt_core.services.runtime import Outcome
from fleetprompt_core.services.views import Redemption
from fleetprompt_http import wire
from fleetprompt_http.context import request_id_of, set_caller
from fleetprompt_http.handling import (
    client_of,
    json_bytes,
    run_use_case,
    services_of,
    written,
)
from fleetprompt_http.openapi import REDEEM_HEADERS, documented
from fleetprompt_http.redeem import read_redeem_headers
from fleetprompt_http.routes.docs import errors

__all__ = ["InternalController"]


class InternalController(Controller):
    path = "/v1/internal/install"
    tags = ["internal"]  # noqa: RUF012 - Litestar reads a class attribute

    @post(
        "/redeem",
        summary="Redeem an install token (target system servers only, HMAC-signed)",
        description="Body `{installToken, targetSystem}`. Signature: `v1=<hex HMAC-SHA256(key, "
        "raw body)>`; several comma-separated values may be sent during a key rotation. "
        "Every authentication failure is the same `UNAUTHENTICATED`; every token that "
        "cannot be redeemed is the same `NOT_FOUND`. With an `Idempotency-Key`, the same "
        "source sending the same body with the same key within 15 minutes gets the stored "
        "answer again (`Idempotent-Replayed: true`); a redemption that cannot finish within "
        "the server's deadline changes nothing and answers `UNAVAILABLE`.",
        status_code=200,
        responses=errors(
            ErrorCode.UNAUTHENTICATED,
            ErrorCode.NOT_FOUND,
            ErrorCode.VALIDATION_FAILED,
            ErrorCode.CONFLICT,
            ErrorCode.RATE_LIMITED,
            ErrorCode.TOO_LARGE,
            ErrorCode.UNSUPPORTED,
            not_offered="this server has no redeem secret configured.",
        ),
        operation_class=documented(
            RedeemPayload, headers=REDEEM_HEADERS, security="none", idempotency="accepted"
        ),
    )
    async def redeem(
        self,
        request: Request[Any, Any, Any],
        source: Annotated[
            str | None,
            HeaderParameter(
                name="X-WHS-Delegation-Source",
                required=False,
                description="The calling system, on the allowlist.",
            ),
        ] = None,
        timestamp: Annotated[
            str | None,
            HeaderParameter(
                name="X-WHS-Delegation-Timestamp",
                required=False,
                description="Epoch milliseconds, within ±5 minutes.",
            ),
        ] = None,
        signature: Annotated[
            str | None,
            HeaderParameter(
                name="X-WHS-Delegation-Signature",
                required=False,
                description="`v1=<hex>`; comma-separated values accepted.",
            ),
        ] = None,
        key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key",
                required=False,
                description="Optional: lets the target system retry a redemption whose "
                "answer it lost (the same body, within 15 minutes).",
            ),
        ] = None,
    ) -> Response[wire.RedemptionWire]:
        services = services_of(request)
        verifier = services.verifier
        if verifier is None:
            raise HTTPException(status_code=501)
        raw = await json_bytes(request)  # exact bytes: the signature covers them
        # The parameters above document the headers; the values are read from the
        # raw list, where a duplicated header is still visible.
        del source, timestamp, signature
        read = read_redeem_headers(request.scope["headers"])
        redeemer = services.app.redemption
        # The deadline runs from the request's arrival, waiting for a thread (or, inline,
        # for the requests ahead of it on the event loop) included.
        deadline_ms = services.app.runtime.clock.now_ms() + services.redeem_deadline_ms
        request_id = request_id_of(request.scope)
        scope = request.scope
        client = client_of(request)

        def run() -> Outcome[Redemption]:
            verified = redeemer.verify(
                verifier,
                body=raw,
                source=read.source,
                timestamp=read.timestamp,
                signature=read.signature,
                browser_context=read.browser_context,
                duplicate_header=read.duplicate_header,
                client=client,
            )
            set_caller(scope, "source:" + verified)
            return redeemer.redeem_body(
                verified,
                raw,
                request_id=request_id,
                idempotency_key=key,
                deadline_ms=deadline_ms,
            )

        # A few statements by key, bounded by the database's own timeouts: on SQLite it
        # runs on the event loop, without the thread hop (ADR 0036).
        return written(await run_use_case(services, run, inline=True), wire.redemption)

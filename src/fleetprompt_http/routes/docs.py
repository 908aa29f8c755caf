"""OpenAPI documentation shared by the route handlers: the error responses."""

from __future__ import annotations

from typing import Final

from litestar.openapi.datastructures import ResponseSpec

from fleetprompt_core.domain.errors import ErrorCode
from fleetprompt_http.errors import STATUS
from fleetprompt_http.wire import ErrorEnvelope

__all__ = ["errors"]

_WHEN: Final = {
    ErrorCode.UNAUTHENTICATED: "No credentials, or credentials that prove nothing.",
    ErrorCode.UNAUTHORIZED: "The caller lacks the role this endpoint needs.",
    ErrorCode.NOT_FOUND: "No such resource, or one the caller may not see.",
    ErrorCode.VALIDATION_FAILED: "Invalid input; `details.fields` lists every failing field.",
    ErrorCode.CONFLICT: "Conflicts with the resource's state or an idempotency key in use.",
    ErrorCode.RATE_LIMITED: "Too many requests; retry after `Retry-After` seconds.",
    ErrorCode.TOO_LARGE: "The body exceeds 256 KiB.",
    ErrorCode.UNSUPPORTED: "The body is not JSON.",
    ErrorCode.INTERNAL: "Unexpected failure; the envelope carries the request id.",
}
_ALWAYS: Final = (ErrorCode.VALIDATION_FAILED, ErrorCode.INTERNAL)


def errors(*codes: ErrorCode, not_offered: bool = False) -> dict[int, ResponseSpec]:
    """Response specs for ``codes`` plus the ones every endpoint may answer."""
    specs = {
        STATUS[code]: ResponseSpec(
            data_container=ErrorEnvelope, description=f"`{code.value}`: {_WHEN[code]}"
        )
        for code in (*codes, *_ALWAYS)
    }
    specs[405] = ResponseSpec(
        data_container=ErrorEnvelope, description="`UNSUPPORTED`: the path has no such method."
    )
    if not_offered:
        specs[501] = ResponseSpec(
            data_container=ErrorEnvelope,
            description="`UNSUPPORTED`: this server has no redeem secret configured.",
        )
    return specs

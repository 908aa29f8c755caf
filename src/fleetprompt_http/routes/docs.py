"""OpenAPI documentation shared by the route handlers: the error responses."""

from __future__ import annotations

from typing import Final

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import HeaderParameter, QueryParameter

from fleetprompt_core.base import limits
from fleetprompt_core.base.errors import ErrorCode
from fleetprompt_core.policies.pagination import DEFAULT_LIMIT, MAX_LIMIT
from fleetprompt_http.errors import METHOD_NOT_ALLOWED, STATUS
from fleetprompt_http.wire import ErrorEnvelope

__all__ = ["CURSOR", "KEY_ACCEPTED", "KEY_REQUIRED", "LIMIT", "errors"]


#: Parameter markers shared by the controllers (``openapi.documented`` adds the
#: exact schemas; the core validates the values).
KEY_REQUIRED: Final = HeaderParameter(
    name="Idempotency-Key",
    required=False,
    description=f"Required: 1..{limits.IDEMPOTENCY_KEY_MAX} printable ASCII characters; a "
    "retry with the same key "
    "and request replays the answer (`Idempotent-Replayed: true`).",
)
KEY_ACCEPTED: Final = HeaderParameter(
    name="Idempotency-Key", required=False, description="Optional idempotency key."
)
LIMIT: Final = QueryParameter(description=f"Page size, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT}).")
CURSOR: Final = QueryParameter(description="Opaque cursor from a previous page's `nextCursor`.")

_BODY_KIB: Final = limits.REQUEST_BODY_MAX_BYTES // 1024

_WHEN: Final = {
    ErrorCode.UNAUTHENTICATED: "No credentials, or credentials that prove nothing.",
    ErrorCode.UNAUTHORIZED: "The caller lacks the role this endpoint needs.",
    ErrorCode.NOT_FOUND: "No such resource, or one the caller may not see.",
    ErrorCode.VALIDATION_FAILED: "Invalid input; `details.fields` lists every failing field.",
    ErrorCode.CONFLICT: "Conflicts with the resource's state or an idempotency key in use.",
    ErrorCode.RATE_LIMITED: "Too many requests; retry after `Retry-After` seconds.",
    ErrorCode.TOO_LARGE: f"The body exceeds {_BODY_KIB} KiB.",
    ErrorCode.UNSUPPORTED: "The body is not JSON.",
    ErrorCode.INTERNAL: "Unexpected failure; the envelope carries the request id.",
    ErrorCode.UNAVAILABLE: "The database or a shared service is down or did not answer in "
    "time; nothing was done: retry after `Retry-After` seconds.",
}
_ALWAYS: Final = (ErrorCode.VALIDATION_FAILED, ErrorCode.INTERNAL, ErrorCode.UNAVAILABLE)
_EXAMPLE_MESSAGES: Final = {
    ErrorCode.UNAUTHENTICATED: "Authentication is required.",
    ErrorCode.UNAUTHORIZED: "This needs the publisher role.",
    ErrorCode.NOT_FOUND: "Listing not found.",
    ErrorCode.VALIDATION_FAILED: "The request is invalid.",
    ErrorCode.CONFLICT: "The request conflicts with the current state.",
    ErrorCode.RATE_LIMITED: "Too many requests.",
    ErrorCode.TOO_LARGE: f"The request body is too large ({_BODY_KIB} KiB at most).",
    ErrorCode.UNSUPPORTED: "Request bodies must be JSON (Content-Type: application/json).",
    ErrorCode.INTERNAL: "Internal error.",
    ErrorCode.UNAVAILABLE: "The service is temporarily unavailable.",
}


def _spec(code: ErrorCode, description: str, message: str | None = None) -> ResponseSpec:
    """An error response: the envelope, with a realistic example (no generated noise)."""
    details: dict[str, object] = (
        {"fields": [{"fieldName": "name", "message": "is required"}]}
        if code is ErrorCode.VALIDATION_FAILED
        else {}
    )
    example = {
        "error": {
            "code": code.value,
            "message": message or _EXAMPLE_MESSAGES[code],
            "requestId": "req_4f1c2a9e7b3d4c5a",
            "details": details,
        }
    }
    return ResponseSpec(
        data_container=ErrorEnvelope,
        description=description,
        generate_examples=False,
        examples=[Example(summary=code.value, value=example)],
    )


def errors(*codes: ErrorCode, not_offered: str | None = None) -> dict[int, ResponseSpec]:
    """Response specs for ``codes`` plus the ones every endpoint may answer.

    ``UNSUPPORTED`` among ``codes`` documents the wrong media type (415);
    ``not_offered`` says when the endpoint answers 501 for a feature not offered.
    """
    specs = {
        _status(code): _spec(code, f"`{code.value}`: {_WHEN[code]}") for code in (*codes, *_ALWAYS)
    }
    specs[405] = _spec(
        ErrorCode.UNSUPPORTED,
        "`UNSUPPORTED`: the path has no such method; `Allow` lists the ones it has.",
        METHOD_NOT_ALLOWED,
    )
    if not_offered:
        specs[501] = _spec(
            ErrorCode.UNSUPPORTED, f"`UNSUPPORTED`: {not_offered}", "This feature is not offered."
        )
    return specs


def _status(code: ErrorCode) -> int:
    return 415 if code is ErrorCode.UNSUPPORTED else STATUS[code]

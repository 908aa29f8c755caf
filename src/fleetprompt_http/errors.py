"""The one place where exceptions become the contract's error envelope (§5).

Domain errors carry their code and a client-safe message. Framework errors
(no such route, wrong method, body too large, unreadable JSON) get the code
their status means. Anything else is ``INTERNAL`` with a generic message: no
exception text, stack trace or SQL ever reaches a client, and the log line
names only the exception's type.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.types import ExceptionHandlersMap

from fleetprompt_core.base import limits
from fleetprompt_core.base.errors import DomainError, ErrorCode
from fleetprompt_http.context import request_id_of, set_reason
from fleetprompt_http.logs import log_event
from fleetprompt_http.wire import ErrorDetails, ErrorEnvelope

__all__ = [
    "METHOD_NOT_ALLOWED",
    "STATUS",
    "domain_envelope",
    "envelope",
    "error_response",
    "exception_handlers",
]

#: The status of each error code a use case raises (§5). A use case's
#: ``UNSUPPORTED`` means a feature this server does not offer (501); a wrong media
#: type (415) and a method a route does not have (405) come from the framework.
STATUS: Final[Mapping[ErrorCode, int]] = {
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.UNAUTHORIZED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.VALIDATION_FAILED: 400,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED: 501,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
}

#: The message of a 405 (a path without the method asked for).
METHOD_NOT_ALLOWED: Final = "This method is not supported on this path."

_FRAMEWORK: Final[Mapping[int, tuple[ErrorCode, str]]] = {
    400: (ErrorCode.VALIDATION_FAILED, "The request is invalid."),
    401: (ErrorCode.UNAUTHENTICATED, "Authentication is required."),
    403: (ErrorCode.UNAUTHORIZED, "You are not allowed to do this."),
    404: (ErrorCode.NOT_FOUND, "Not found."),
    405: (ErrorCode.UNSUPPORTED, METHOD_NOT_ALLOWED),
    409: (ErrorCode.CONFLICT, "The request conflicts with the current state."),
    413: (
        ErrorCode.TOO_LARGE,
        f"The request body is too large ({limits.REQUEST_BODY_MAX_BYTES // 1024} KiB at most).",
    ),
    415: (ErrorCode.UNSUPPORTED, "Request bodies must be JSON (Content-Type: application/json)."),
    429: (ErrorCode.RATE_LIMITED, "Too many requests."),
    501: (ErrorCode.UNSUPPORTED, "This feature is not offered by this server."),
    503: (ErrorCode.UNAVAILABLE, "The service is temporarily unavailable."),
}

_log = logging.getLogger("fleetprompt.http")


def envelope(
    code: ErrorCode,
    message: str,
    request_id: str,
    *,
    hint: str | None = None,
    fields: list[tuple[str, str]] | None = None,
) -> ErrorEnvelope:
    details: ErrorDetails = {}
    if hint:
        details["hint"] = hint
    if fields is not None:
        details["fields"] = [{"fieldName": name, "message": text} for name, text in fields]
    return {
        "error": {
            "code": code.value,
            "message": message,
            "requestId": request_id,
            "details": details,
        }
    }


def error_response(
    request_id: str,
    code: ErrorCode,
    message: str,
    *,
    status: int | None = None,
    hint: str | None = None,
    fields: list[tuple[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[ErrorEnvelope]:
    return Response(
        envelope(code, message, request_id, hint=hint, fields=fields),
        status_code=status or STATUS[code],
        media_type=MediaType.JSON,
        headers=dict(headers or {}),
    )


def domain_envelope(exc: DomainError, request_id: str) -> ErrorEnvelope:
    """The envelope of a domain error (the JSON API's body, the MCP tools' error result);
    an ``INTERNAL`` one is logged with the request id and nothing else."""
    fields = [(f.field_name, f.message) for f in exc.fields]
    if exc.code is ErrorCode.VALIDATION_FAILED and not fields:
        fields = [("body", exc.message)]
    if exc.code is ErrorCode.INTERNAL:
        log_event(
            _log, logging.ERROR, "internal error", {"requestId": request_id, "error": "storage"}
        )
    elif exc.code is ErrorCode.UNAVAILABLE:
        log_event(
            _log,
            logging.WARNING,
            "service unavailable",
            {"requestId": request_id, "error": exc.message},
        )
    return envelope(
        exc.code,
        exc.message,
        request_id,
        hint=exc.hint,
        fields=fields if exc.code is ErrorCode.VALIDATION_FAILED else None,
    )


def _domain(request: Request[Any, Any, Any], exc: DomainError) -> Response[ErrorEnvelope]:
    headers: dict[str, str] = {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    if exc.reason is not None:
        set_reason(request.scope, exc.reason)  # for the access log only
    return Response(
        domain_envelope(exc, request_id_of(request.scope)),
        status_code=STATUS[exc.code],
        media_type=MediaType.JSON,
        headers=headers,
    )


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorEnvelope]:
    status = exc.status_code
    code, message = _FRAMEWORK.get(status, (ErrorCode.INTERNAL, "Internal error."))
    if code is ErrorCode.INTERNAL:
        status = 500
    headers: dict[str, str] = {}
    if status == 405:
        allow = {name.lower(): value for name, value in (exc.headers or {}).items()}.get("allow")
        if allow:
            methods = {method.strip() for method in allow.split(",") if method.strip()}
            if "GET" in methods:
                methods.add("HEAD")  # the entry point answers HEAD wherever GET exists
            headers["Allow"] = ", ".join(sorted(methods))
    fields: list[tuple[str, str]] | None = None
    if code is ErrorCode.VALIDATION_FAILED:
        fields = _framework_fields(exc) or [("body", message)]
    return error_response(
        request_id_of(request.scope),
        code,
        message,
        status=status,
        fields=fields,
        headers=headers,
    )


def _framework_fields(exc: HTTPException) -> list[tuple[str, str]]:
    """Field names from a framework validation error (parameters only; never values)."""
    fields: list[tuple[str, str]] = []
    if isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                fields.append((item["key"], "is invalid"))
    return fields


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorEnvelope]:
    request_id = request_id_of(request.scope)
    # The type only: an exception's text may hold SQL, a path or a secret.
    log_event(
        _log,
        logging.ERROR,
        "unhandled exception",
        {"requestId": request_id, "error": type(exc).__name__},
    )
    return error_response(request_id, ErrorCode.INTERNAL, "Internal error.")


def exception_handlers() -> ExceptionHandlersMap:
    return {DomainError: _domain, HTTPException: _http, Exception: _unexpected}

"""Per-request values kept in the ASGI scope: the request id and the caller.

The request id is made once per request, by whoever asks first (the app's
entry point asks before anything else), so the ``X-Request-Id`` header, the
error envelope, the audit rows and the access log always agree.
"""

from __future__ import annotations

import secrets
from typing import Any, Final

from litestar.types import Scope

__all__ = [
    "caller_of",
    "new_request_id",
    "reason_of",
    "request_id_of",
    "set_caller",
    "set_reason",
]

_REQUEST_ID: Final = "fleetprompt.request_id"
_CALLER: Final = "fleetprompt.caller"
_REASON: Final = "fleetprompt.reason"


def new_request_id() -> str:
    """``req_`` and 20 random base-16 characters (80 bits): unguessable, log-safe."""
    return "req_" + secrets.token_hex(10)


def _state(scope: Scope) -> dict[str, Any]:
    return scope.setdefault("state", {})


def request_id_of(scope: Scope) -> str:
    state = _state(scope)
    request_id = state.get(_REQUEST_ID)
    if not isinstance(request_id, str):
        request_id = state[_REQUEST_ID] = new_request_id()
    return request_id


def set_caller(scope: Scope, caller: str) -> None:
    """Who made the request, for the access log (an external id or ``source:…``)."""
    _state(scope)[_CALLER] = caller


def caller_of(scope: Scope) -> str | None:
    caller = _state(scope).get(_CALLER)
    return caller if isinstance(caller, str) else None


def set_reason(scope: Scope, reason: str) -> None:
    """Why the request was refused, for the access log only (never for the client)."""
    _state(scope)[_REASON] = reason


def reason_of(scope: Scope) -> str | None:
    reason = _state(scope).get(_REASON)
    return reason if isinstance(reason, str) else None

"""``fleetprompt mcp``: the MCP server over stdio, for an assistant on the same machine.

Standard output carries the protocol only; logs go to standard error as the
server's redacted JSON lines. The caller is the personal API token in
``FLEETPROMPT_MCP_TOKEN`` (or an OIDC JWT), checked once at start (a bad one
stops the command) and resolved again on every call, so a revoked or expired
token stops working at once. Without one, only the public tools answer.
Anonymous rate limits count against the client ``stdio``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import attrs
from mcp.server.context import ServerRequestContext

from fleetprompt_core.base.errors import Unauthenticated
from fleetprompt_core.services import throttle
from fleetprompt_core.services.runtime import Call
from fleetprompt_http.context import new_request_id
from fleetprompt_http.handling import Services
from fleetprompt_http.mcp.server import Invocation, build_server

__all__ = ["STDIO_CLIENT", "StdioInvocations", "serve_stdio"]

T = TypeVar("T")

#: The client address of anonymous stdio calls (their rate-limit subject).
STDIO_CLIENT = "stdio"


@attrs.frozen
class _StdioInvocation:
    services: Services
    authorization: str | None = attrs.field(repr=False)
    request_id: str
    caller: str | None

    async def run(self, use_case: Callable[[Call], T]) -> T:
        authenticator, authorization, request_id = (
            self.services.authenticator,
            self.authorization,
            self.request_id,
        )

        runtime = self.services.app.runtime

        def run() -> T:
            principal = (
                None
                if authorization is None
                else throttle.authenticating(
                    runtime,
                    "client:" + STDIO_CLIENT,
                    lambda: authenticator.principal(authorization),
                )
            )
            return use_case(Call(principal, request_id, STDIO_CLIENT))

        return await self.services.threads.run(run)


@attrs.frozen
class StdioInvocations:
    """Every call as the configured credential, under a fresh request id."""

    services: Services
    authorization: str | None = attrs.field(repr=False)
    caller: str | None = None

    def begin(self, context: ServerRequestContext[Any, Any]) -> Invocation:
        return _StdioInvocation(self.services, self.authorization, new_request_id(), self.caller)


def serve_stdio(services: Services, *, token: str | None) -> None:
    """Serve until the client closes standard input; ``UNAUTHENTICATED`` for a bad token."""
    authorization = f"Bearer {token}" if token else None
    caller = None
    if authorization is not None:
        principal = services.authenticator.principal(authorization)
        if principal is None:  # pragma: no cover - a header always resolves or raises
            raise Unauthenticated()
        caller = principal.external_id
    server = build_server(services, StdioInvocations(services, authorization, caller))
    anyio.run(server.run_stdio_async)

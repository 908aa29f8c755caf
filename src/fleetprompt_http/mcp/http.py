"""``/mcp``: the MCP server over streamable HTTP, inside the Litestar app (contract §13).

The SDK's streamable HTTP transport runs stateless with JSON answers: every
POST is complete in itself, so any worker process of any host answers any
request (no session to pin, nothing kept between requests), like the JSON API.

Who calls is the ``Authorization`` header only (a cookie never authenticates
``/mcp``): the SDK's bearer backend asks :class:`CoreTokenVerifier`, which
resolves the credential through the server's own identity resolvers (personal
API tokens, OIDC JWTs). No header is an anonymous caller (public tools work,
signed-in tools answer ``UNAUTHENTICATED``); a header that proves nothing is
``401`` with ``WWW-Authenticate`` pointing at the RFC 9728 protected-resource
metadata, which is served at ``/.well-known/oauth-protected-resource/mcp``.

Requests whose ``Host`` is not this server's, or that carry a browser
``Origin`` other than the configured public one, are refused before anything
runs (DNS rebinding, cross-site use). Every refusal is the contract's envelope.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

import attrs
from litestar import Request, Response, asgi, get
from litestar import types as litestar_types
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.datastructures import Headers
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetprompt_core.base.errors import ErrorCode, Unauthenticated
from fleetprompt_core.ports import Principal
from fleetprompt_core.services import throttle
from fleetprompt_core.services.runtime import Call
from fleetprompt_http.clients import TrustedProxies
from fleetprompt_http.context import new_request_id, request_id_of, set_caller
from fleetprompt_http.errors import STATUS, envelope
from fleetprompt_http.handling import Services, ThreadGate
from fleetprompt_http.mcp.server import Invocation, build_server
from fleetprompt_http.settings import Settings

__all__ = [
    "MCP_PATH",
    "METADATA_PATH",
    "CoreTokenVerifier",
    "HttpInvocations",
    "McpEndpoint",
    "mcp_endpoint",
]

T = TypeVar("T")

MCP_PATH: Final = "/mcp"
#: RFC 9728 §3.1: the well-known prefix, then the resource's path.
METADATA_PATH: Final = "/.well-known/oauth-protected-resource" + MCP_PATH
#: ``Host`` values always answered: loopback, any port (a rebinding attack names its own host).
_LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "[::1]")
_REFUSED: Final = "The credentials are missing, invalid or expired."
#: The SDK's limit is 4 MiB; the API's is 256 KiB (§3).
MAX_BODY_BYTES: Final = 256 * 1024


# --------------------------------------------------------------------------- identity


#: The client address of the request being authenticated (set by the gate; the SDK's
#: verifier protocol passes the token only).
_client_address: ContextVar[str | None] = ContextVar("fleetprompt_mcp_client", default=None)


@attrs.frozen
class CoreTokenVerifier:
    """The SDK's ``TokenVerifier``: a bearer credential through the server's identity
    resolvers (API-token hash lookup or JWT check), in a worker thread, its failures counted
    per client address like the API's (too many: ``RATE_LIMITED`` without checking)."""

    services: Services

    async def verify_token(self, token: str) -> AccessToken | None:
        services = self.services
        subject = "client:" + (_client_address.get() or "unknown")

        def resolve() -> Principal | None:
            try:
                return throttle.authenticating(
                    services.app.runtime,
                    subject,
                    lambda: services.authenticator.principal(f"Bearer {token}"),
                )
            except Unauthenticated:
                return None

        principal = await services.threads.run(resolve)
        if principal is None:
            return None
        return AccessToken(
            token=token,
            client_id=principal.external_id,
            subject=principal.external_id,
            scopes=[],
            claims={"name": principal.display_name, "email": principal.email},
        )


def _principal(scope: Scope) -> Principal | None:
    user = scope.get("user")
    if not isinstance(user, AuthenticatedUser) or not user.access_token.subject:
        return None
    claims = user.access_token.claims or {}
    name, email = claims.get("name"), claims.get("email")
    return Principal(
        user.access_token.subject,
        display_name=name if isinstance(name, str) else None,
        email=email if isinstance(email, str) else None,
    )


@attrs.frozen
class _HttpInvocation:
    threads: ThreadGate
    call: Call

    @property
    def request_id(self) -> str:
        return self.call.request_id or ""

    @property
    def caller(self) -> str | None:
        return self.call.principal.external_id if self.call.principal else None

    async def run(self, use_case: Callable[[Call], T]) -> T:
        call = self.call
        return await self.threads.run(lambda: use_case(call))


@attrs.frozen
class HttpInvocations:
    """Callers of ``/mcp``: the verified bearer's principal, this request's id and client."""

    services: Services

    def begin(self, context: ServerRequestContext[Any, Any]) -> Invocation:
        request = context.request
        threads = self.services.threads
        if request is None:  # pragma: no cover - the HTTP transport always attaches it
            return _HttpInvocation(threads, Call(None, new_request_id()))
        scope: Scope = request.scope  # the request's own ASGI scope (stateless transport)
        principal = _principal(scope)
        if principal is not None:
            set_caller(cast(litestar_types.Scope, scope), principal.external_id)
        return _HttpInvocation(
            threads,
            Call(
                principal,
                request_id_of(cast(litestar_types.Scope, scope)),
                self.services.proxies.client(scope),
            ),
        )


# --------------------------------------------------------------------------- the gate


@attrs.frozen
class _Origins:
    """Which ``Host`` and ``Origin`` values ``/mcp`` answers, from the public URL."""

    public_url: str | None

    @property
    def public_host(self) -> str | None:
        return urlsplit(self.public_url).netloc.lower() if self.public_url else None

    def host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        host = host.lower()
        if host == self.public_host:
            return True
        name, _, port = host.partition("]") if host.startswith("[") else host.partition(":")
        if host.startswith("["):
            name, port = name + "]", port.removeprefix(":")
        return name in _LOOPBACK_HOSTS and (not port or port.isdigit())

    def origin_allowed(self, origin: str | None) -> bool:
        return origin is None or (self.public_url is not None and origin == self.public_url)

    def base_url(self, scope: Scope) -> str:
        if self.public_url:
            return self.public_url
        host = Headers(scope=scope).get("host", "127.0.0.1")
        return f"{scope.get('scheme', 'http')}://{host}"

    def sdk_settings(self) -> TransportSecuritySettings:
        """The same rule for the SDK's own check (a second line behind the gate)."""
        hosts = [f"{name}:*" for name in _LOOPBACK_HOSTS] + list(_LOOPBACK_HOSTS)
        if self.public_host:
            hosts.append(self.public_host)
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=hosts,
            allowed_origins=[self.public_url] if self.public_url else [],
        )


async def _send_error(
    scope: Scope,
    send: Send,
    code: ErrorCode,
    message: str,
    *,
    fields: list[tuple[str, str]] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    request_id = request_id_of(cast(litestar_types.Scope, scope))
    body = json.dumps(envelope(code, message, request_id, fields=fields)).encode()
    start: Message = {
        "type": "http.response.start",
        "status": STATUS[code],
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            *(headers or []),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})


@attrs.frozen
class _OriginGate:
    """Refuse foreign ``Host`` and browser ``Origin`` headers before anything runs; note the
    client address for the token verifier."""

    app: ASGIApp
    origins: _Origins
    proxies: TrustedProxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        if not self.origins.host_allowed(headers.get("host")):
            await _send_error(
                scope,
                send,
                ErrorCode.VALIDATION_FAILED,
                "This server does not answer for that host (set FLEETPROMPT_PUBLIC_URL).",
                fields=[("Host", "is not this server's host")],
            )
            return
        if not self.origins.origin_allowed(headers.get("origin")):
            await _send_error(
                scope, send, ErrorCode.UNAUTHORIZED, "Browser requests to /mcp are not accepted."
            )
            return
        client = _client_address.set(self.proxies.client(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            _client_address.reset(client)


@attrs.frozen
class _BearerGate:
    """An ``Authorization`` header that proves nothing is 401 (absent is anonymous)."""

    app: ASGIApp
    origins: _Origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        if "authorization" in headers and not isinstance(scope.get("user"), AuthenticatedUser):
            metadata = self.origins.base_url(scope) + METADATA_PATH
            challenge = (
                f'Bearer error="invalid_token", error_description="{_REFUSED}", '
                f'resource_metadata="{metadata}"'
            )
            await _send_error(
                scope,
                send,
                ErrorCode.UNAUTHENTICATED,
                _REFUSED,
                headers=[(b"www-authenticate", challenge.encode("ascii", "replace"))],
            )
            return
        await self.app(scope, receive, send)


# --------------------------------------------------------------------------- the endpoint


@attrs.frozen
class McpEndpoint:
    """What ``create_app`` adds: the route handlers and the transport's lifespan."""

    route_handlers: list[Any]
    lifespan: Callable[[Any], AbstractAsyncContextManager[None]]


def mcp_endpoint(services: Services, settings: Settings) -> McpEndpoint:
    """``/mcp`` and its protected-resource metadata, over ``services``' use cases."""
    server = build_server(services, HttpInvocations(services))
    origins = _Origins(settings.public_url)
    transport = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        transport_security=origins.sdk_settings(),
        max_request_body_size=MAX_BODY_BYTES,
    )
    verifier = CoreTokenVerifier(services)
    app: ASGIApp = _OriginGate(
        AuthenticationMiddleware(
            AuthContextMiddleware(_BearerGate(transport, origins)),
            backend=BearerAuthBackend(verifier),
        ),
        origins,
        services.proxies,
    )
    issuer = settings.oidc.issuer if settings.oidc else None

    @asgi(MCP_PATH, copy_scope=False)
    async def mcp_transport(
        scope: litestar_types.Scope, receive: litestar_types.Receive, send: litestar_types.Send
    ) -> None:
        await app(cast(Scope, scope), cast(Receive, receive), cast(Send, send))

    @get(METADATA_PATH, include_in_schema=False)
    async def protected_resource(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """RFC 9728: which resource this is and how to present a bearer token to it."""
        base = origins.base_url(cast(Scope, request.scope))
        document: dict[str, Any] = {
            "resource": base + MCP_PATH,
            "bearer_methods_supported": ["header"],
            "resource_name": "FleetPrompt MCP server",
        }
        if issuer is not None:
            document = ProtectedResourceMetadata(
                resource=AnyHttpUrl(base + MCP_PATH),
                authorization_servers=[AnyHttpUrl(issuer)],
                resource_name="FleetPrompt MCP server",
            ).model_dump(mode="json", exclude_none=True)
        return Response(document, media_type="application/json")

    def lifespan(_app: Any) -> AbstractAsyncContextManager[None]:
        return server.session_manager.run()

    return McpEndpoint([mcp_transport, protected_resource], lifespan)

"""The composition root of the server: ``create_app(settings)`` wires everything.

Nothing here runs at import time. ``create_app`` builds the storage adapter
(SQLite or PostgreSQL through the SQL adapter, or the in-memory adapter for
``memory://``), the rate limiter (in-process, or Redis when several processes
share the load), the identity resolvers and the redeem verifier, and returns a
Litestar application whose entry point stamps a request id on every response
and writes one access log line per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from importlib import metadata
from typing import Any, Final

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import SecurityScheme
from litestar.routes import HTTPRoute

from fleetprompt_adapters.heap import trim_heap
from fleetprompt_adapters.memory import MemoryRateLimiter
from fleetprompt_core import FleetPrompt
from fleetprompt_core.policies.signing import RedeemVerifier
from fleetprompt_core.ports import Clock, IdentityResolver, RateLimiter
from fleetprompt_core.services.runtime import Call
from fleetprompt_http.apidocs import PackagedSwagger, docs_router
from fleetprompt_http.auth import BearerAuthenticator
from fleetprompt_http.cache import (
    REFUSED_KEY,
    Entry,
    PublicCache,
    VersionPoller,
    cache_key,
    matches,
)
from fleetprompt_http.clients import TrustedProxies, parse_networks
from fleetprompt_http.context import caller_of, reason_of, request_id_of
from fleetprompt_http.errors import exception_handlers
from fleetprompt_http.handling import (
    PUBLIC_CACHE_CONTROL,
    ReadinessCheck,
    Services,
    ThreadGate,
    install_services,
    services_in,
)
from fleetprompt_http.heap import HeapTrimmer
from fleetprompt_http.logs import log_access, log_event
from fleetprompt_http.openapi import DocumentedComponents
from fleetprompt_http.routes.admin import AdminController
from fleetprompt_http.routes.health import healthz, readyz
from fleetprompt_http.routes.installs import InstallController
from fleetprompt_http.routes.internal import InternalController
from fleetprompt_http.routes.me import me
from fleetprompt_http.routes.public import PublicController
from fleetprompt_http.routes.publisher import PublisherController
from fleetprompt_http.security_headers import OPT_KEY, RoutePolicy, SecurityHeaders
from fleetprompt_http.settings import Settings
from fleetprompt_http.storage import SchemaNotCurrent, Storage, open_storage
from fleetprompt_http.web import template_config, web_routers
from fleetprompt_http.web.rendering import with_pages

__all__ = [
    "FleetPromptServer",
    "SchemaNotCurrent",
    "Storage",
    "create_app",
    "fleetprompt_of",
    "open_services",
    "open_storage",
    "package_version",
]

#: Request bodies above this are refused with ``TOO_LARGE`` (§3).
MAX_BODY_BYTES: Final = 256 * 1024
#: The paths whose anonymous GETs the entry point may answer from the response cache.
_CACHED_PREFIX: Final = PublicController.path + "/"
#: The security policy those answers carry: their controller's.
_CACHED_POLICY: RoutePolicy = PublicController.opt[OPT_KEY]
_CACHE_CONTROL_VALUE: Final = PUBLIC_CACHE_CONTROL.encode("ascii")


def package_version() -> str:
    try:
        return metadata.version("fleetprompt")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


class FleetPromptServer(Litestar):
    """Litestar with FleetPrompt's entry point: a request id and the security
    headers on every response (routing errors included) and one structured
    access line per request."""

    def __init__(self, *, security_headers: SecurityHeaders, **kwargs: Any) -> None:
        self.security_headers = security_headers
        self._allow: dict[str, bytes] | None = None
        super().__init__(**kwargs)

    def allow_of(self, path_template: object) -> bytes | None:
        """The ``Allow`` value of a route: its methods, ``HEAD`` wherever ``GET`` is.

        Litestar's own OPTIONS answer forgets methods registered after the first
        handler of a path (``OPTIONS, POST`` where GET exists too).
        """
        if self._allow is None:
            allow: dict[str, bytes] = {}
            for route in self.routes:
                if isinstance(route, HTTPRoute):
                    methods = set(route.methods) | ({"HEAD"} if "GET" in route.methods else set())
                    value = ", ".join(sorted(methods)).encode("ascii")
                    allow[route.path] = allow[route.path_format] = value
            self._allow = allow
        return self._allow.get(path_template) if isinstance(path_template, str) else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        header = (b"x-request-id", request_id.encode("ascii"))
        status = 500
        method = scope.get("method")
        # HEAD is GET without the body (RFC 9110 §9.3.2), for every GET route: load
        # balancers probe /healthz and /readyz with it. The server keeps its own
        # scope (it knows the request was HEAD); the app sees a GET.
        head = method == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        if (head or method == "GET") and scope["path"].startswith(_CACHED_PREFIX):
            answered = await self._from_cache(scope, request_id, send, head=head)
            if answered is not None:
                self._log(request_id, method, scope, answered, started)
                return

        async def stamped(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = self.security_headers.apply(scope, status, message.get("headers", ()))
                if method == "OPTIONS" and status == 204:
                    allow = self.allow_of(scope.get("path_template"))
                    if allow is not None:
                        headers = [(n, v) for n, v in headers if n.lower() != b"allow"]
                        headers.append((b"allow", allow))
                message["headers"] = [*headers, header]
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await super().__call__(scope, receive, stamped)  # type: ignore[arg-type]
        finally:
            self._log(request_id, method, scope, status, started)

    @staticmethod
    def _log(request_id: str, method: object, scope: Any, status: int, started: float) -> None:
        """The request's access line."""
        log_access(
            request_id,
            method,
            scope.get("path_template"),
            status,
            round((time.perf_counter() - started) * 1000, 3),
            caller_of(scope),
            reason_of(scope),
        )

    async def _from_cache(
        self, scope: Any, request_id: str, send: Any, *, head: bool
    ) -> int | None:
        """Answer an anonymous public read from the response cache (ADR 0038), before
        Litestar's routing: the status sent, or ``None`` to let the route answer (no
        entry, credentials, or a rate limit that refused: the route raises the refusal,
        so its envelope is the exception handlers')."""
        services = services_in(self.state)
        cache = services.cache
        if cache is None:
            return None
        if_none_match: str | None = None
        for name, value in scope["headers"]:
            lowered = name.lower()
            if lowered == b"authorization":
                return None
            if lowered == b"if-none-match" and if_none_match is None:
                if_none_match = value.decode("latin-1")
        version = cache.version()
        if version is None:
            return None
        entry = cache.peek(cache_key(scope), version)
        if entry is None or entry.read is None:
            return None
        read = entry.read
        call = Call(None, request_id, services.proxies.client(scope))
        catalog = services.app.catalog
        try:
            if services.inline_limits:
                catalog.admit(read, call)
            else:
                await services.threads.run(lambda: catalog.admit(read, call))
        except Exception as refusal:  # the route raises it again
            scope["state"][REFUSED_KEY] = refusal
            return None
        cache.hits += 1
        scope["path_template"] = entry.route
        status = 304 if matches(if_none_match, entry.etag) else 200
        head_block = entry.heads.get(status) or self._head_of(entry, status)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*head_block, (b"x-request-id", request_id.encode("ascii"))],
            }
        )
        body = b"" if head or status == 304 else entry.body
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return status

    def _head_of(self, entry: Entry, status: int) -> list[tuple[bytes, bytes]]:
        """The headers of a cached answer (what the route's ``Response`` would carry)."""
        headers = [
            (b"etag", entry.etag.encode("ascii")),
            (b"cache-control", _CACHE_CONTROL_VALUE),
            (b"vary", b"Authorization"),
        ]
        if status == 200:
            headers[1:1] = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(entry.body)).encode("ascii")),
            ]
        block = entry.heads[status] = self.security_headers.apply_policy(
            _CACHED_POLICY, status, headers
        )
        return block


def _limiter(settings: Settings) -> RateLimiter | None:
    if settings.rate_limits is None:
        return None
    if settings.redis_url:
        # Imported only when configured: the Redis client costs every process ~7 MB.
        from fleetprompt_adapters.redis_limiter import RedisRateLimiter  # noqa: PLC0415

        return RedisRateLimiter.from_url(settings.redis_url, prefix=settings.redis_prefix)
    return MemoryRateLimiter()


def _identity(settings: Settings) -> tuple[IdentityResolver, ...]:
    if settings.oidc is None:
        return ()
    oidc = settings.oidc
    # Imported only when configured (PyJWT and its cryptography backends).
    from fleetprompt_adapters.oidc import OidcIdentityResolver  # noqa: PLC0415

    return (
        OidcIdentityResolver(
            issuer=oidc.issuer, audience=oidc.audience, jwks_url=oidc.jwks_url, keys=oidc.keys
        ),
    )


def _warn_if_redemption_is_off(verifier: RedeemVerifier | None) -> None:
    """Say at start, naming the variable, that X1 answers 501 without a redeem secret."""
    if verifier is None:
        log_event(
            logging.getLogger("fleetprompt.server"),
            logging.WARNING,
            "internal redemption is disabled: POST /v1/internal/install/redeem answers 501 "
            "until FLEETPROMPT_INTERNAL_REDEEM_SECRET is set (32 bytes or more)",
            {"setting": "FLEETPROMPT_INTERNAL_REDEEM_SECRET"},
        )


def _warm_search_index(storage: Storage) -> None:
    """Build or catch up the search index at start-up, so that no request waits for it.

    An index in RAM (the default) is built from the database here, once per
    process; a directory index only applies what the change log holds past it.
    The server accepts requests once this returns.
    """
    if storage.warm is None:
        return
    started = time.perf_counter()
    changed = storage.warm()
    log_event(
        logging.getLogger("fleetprompt.server"),
        logging.INFO,
        "search index ready",
        {"listings": changed, "ms": round((time.perf_counter() - started) * 1000)},
    )


def _readiness(
    settings: Settings, storage: Storage, limiter: RateLimiter | None
) -> tuple[ReadinessCheck, ...]:
    checks: list[ReadinessCheck] = []
    if storage.ping is not None:
        checks.append(ReadinessCheck("database", storage.ping))
    if settings.redis_url:
        from fleetprompt_adapters.redis_limiter import RedisRateLimiter  # noqa: PLC0415

        if isinstance(limiter, RedisRateLimiter):
            checks.append(ReadinessCheck("redis", limiter.ping))
    return tuple(checks)


def open_services(settings: Settings, *, clock: Clock | None = None) -> tuple[Storage, Services]:
    """The store and what every transport's handlers use (the JSON API, ``/mcp``, stdio)."""
    limiter = _limiter(settings)
    storage = open_storage(settings, clock=clock, limiter=limiter)
    fleetprompt = storage.app
    verifier = (
        RedeemVerifier(keys=settings.redeem_secrets, allowed_sources=settings.redeem_sources)
        if settings.redeem_secrets
        else None
    )
    runtime = fleetprompt.runtime
    cache = None
    if settings.cache_mb and runtime.catalog_version is not None:
        cache = PublicCache(
            runtime.catalog_version, runtime.clock, max_bytes=settings.cache_mb << 20
        )
    services = Services(
        app=fleetprompt,
        authenticator=BearerAuthenticator(fleetprompt.credentials, _identity(settings)),
        verifier=verifier,
        version=package_version(),
        threads=ThreadGate(settings.worker_threads, deadline_ms=settings.request_timeout_ms),
        readiness=_readiness(settings, storage, limiter),
        proxies=TrustedProxies(parse_networks(settings.trusted_proxies)),
        cache=cache,
        inline_limits=limiter is None or isinstance(limiter, MemoryRateLimiter),
        web=settings.web,
        redeem_deadline_ms=settings.redeem_deadline_ms,
        inline=settings.runs_inline,
    )
    return storage, services


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Litestar:
    """The FleetPrompt server for ``settings`` (default: :meth:`Settings.from_env`-like defaults).

    ``clock`` replaces the system clock (tests drive expiry with a manual one).
    The database must already be at the migration head (``fleetprompt db
    upgrade``; ``fleetprompt serve`` does it for the embedded SQLite default):
    the app refuses to start otherwise.
    """
    # The MCP SDK is imported when an app is built, not when this module is.
    from fleetprompt_http.mcp.http import mcp_endpoint  # noqa: PLC0415

    settings = settings or Settings()
    storage, services = open_services(settings, clock=clock)
    state: dict[str, Any] = {}
    install_services(state, services)
    mcp = mcp_endpoint(services, settings)
    on_startup: list[Callable[[], Any]] = [
        storage.check_schema,
        lambda: _warn_if_redemption_is_off(services.verifier),
        lambda: _warm_search_index(storage),
    ]
    on_shutdown: list[Callable[[], Any]] = []
    if services.cache is not None:  # the catalogue version is read in the background
        poller = VersionPoller(services.cache.source)
        on_startup.append(poller.start)
        on_shutdown.append(poller.stop)
    trimmer = HeapTrimmer(trim_heap)
    on_startup.append(trimmer.start)
    on_shutdown.append(trimmer.stop)
    on_shutdown.append(storage.close)
    return FleetPromptServer(
        security_headers=SecurityHeaders(
            image_hosts=settings.image_hosts, hsts_max_age_s=settings.hsts_max_age_s
        ),
        route_handlers=[
            PublicController,
            PublisherController,
            InstallController,
            InternalController,
            AdminController,
            healthz,
            readyz,
            me,
            *mcp.route_handlers,
            *web_routers(),
        ],
        template_config=template_config(),
        exception_handlers=with_pages(exception_handlers()),
        request_max_body_size=MAX_BODY_BYTES,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        lifespan=[mcp.lifespan],
        state=State(state),
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="FleetPrompt",
            version=services.version,
            description="Marketplace and distribution API for agent products (contract v1).",
            openapi_router=docs_router("/schema"),
            render_plugins=[PackagedSwagger()],
            components=DocumentedComponents(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="A personal API token (`fpat_…`) or an OIDC JWT.",
                    )
                },
            ),
            security=[{"bearer": []}],
        ),
    )


def fleetprompt_of(app: Litestar) -> FleetPrompt:
    """The use cases an app serves (for tests and embedders that seed data)."""
    return services_in(app.state).app

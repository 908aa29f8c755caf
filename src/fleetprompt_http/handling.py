"""What every route handler does the same way: read the request, call one use case.

Handlers stay thin: they read the caller, the query, the JSON body and the
``Idempotency-Key`` header, run the (synchronous) use case in a worker thread —
resolving the caller's credential there too, so a request costs one thread hop
— and shape the result. Validation, authorization, idempotency and rate limits
are the core's. A route may mark a short use case ``inline`` (:func:`run_use_case`):
on an in-process database it then runs on the event loop, without the hop (ADR 0036).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import attrs
from anyio import CapacityLimiter, move_on_after, to_thread
from anyio.lowlevel import RunVar
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.serialization import encode_json

from fleetprompt_core import FleetPrompt, Unavailable
from fleetprompt_core.policies.signing import RedeemVerifier
from fleetprompt_core.services import throttle
from fleetprompt_core.services.catalog import PublicRead
from fleetprompt_core.services.runtime import Call, Outcome
from fleetprompt_http.auth import BearerAuthenticator
from fleetprompt_http.cache import REFUSED_KEY, Entry, PublicCache, cache_key, etag_of, matches
from fleetprompt_http.clients import TrustedProxies
from fleetprompt_http.context import request_id_of, set_caller
from fleetprompt_http.settings import WebSettings

__all__ = [
    "INLINE_BODY_MAX",
    "REPLAYED_HEADER",
    "ReadinessCheck",
    "Services",
    "ThreadGate",
    "call_use_case",
    "client_of",
    "idempotency_key",
    "json_body",
    "json_bytes",
    "public_read",
    "query",
    "respond",
    "run_use_case",
    "services_of",
    "write",
    "written",
]

T = TypeVar("T")
W = TypeVar("W")

REPLAYED_HEADER: Final = "Idempotent-Replayed"
_STATE_KEY: Final = "fleetprompt_services"
_JSON_TYPES: Final = ("application/json",)
#: The largest request body of a write a route marks ``inline`` that runs on the event
#: loop (ADR 0043): its use case's CPU grows with the body (a listing's markdown renders
#: at about 2 µs a character), and while it runs the process serves nothing else.
INLINE_BODY_MAX: Final = 1024


class ThreadGate:
    """At most ``size`` use cases of this process in worker threads at once.

    The use cases are synchronous and mostly CPU (Python) bound: more threads
    than that only contend for the GIL and, on SQLite, queue on the one
    writer lock in busy-sleeps. Requests beyond the cap wait their turn on the
    event loop instead (measured in ``docs/benchmarks.md``).
    """

    def __init__(self, size: int, *, deadline_ms: int | None = None) -> None:
        self.size = size
        #: A use case not done this long after it asked for a thread (waiting for
        #: one included) answers ``Unavailable``; its thread is abandoned, not
        #: killed, and ends when the database answers or its own timeouts fire.
        self.deadline_s = None if deadline_ms is None else deadline_ms / 1000
        # One limiter per event loop: a limiter's waiters belong to the loop that
        # made it (a served process has one loop; tests may drive one app from two).
        self._limiter: RunVar[CapacityLimiter] = RunVar(f"fleetprompt-threads-{id(self)}")

    async def run(self, function: Callable[[], T]) -> T:
        try:
            limiter = self._limiter.get()
        except LookupError:
            limiter = CapacityLimiter(self.size)
            self._limiter.set(limiter)
        if self.deadline_s is None:
            return await to_thread.run_sync(function, limiter=limiter)
        with move_on_after(self.deadline_s) as scope:
            return await to_thread.run_sync(function, limiter=limiter, abandon_on_cancel=True)
        assert scope.cancelled_caught
        raise Unavailable("The request did not complete in time.")


@attrs.frozen
class ReadinessCheck:
    """One dependency ``/readyz`` checks: ``probe`` raises unless it answers."""

    name: str
    probe: Callable[[], None]


@attrs.frozen
class Services:
    """What the handlers use, wired by ``create_app``."""

    app: FleetPrompt
    authenticator: BearerAuthenticator
    #: ``None`` when no redeem secret is configured (internal redemption is off).
    verifier: RedeemVerifier | None
    version: str
    threads: ThreadGate
    #: Whose ``X-Forwarded-For`` names the client (nobody by default).
    proxies: TrustedProxies = attrs.field(factory=TrustedProxies)
    #: What ``/readyz`` checks (the database, Redis when configured).
    readiness: tuple[ReadinessCheck, ...] = ()
    #: The public response cache (ADR 0028); ``None`` when it is off.
    cache: PublicCache | None = None
    #: Whether the rate limiter answers without I/O (in-process): a cached answer
    #: then counts its limit on the event loop instead of in a worker thread.
    inline_limits: bool = True
    #: Cookies and sign-up of the web pages.
    web: WebSettings = attrs.field(factory=WebSettings)
    #: How long a redemption may run before it must not commit (ADR 0021).
    redeem_deadline_ms: int = 5_000
    #: Whether use cases a route marks ``inline`` run on the event loop instead of
    #: in a worker thread (:func:`run_use_case`, ADR 0036): on when the database
    #: answers in-process (SQLite, the memory adapter), off for PostgreSQL.
    inline: bool = False


def services_of(request: Request[Any, Any, Any]) -> Services:
    return services_in(request.app.state)


def services_in(state: Mapping[str, Any]) -> Services:
    services: Services = state[_STATE_KEY]
    return services


def install_services(state: dict[str, Any], services: Services) -> None:
    state[_STATE_KEY] = services


def client_of(request: Request[Any, Any, Any]) -> str | None:
    """The client's address: the peer, or what a trusted proxy forwarded (``clients``)."""
    return services_of(request).proxies.client(request.scope)


def query(request: Request[Any, Any, Any]) -> dict[str, object]:
    """Query parameters: one value as a string, a repeated one as a list (``tags=a&tags=b``)."""
    params: dict[str, object] = {}
    for name, values in request.query_params.dict().items():
        params[name] = values[0] if len(values) == 1 else list(values)
    return params


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    return request.headers.get("idempotency-key")


class UnreadableBody:
    """A body that is not JSON. The use case rejects it as ``body: must be a JSON
    object`` after it has checked the caller, so an anonymous caller learns
    ``UNAUTHENTICATED`` first, like for any other body."""

    __slots__ = ()


UNREADABLE: Final = UnreadableBody()


async def json_bytes(request: Request[Any, Any, Any]) -> bytes:
    """The raw body; a non-empty one must be declared JSON (``415 UNSUPPORTED`` otherwise)."""
    raw = await request.body()  # the 256 KiB limit is enforced while reading
    if raw:
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type not in _JSON_TYPES and not (
            media_type.startswith("application/") and media_type.endswith("+json")
        ):
            raise HTTPException(status_code=415)
    return raw


async def json_body(request: Request[Any, Any, Any]) -> object:
    """The parsed JSON body (``None`` when empty); only ``application/json`` is accepted."""
    return _parsed(await json_bytes(request))


def _parsed(raw: bytes) -> object:
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))  # RFC 8259: JSON on the wire is UTF-8
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return UNREADABLE


async def run_use_case(services: Services, function: Callable[[], T], *, inline: bool = False) -> T:
    """Run a synchronous use case: in a worker thread through :attr:`Services.threads`,
    or, when ``inline`` and the process allows it (:attr:`Services.inline`), right
    here on the event loop.

    Inline saves the thread hop: handing the call to a thread and back, and the
    GIL passing between the loop and the thread under load, which cost a
    redemption on SQLite about a fifth of its CPU (ADR 0036). The price: while
    the use case runs, this process serves nothing else, and the thread gate's
    deadline does not apply (there is no thread to abandon). So mark a use case
    ``inline`` only when it is short (a few statements by key, well under a
    millisecond of CPU), calls nothing but the database, and every wait in it is
    bounded by the database connection itself: SQLite's busy timeout and
    statement progress handler, PostgreSQL's ``statement_timeout`` and
    ``lock_timeout``, the pool timeout (``Timeouts``, ADR 0026). A use case that
    may scan, page, call a third party (OIDC keys, Redis limits over the
    network) or wait on a lock for long belongs in a thread. ``Services.inline``
    is off for PostgreSQL by default: there each statement is a network round
    trip during which the loop would sit idle; and nothing runs inline when the
    rate limiter answers over the network (``Services.inline_limits`` off: Redis).
    """
    if inline and services.inline and services.inline_limits:
        return function()
    return await services.threads.run(function)


async def call_use_case(
    request: Request[Any, Any, Any], use_case: Callable[[Call], T], *, inline: bool = False
) -> T:
    """Resolve the caller and run ``use_case`` with its :class:`Call`, in a worker thread
    (on the event loop when ``inline``: see :func:`run_use_case`; never when resolving
    the credential may call out, an OIDC token's keys)."""
    services = services_of(request)
    authorization = request.headers.get("authorization")
    inline = inline and services.authenticator.resolves_in_process(authorization)
    request_id = request_id_of(request.scope)
    client = client_of(request)
    scope = request.scope

    def run() -> T:
        principal = (
            None
            if authorization is None
            else throttle.authenticating(
                services.app.runtime,
                "client:" + (client or "unknown"),
                lambda: services.authenticator.principal(authorization),
            )
        )
        if principal is not None:
            set_caller(scope, principal.external_id)
        return use_case(Call(principal, request_id, client))

    return await run_use_case(services, run, inline=inline)


#: ``Cache-Control`` of a cacheable public answer: any cache may store it, and
#: must revalidate it (``If-None-Match``, answered ``304`` from our cache) before
#: reuse, so a catalogue change reaches clients within the bound of ADR 0028.
PUBLIC_CACHE_CONTROL: Final = "public, no-cache"
#: A public read made with credentials: the caller's own copy only.
PRIVATE_CACHE_CONTROL: Final = "private, no-cache"


async def public_read(
    request: Request[Any, Any, Any],
    read: PublicRead,
    build: Callable[[Call], object],
    *,
    inline: bool = False,
) -> Response[bytes]:
    """A public read (P1–P3) that the entry point did not answer from the response cache
    (ADR 0038): ``build`` (the use case and its wire shape) in a worker thread, or on the
    event loop when ``inline`` (a short read: :func:`run_use_case`, ADR 0044), stored for
    the next anonymous caller. Concurrent anonymous misses of one key wait for the first
    one's answer (counting their own rate limit) instead of computing it again."""
    services = services_of(request)
    cache = services.cache
    refusal = request.scope.get("state", {}).get(REFUSED_KEY)
    if isinstance(refusal, Exception):  # the entry point's limit check said no
        raise refusal
    if cache is None or "authorization" in request.headers:
        body = await call_use_case(request, lambda call: encode_json(build(call)), inline=inline)
        cache_control = PUBLIC_CACHE_CONTROL if cache is None else PRIVATE_CACHE_CONTROL
        return _answer(request, Entry(body, etag_of(body), 0), cache_control)
    version = cache.version()
    key = cache_key(request.scope)
    entry = cache.get(key, version) if version is not None else None
    if entry is None:
        flight = cache.flight(key, version)
        if flight is not None:
            entry = await asyncio.shield(flight)  # None: it failed, compute our own
    if entry is not None:
        call = Call(None, request_id_of(request.scope), client_of(request))
        catalog = services.app.catalog
        if services.inline_limits:
            catalog.admit(read, call)
        else:
            await services.threads.run(lambda: catalog.admit(read, call))
        return _answer(request, entry, PUBLIC_CACHE_CONTROL)
    future = cache.lead(key, version)
    stored: Entry | None = None
    try:
        body = await call_use_case(request, lambda call: encode_json(build(call)), inline=inline)
        route = request.scope.get("path_template")
        stored = cache.put(key, version, body, read, route if isinstance(route, str) else None)
    finally:
        cache.land(key, future, stored)
    return _answer(request, stored, PUBLIC_CACHE_CONTROL)


def _answer(request: Request[Any, Any, Any], entry: Entry, cache_control: str) -> Response[bytes]:
    headers = {"ETag": entry.etag, "Cache-Control": cache_control, "Vary": "Authorization"}
    if matches(request.headers.get("if-none-match"), entry.etag):
        return Response(b"", status_code=304, headers=headers)
    return Response(entry.body, media_type=MediaType.JSON, headers=headers)


def respond(body: W, status: int = 200, headers: Mapping[str, str] | None = None) -> Response[W]:
    return Response(
        body, status_code=status, media_type=MediaType.JSON, headers=dict(headers or {})
    )


def written(
    outcome: Outcome[T],
    shape: Callable[[T], W],
    status: int = 200,
    location: Callable[[T], str] | None = None,
) -> Response[W]:
    """An idempotent write's answer; a replay carries ``Idempotent-Replayed: true``, and a
    ``201`` of a resource with a URL its ``Location`` (``location`` of the result)."""
    headers = {REPLAYED_HEADER: "true"} if outcome.replayed else {}
    if location is not None:
        headers["Location"] = location(outcome.value)
    return respond(shape(outcome.value), status, headers or None)


async def write(
    request: Request[Any, Any, Any],
    use_case: Callable[[Call, object], Outcome[T]],
    shape: Callable[[T], W],
    status: int = 200,
    location: Callable[[T], str] | None = None,
    *,
    inline: bool = False,
) -> Response[W]:
    """One idempotent write: the JSON body to ``use_case`` (with the caller), its outcome
    shaped; ``inline`` as in :func:`run_use_case`, for a body of at most
    :data:`INLINE_BODY_MAX` bytes (a larger one, whose markdown alone may take
    milliseconds to render, goes to a thread: ADR 0043)."""
    raw = await json_bytes(request)
    body = _parsed(raw)
    inline = inline and len(raw) <= INLINE_BODY_MAX
    outcome = await call_use_case(request, lambda call: use_case(call, body), inline=inline)
    return written(outcome, shape, status, location)

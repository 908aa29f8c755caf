"""Who is looking at a page: the session cookie, CSRF checks and the thread hop (ADR 0019).

A page handler asks :func:`run` to resolve the session cookie and call the
core's use cases *in one worker thread*, exactly as the JSON routes do with a
bearer credential. The cookie is only ever read here, by the page routes: no
JSON route and no ``/mcp`` route looks at it, so a browser cookie never
authenticates an API call.

Every unsafe page request passes :func:`check_unsafe` before any use case
runs: a request a browser marks as cross-site (``Sec-Fetch-Site`` or an
``Origin`` of another host) is refused, and one the cookie authenticates must
carry the session's CSRF token in the ``csrf`` form field. A refusal changes
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import attrs
from litestar import Request, Response
from litestar.datastructures import Cookie

from fleetprompt_core import FleetPrompt
from fleetprompt_core.base.errors import DomainError, ErrorCode
from fleetprompt_core.policies.sessions import csrf_token_matches
from fleetprompt_core.ports import Principal
from fleetprompt_core.services.accounts import SignedIn, SignedInUser
from fleetprompt_core.services.runtime import Call
from fleetprompt_http.context import request_id_of, set_caller
from fleetprompt_http.handling import Services, client_of, services_of

__all__ = [
    "CsrfRefused",
    "Visitor",
    "check_unsafe",
    "cookie_name",
    "end_session_cookie",
    "run",
    "session_cookie",
]

T = TypeVar("T")

SECURE_COOKIE: Final = "__Host-fp_session"
PLAIN_COOKIE: Final = "fp_session"
CSRF_FIELD: Final = "csrf"


class CsrfRefused(DomainError):
    """An unsafe request without the session's CSRF token, or from another site."""

    code = ErrorCode.UNAUTHORIZED
    default_message = "This form expired or came from another site; nothing was changed."


@attrs.frozen
class Visitor:
    """The person behind one page request."""

    app: FleetPrompt
    call: Call
    #: ``None`` when signed out.
    me: SignedInUser | None
    session_token: str | None = attrs.field(repr=False)

    @property
    def signed_in(self) -> bool:
        return self.me is not None

    @property
    def csrf(self) -> str:
        return self.me.csrf_token if self.me else ""


def cookie_name(services: Services) -> str:
    return SECURE_COOKIE if services.web.cookie_secure else PLAIN_COOKIE


def _session_token(request: Request[Any, Any, Any]) -> str | None:
    services = services_of(request)
    token = request.cookies.get(cookie_name(services))
    return token if token and len(token) <= 128 else None


async def run(request: Request[Any, Any, Any], page: Callable[[Visitor], T]) -> T:
    """Resolve the session cookie and run ``page`` with the visitor, in a worker thread."""
    services = services_of(request)
    token = _session_token(request)
    request_id = request_id_of(request.scope)
    client = client_of(request)
    scope = request.scope

    def work() -> T:
        me = services.app.accounts.session(token) if token else None
        if me is None:
            return page(Visitor(services.app, Call(None, request_id, client), None, None))
        set_caller(scope, me.user.external_id)
        principal = Principal(me.user.external_id, me.user.display_name, me.user.email)
        return page(Visitor(services.app, Call(principal, request_id, client), me, token))

    return await services.threads.run(work)


def _same_origin(request: Request[Any, Any, Any]) -> bool:
    """Whether the browser says the request comes from our own pages.

    ``Sec-Fetch-Site`` decides when the browser sends it (every current one
    does). Otherwise an ``Origin`` naming another host refuses; ``Origin:
    null`` proves nothing either way (our pages send it, under
    ``Referrer-Policy: no-referrer``), and the CSRF token still guards every
    request a session authenticates.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


def check_unsafe(
    request: Request[Any, Any, Any], visitor: Visitor, form: Mapping[str, object]
) -> None:
    """Refuse a cross-site unsafe request, and a cookie-authenticated one without the
    session's CSRF token (raises :class:`CsrfRefused`, a 403 page)."""
    if not _same_origin(request):
        raise CsrfRefused()
    if visitor.session_token is not None:
        presented = form.get(CSRF_FIELD)
        if not isinstance(presented, str) or not csrf_token_matches(
            visitor.session_token, presented
        ):
            raise CsrfRefused()


def session_cookie(services: Services, signed_in: SignedIn) -> Cookie:
    """The cookie that carries a new session: HttpOnly, SameSite=Lax, Secure unless
    configured off for plain-http loopback; it lives as long as the session may."""
    secure = services.web.cookie_secure
    now_ms = services.app.runtime.clock.now_ms()
    return Cookie(
        key=cookie_name(services),
        value=signed_in.session_token,
        path="/",
        max_age=max(1, (signed_in.expires_at_ms - now_ms) // 1000),
        httponly=True,
        secure=secure,
        samesite="lax",
    )


def end_session_cookie(services: Services) -> Cookie:
    return Cookie(
        key=cookie_name(services),
        value="",
        path="/",
        max_age=0,
        httponly=True,
        secure=services.web.cookie_secure,
        samesite="lax",
    )


def with_cookie(response: Response[Any], cookie: Cookie) -> Response[Any]:
    response.set_cookie(cookie)
    return response

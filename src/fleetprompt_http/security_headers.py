"""The security headers of every response, written in one place (the server's entry point).

Every response carries ``X-Content-Type-Options: nosniff``, a
``Referrer-Policy``, a ``Content-Security-Policy`` with ``frame-ancestors
'none'`` and, when configured, ``Strict-Transport-Security``. Every response
is ``Cache-Control: no-store`` unless its route declares itself public (the
catalogue, the API docs): raw install and API tokens, a publisher's drafts and
anything else that depends on the caller never sit in a cache.

A route (or a controller, a router) declares what it needs with
:func:`declare`, in Litestar's ``opt``::

    @get("/listings/{id:str}", opt=declare(content=ContentPolicy.PAGE, caching=Caching.PUBLIC))

Routes that declare nothing, and paths that match no route, get the strictest
choice: the JSON policy and ``no-store``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any, Final

import attrs

__all__ = [
    "Caching",
    "ContentPolicy",
    "RoutePolicy",
    "SecurityHeaders",
    "declare",
    "declare_response",
]

#: The ``opt`` key under which a route declares its :class:`RoutePolicy`.
OPT_KEY: Final = "fleetprompt.security"


class ContentPolicy(enum.StrEnum):
    """Which ``Content-Security-Policy`` a response gets."""

    #: JSON and anything else that is not a page: nothing may load, nothing may frame it.
    API = "api"
    #: Server-rendered HTML pages: scripts, styles, fonts and fetches from the
    #: server itself only (no inline code, no eval); images from the server and
    #: the configured image hosts (``FLEETPROMPT_IMAGE_HOSTS``).
    PAGE = "page"
    #: The API docs UI (Swagger UI, served from the package): the page policy
    #: plus ``data:`` images, which its stylesheet uses for icons.
    DOCS = "docs"


class Caching(enum.StrEnum):
    """Whether a response may be stored by a cache."""

    #: The default: ``Cache-Control: no-store``, whatever the handler set.
    PRIVATE = "private"
    #: The same for every caller (the public catalogue, the docs): the handler's
    #: own ``Cache-Control`` is kept; an error answer without one is ``no-store``.
    PUBLIC = "public"


@attrs.frozen
class RoutePolicy:
    content: ContentPolicy = ContentPolicy.API
    caching: Caching = Caching.PRIVATE


_DEFAULT: Final = RoutePolicy()


def declare(
    content: ContentPolicy = ContentPolicy.API, caching: Caching = Caching.PRIVATE
) -> dict[str, Any]:
    """The ``opt`` entry that gives a route (controller, router) its security headers."""
    return {OPT_KEY: RoutePolicy(content, caching)}


def declare_response(
    scope: MutableMapping[str, Any],
    content: ContentPolicy = ContentPolicy.API,
    caching: Caching = Caching.PRIVATE,
) -> None:
    """Give one response a policy of its own: the HTML error page answering a path
    that no route matched (whose default would be the JSON policy)."""
    scope.setdefault("state", {})[OPT_KEY] = RoutePolicy(content, caching)


def _csp(directives: Mapping[str, Sequence[str]]) -> bytes:
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items()).encode(
        "ascii"
    )


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _policies(image_hosts: Iterable[str]) -> dict[ContentPolicy, bytes]:
    api = {
        "default-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
    }
    # Any port: the URL policy accepts image URLs on any port of an allowed host.
    images = ["'self'", *(f"https://{_bracketed(host)}:*" for host in sorted(image_hosts))]
    page = {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": images,
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    docs = {**page, "img-src": ["'self'", "data:"], "form-action": ["'none'"]}
    return {
        ContentPolicy.API: _csp(api),
        ContentPolicy.PAGE: _csp(page),
        ContentPolicy.DOCS: _csp(docs),
    }


#: Headers this module owns: a handler's value for them is replaced.
_OWNED: Final = frozenset(
    {
        b"x-content-type-options",
        b"referrer-policy",
        b"content-security-policy",
        b"x-frame-options",
        b"strict-transport-security",
    }
)
_CACHE_CONTROL: Final = b"cache-control"
_NO_STORE: Final = b"no-store"


class SecurityHeaders:
    """Computes the header block once per policy; :meth:`apply` adds it to a response."""

    def __init__(self, *, image_hosts: Iterable[str] = (), hsts_max_age_s: int = 0) -> None:
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            # For the browsers that predate CSP's frame-ancestors.
            (b"x-frame-options", b"DENY"),
        ]
        if hsts_max_age_s > 0:
            common.append(
                (b"strict-transport-security", f"max-age={hsts_max_age_s}".encode("ascii"))
            )
        self._blocks: dict[ContentPolicy, tuple[tuple[bytes, bytes], ...]] = {
            policy: (*common, (b"content-security-policy", value))
            for policy, value in _policies(image_hosts).items()
        }

    @staticmethod
    def policy_of(scope: Mapping[str, Any]) -> RoutePolicy:
        """The policy the matched route declared (the default when none matched), unless
        the response declared its own (:func:`declare_response`)."""
        state = scope.get("state")
        if isinstance(state, Mapping) and isinstance(state.get(OPT_KEY), RoutePolicy):
            declared_here: RoutePolicy = state[OPT_KEY]
            return declared_here
        handler = scope.get("route_handler")
        opt = getattr(handler, "opt", None)
        if opt:
            declared = opt.get(OPT_KEY)
            if isinstance(declared, RoutePolicy):
                return declared
        return _DEFAULT

    def apply(
        self, scope: Mapping[str, Any], status: int, headers: Iterable[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """``headers`` with the security headers for the route ``scope`` matched."""
        return self.apply_policy(self.policy_of(scope), status, headers)

    def apply_policy(
        self, policy: RoutePolicy, status: int, headers: Iterable[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """``headers`` with the security headers of ``policy`` (the entry point's cached
        answers name their route's policy without a matched route)."""
        kept: list[tuple[bytes, bytes]] = []
        cache_control: bytes | None = None
        for name, value in headers:
            lowered = name.lower()
            if lowered in _OWNED:
                continue
            if lowered == _CACHE_CONTROL:
                cache_control = value
                continue
            kept.append((name, value))
        if policy.caching is Caching.PRIVATE or (cache_control is None and status >= 400):
            cache_control = _NO_STORE
        if cache_control is not None:
            kept.append((_CACHE_CONTROL, cache_control))
        kept.extend(self._blocks[policy.content])
        return kept

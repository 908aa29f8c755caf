"""Templates, form helpers and the friendly error pages of the web pages.

Templates are Jinja2 through Litestar's template engine, autoescaped, with
undefined names as errors. Every page gets the visitor (``me``, the CSRF
token) and the request id. Error pages (403, 404, 429, 500, …) are rendered
here for every page route: the status and ``Retry-After`` of the contract,
the request id shown to the person, never an exception's text.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import jinja2
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template.config import TemplateConfig
from litestar.types import ExceptionHandlersMap

from fleetprompt_core.base import limits
from fleetprompt_core.base.errors import DomainError, ErrorCode, FieldError, RateLimited
from fleetprompt_core.policies import passwords
from fleetprompt_http.context import request_id_of
from fleetprompt_http.errors import STATUS
from fleetprompt_http.logs import log_event
from fleetprompt_http.security_headers import ContentPolicy, declare_response
from fleetprompt_http.web.visitor import Visitor

__all__ = [
    "FormErrors",
    "error_page",
    "form_dict",
    "new_key",
    "page",
    "page_exception_handlers",
    "see_other",
    "template_config",
]

_HERE: Final = Path(__file__).parent
_log = logging.getLogger("fleetprompt.web")

_TITLES: Final[Mapping[int, tuple[str, str]]] = {
    400: ("Something is wrong with this request", "Please check what you sent and try again."),
    401: ("Please sign in", "This page needs you to be signed in."),
    403: ("You cannot do this", "You do not have the permission this page needs."),
    404: ("Page not found", "There is nothing here, or it is not visible to you."),
    405: ("Not allowed", "This page does not accept that kind of request."),
    409: ("That did not work", "The page changed while you were on it. Please try again."),
    413: (
        "Too large",
        "What you sent is larger than this server accepts "
        f"({limits.REQUEST_BODY_MAX_BYTES // 1024} KiB).",
    ),
    415: ("Not supported", "This server does not accept that kind of request."),
    429: ("Slow down", "Too many requests in a short time. Please wait a moment."),
    500: ("Something went wrong", "An error on our side stopped this page. Please try again."),
    501: ("Not offered here", "This server does not offer that."),
    503: ("Unavailable", "The service is briefly unavailable. Please try again shortly."),
}


def _when(ms: object) -> str:
    if not isinstance(ms, int):
        return ""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _iso(ms: object) -> str:
    if not isinstance(ms, int):
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["iso"] = _iso
    # Form bounds come from the core (``maxlength="{{ limits.NAME_MAX }}"``), never a number.
    environment.globals["limits"] = limits
    environment.globals["passwords"] = passwords
    return environment


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(_environment()))


def new_key() -> str:
    """A fresh idempotency key for a form: a double submit of the same form replays."""
    return "web-" + secrets.token_urlsafe(18)


def page(
    request: Request[Any, Any, Any],
    visitor: Visitor | None,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Template:
    """A full page (or, for an htmx request of a fragment template, just the fragment)."""
    me = visitor.me if visitor else None
    return Template(
        template_name=name,
        context={
            "me": me.user if me else None,
            "account": me.account if me else None,
            "csrf": visitor.csrf if visitor else "",
            "request_id": request_id_of(request.scope),
            "path": request.url.path,
            "fresh_key": new_key,
            **(context or {}),
        },
        status_code=status,
        headers=dict(headers or {}),
    )


def see_other(location: str) -> Redirect:
    """After a successful form post: the browser loads ``location`` with a GET (303)."""
    return Redirect(path=location, status_code=303)


async def form_dict(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The submitted form, one string per field (the last of repeated fields)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


class FormErrors:
    """Field errors of a use case, keyed by the form field they belong to."""

    def __init__(
        self, fields: tuple[FieldError, ...] = (), aliases: Mapping[str, str] | None = None
    ):
        self.by_field: dict[str, list[str]] = {}
        for error in fields:
            self.add(_form_field(error.field_name, aliases or {}), error.message)

    def add(self, field: str, message: str) -> None:
        self.by_field.setdefault(field, []).append(message)

    def get(self, field: str) -> list[str]:
        return self.by_field.get(field, [])

    def __bool__(self) -> bool:
        return bool(self.by_field)


def _form_field(path: str, aliases: Mapping[str, str]) -> str:
    """``tags[3]`` → ``tags``, ``links.docsUrl`` → ``docsUrl`` (through ``aliases`` first)."""
    base = path.split("[", 1)[0]
    if base in aliases:
        return aliases[base]
    return base.rsplit(".", 1)[-1] if "." in base else base


def error_page(
    request: Request[Any, Any, Any], status: int, message: str | None = None
) -> Response[Any]:
    title, text = _TITLES.get(status, _TITLES[500])
    headers: dict[str, str] = {}
    return page(
        request,
        None,
        "error.html",
        {"status": status, "title": title, "text": message or text},
        status=status,
        headers=headers,
    )


def _domain(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    status = STATUS.get(exc.code, 500)
    if exc.code is ErrorCode.UNAUTHENTICATED:
        return see_other("/signin?next=" + _quoted_path(request))
    message = exc.message if exc.code is not ErrorCode.INTERNAL else None
    if exc.code is ErrorCode.INTERNAL:
        log_event(
            _log, logging.ERROR, "internal error", {"requestId": request_id_of(request.scope)}
        )
    response = error_page(request, status, message)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _quoted_path(request: Request[Any, Any, Any]) -> str:
    from urllib.parse import quote  # noqa: PLC0415

    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return quote(target, safe="")


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code if exc.status_code in _TITLES else 500
    response = error_page(request, status)
    if status == 405:
        allow = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("allow")
        if allow:
            response.headers["Allow"] = allow
    return response


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log_event(
        _log,
        logging.ERROR,
        "unhandled exception",
        {"requestId": request_id_of(request.scope), "error": type(exc).__name__},
    )
    return error_page(request, 500)


def page_exception_handlers() -> ExceptionHandlersMap:
    return {DomainError: _domain, HTTPException: _http, Exception: _unexpected}


def wants_page(request: Request[Any, Any, Any]) -> bool:
    """A browser navigating to a path outside the API (for the app's 404 and 405)."""
    path = request.url.path
    if path.startswith(("/v1/", "/mcp", "/schema", "/healthz")) or path in ("/v1", "/mcp"):
        return False
    return "text/html" in request.headers.get("accept", "")


def with_pages(handlers: ExceptionHandlersMap) -> ExceptionHandlersMap:
    """The app's handlers, except that a browser navigating to a path no route
    matches (outside the API) gets the friendly 404/405 page instead of JSON."""
    json_http = handlers[HTTPException]

    def http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
        if wants_page(request):
            declare_response(request.scope, ContentPolicy.PAGE)  # type: ignore[arg-type]
            return _http(request, exc)
        return json_http(request, exc)

    return {**handlers, HTTPException: http}

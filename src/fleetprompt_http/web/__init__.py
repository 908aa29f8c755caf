"""The bundled web pages (§12): server-rendered, working without JavaScript.

Pages call the core's use cases directly (never the JSON API over HTTP),
signed in by a server-side session cookie (:mod:`.visitor`); templates and
static files (our stylesheet and script, and htmx, vendored) ship inside the
package, so the server works air-gapped. Every page declares the page content
policy of :mod:`fleetprompt_http.security_headers` (a strict CSP without
``unsafe-inline`` or ``unsafe-eval``). ADR 0019 records the design.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from fleetprompt_http.security_headers import Caching, ContentPolicy, declare
from fleetprompt_http.web.accounts import AccountPages
from fleetprompt_http.web.admin import AdminPages
from fleetprompt_http.web.buyer import BuyerPages
from fleetprompt_http.web.console import ConsolePages
from fleetprompt_http.web.public import PublicPages
from fleetprompt_http.web.rendering import (
    page_exception_handlers,
    template_config,
    wants_page,
    with_pages,
)

__all__ = ["page_exception_handlers", "template_config", "wants_page", "web_routers", "with_pages"]

STATIC_DIRECTORY: Final = Path(__file__).parent / "static"


def web_routers() -> list[Router]:
    """The page routes (with their HTML error pages) and the static files."""
    pages = Router(
        path="/",
        route_handlers=[PublicPages, AccountPages, BuyerPages, ConsolePages, AdminPages],
        exception_handlers=page_exception_handlers(),
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/static",
        directories=[STATIC_DIRECTORY],
        cache_control=CacheControlHeader(max_age=3600, public=True),
        opt=declare(content=ContentPolicy.PAGE, caching=Caching.PUBLIC),
        include_in_schema=False,
    )
    return [pages, static]

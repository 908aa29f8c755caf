"""The API docs (Swagger UI) served from the package, never from a CDN.

The page at ``/schema/swagger`` (and ``/schema``) loads Swagger UI's script and
stylesheet and a small initializer from ``/schema/assets/``: it works on an
air-gapped host, holds no inline script (so its Content-Security-Policy can
forbid inline code) and cannot be framed. The assets are vendored, unchanged,
from ``swagger-ui-dist`` (see ``assets/README.md`` and the licence beside it).
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Any, Final

from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath

from fleetprompt_http.security_headers import Caching, ContentPolicy, declare

__all__ = ["SWAGGER_UI_VERSION", "PackagedSwagger", "docs_router"]

SWAGGER_UI_VERSION: Final = "5.35.0"

#: The files a browser may fetch, with their media types (nothing else is served).
_ASSETS: Final = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "init.js": "text/javascript",
    "LICENSE": "text/plain",
    "NOTICE": "text/plain",
}
#: Assets change only with the package, and their URLs carry its version.
_ASSET_CACHE: Final = "public, max-age=86400"


@cache
def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("assets", name).read_bytes()


@get(
    "/assets/{version:str}/{name:str}",
    include_in_schema=False,
    sync_to_thread=False,
    name="fleetprompt-apidocs-asset",
)
def _serve_asset(version: FromPath[str], name: FromPath[str]) -> Response[bytes]:
    if version != SWAGGER_UI_VERSION or name not in _ASSETS:
        raise NotFoundException
    return Response(_asset(name), media_type=_ASSETS[name], headers={"Cache-Control": _ASSET_CACHE})


def docs_router(path: str = "/schema") -> Router:
    """The router Litestar adds the docs to: public, with the docs' page policy."""
    return Router(
        path,
        route_handlers=[],
        include_in_schema=False,
        opt=declare(content=ContentPolicy.DOCS, caching=Caching.PUBLIC),
    )


class PackagedSwagger(OpenAPIRenderPlugin):
    """Swagger UI from the package's assets, started by an external script."""

    def __init__(self, *, path: str = "/swagger") -> None:
        super().__init__(path=path)
        self._assets = "/schema/assets"

    def receive_router(self, router: Router) -> None:
        self._assets = f"{router.path.rstrip('/')}/assets/{SWAGGER_UI_VERSION}"
        router.register(_serve_asset)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema["info"]["title"]))
        spec_url = html.escape(self.get_openapi_json_route(request))
        assets = html.escape(self._assets)
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f"<title>{title}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="stylesheet" href="{assets}/swagger-ui.css">'
            "</head><body>"
            f'<div id="swagger-ui" data-spec-url="{spec_url}"></div>'
            f'<script src="{assets}/swagger-ui-bundle.js"></script>'
            f'<script src="{assets}/init.js"></script>'
            "</body></html>\n"
        ).encode()

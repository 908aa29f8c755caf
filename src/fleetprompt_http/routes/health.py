"""H1: liveness for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

from litestar import Request, Response, get

from fleetprompt_http.handling import respond, services_of
from fleetprompt_http.openapi import documented
from fleetprompt_http.routes.docs import errors

__all__ = ["healthz"]


class Health(TypedDict):
    ok: Literal[True]
    version: str


@get(
    "/healthz",
    summary="Liveness",
    tags=["health"],
    responses=errors(),
    operation_class=documented(security="none"),
)
async def healthz(request: Request[Any, Any, Any]) -> Response[Health]:
    return respond({"ok": True, "version": services_of(request).version})

"""H1: liveness and readiness for load balancers and orchestrators.

``/healthz`` (liveness) touches nothing: it answers as long as the process
serves requests, so an orchestrator does not restart servers because the
database is down. ``/readyz`` (readiness) makes one round trip to the
database, and to Redis when configured, each bounded by
:data:`READINESS_TIMEOUT_S`: ``503 UNAVAILABLE`` naming what did not answer
takes the process out of rotation until it does. Both answer ``HEAD`` too
(the entry point serves every GET route's headers for it, without a body).
"""

from __future__ import annotations

from typing import Any, Final, Literal, TypedDict

import anyio
from anyio import to_thread
from litestar import Request, Response, get

from fleetprompt_core.base.errors import ErrorCode, Unavailable
from fleetprompt_http.handling import ReadinessCheck, respond, services_of
from fleetprompt_http.openapi import documented
from fleetprompt_http.routes.docs import errors

__all__ = ["READINESS_TIMEOUT_S", "healthz", "readyz"]

#: How long each readiness check may take before it counts as down.
READINESS_TIMEOUT_S: Final = 2.0


class Health(TypedDict):
    ok: Literal[True]
    version: str


class Readiness(TypedDict):
    ok: Literal[True]
    version: str
    #: Each dependency checked, with ``"ok"``.
    checks: dict[str, Literal["ok"]]


@get(
    "/healthz",
    summary="Liveness",
    description="Answers while the process serves requests; checks no dependency. "
    "`HEAD` answers the same headers without a body.",
    tags=["health"],
    responses=errors(),
    operation_class=documented(security="none"),
)
async def healthz(request: Request[Any, Any, Any]) -> Response[Health]:
    return respond({"ok": True, "version": services_of(request).version})


async def _answers(check: ReadinessCheck) -> bool:
    with anyio.move_on_after(READINESS_TIMEOUT_S):
        try:
            await to_thread.run_sync(check.probe, abandon_on_cancel=True)
        except Exception:
            return False
        return True
    return False


@get(
    "/readyz",
    summary="Readiness",
    description="One round trip to the database (and Redis when configured), each bounded "
    f"by {READINESS_TIMEOUT_S:g} s; `503 UNAVAILABLE` names what did not answer. `HEAD` "
    "answers the same headers without a body.",
    tags=["health"],
    responses=errors(ErrorCode.UNAVAILABLE),
    operation_class=documented(security="none"),
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Readiness]:
    services = services_of(request)
    results: dict[str, bool] = {}

    async def run(check: ReadinessCheck) -> None:
        results[check.name] = await _answers(check)

    async with anyio.create_task_group() as group:
        for check in services.readiness:
            group.start_soon(run, check)
    down = [check.name for check in services.readiness if not results[check.name]]
    if down:
        raise Unavailable("Not ready: " + ", ".join(down) + " did not answer.")
    return respond(
        {"ok": True, "version": services.version, "checks": dict.fromkeys(results, "ok")}
    )

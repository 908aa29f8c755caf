"""The ceiling of ``bench/http_bench.py``: a bare Litestar app answering canned JSON from memory.

It serves ``GET|POST /ceiling/{name}`` with the JSON body (and status) that
FleetPrompt gave for the endpoint ``name``, captured by the benchmark and
passed in the file named by ``FLEETPROMPT_BENCH_CEILING_BODIES``
(``{name: {"status": int, "body": <json>}}``). The body is kept as Python
objects and serialised by Litestar on every request, as FleetPrompt's
handlers do; a POST reads the request body first. Nothing else runs: no
middleware, no database, no thread hop, no logging — what is left of a
request is uvicorn, Litestar's routing and JSON encoding, which is the
ceiling any FleetPrompt endpoint of the same size can reach. Served by
``uvicorn http_ceiling:create_app --factory --app-dir bench``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from litestar import Litestar, MediaType, Request, Response, route

BODIES_ENV = "FLEETPROMPT_BENCH_CEILING_BODIES"


def create_app() -> Litestar:
    bodies: dict[str, dict[str, Any]] = json.loads(
        Path(os.environ[BODIES_ENV]).read_text(encoding="utf-8")
    )

    @route("/ceiling/{name:str}", http_method=["GET", "POST"])
    async def ceiling(request: Request[Any, Any, Any], name: str) -> Response[Any]:
        if request.method == "POST":
            await request.body()
        canned = bodies[name]
        return Response(canned["body"], status_code=canned["status"], media_type=MediaType.JSON)

    @route("/healthz", http_method=["GET"])
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return Litestar([ceiling, healthz], logging_config=None, openapi_config=None)

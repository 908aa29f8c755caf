"""Requests sent straight to an ASGI app, without a server or a socket: what the
in-process benches (``asgi_read_bench.py``, ``asgi_write_bench.py``) share.

Only the standard library: the benches import it in a worker process before the
tree under test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

__all__ = ["call", "lifespan", "scope"]


def scope(method: str, path: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The HTTP scope of one request from 127.0.0.1 (``host`` first, then ``headers``)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in {"host": "127.0.0.1:8000", **(headers or {})}.items()
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(app: Any, request: dict[str, Any], body: bytes = b"") -> tuple[int, int]:
    """Send ``request`` with ``body`` to ``app``: the response's status and body size."""
    status = 0
    size = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # the client stays connected until the app is done
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))

    await app(request, receive, send)
    return status, size


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """``app`` started (ASGI lifespan startup) for the block, shut down after it."""
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    done: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await events.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        await done.put(message)

    running = asyncio.ensure_future(app({"type": "lifespan"}, events.get, send))
    started = await done.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    try:
        yield
    finally:
        await events.put({"type": "lifespan.shutdown"})
        await running

"""Live plumbing for the MCP suites: real server processes and the SDK's own client.

- :class:`Deployment` is one SQLite file in a temporary directory, migrated and
  seeded through the core as an operator would, served by ``fleetprompt serve``
  (the console script, as the README starts it) on an ephemeral loopback port,
  its stderr in a log file; :meth:`Deployment.stdio` starts ``fleetprompt mcp``
  on the same database for one client.
- :func:`http_client` and :func:`stdio_client` are the SDK's ``Client`` over
  streamable HTTP (with an optional bearer token) and over stdio.
- :func:`run` drives one async test body on a fresh event loop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import attrs
import httpx
import httpx2
import pytest
import sqlalchemy as sa
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from fleetprompt_adapters import sql
from fleetprompt_core import CoreSettings, FleetPrompt
from support import CURSOR_KEY, IMAGE_HOST

__all__ = [
    "REDEEM_SECRET",
    "Deployment",
    "deployment",
    "error_of",
    "http_client",
    "run",
    "stdio_client",
]

T = TypeVar("T")

REDEEM_SECRET = "mcp-suite-redeem-secret-of-at-least-32-bytes"
STARTUP_TIMEOUT_S = 20.0
CLIENT_TIMEOUT_S = 15.0


def run(body: Callable[[], Awaitable[T]]) -> T:
    """Run one async test body to completion on its own event loop."""
    return anyio.run(body)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@attrs.define
class Deployment:
    """A database, the seeding core and the server process serving it."""

    directory: Path
    database_url: str
    fp: FleetPrompt
    engine: sa.Engine
    env: dict[str, str]
    base_url: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.directory / "serve.stderr"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=CLIENT_TIMEOUT_S)

    def stdio(self, token: str | None = None, **env: str) -> StdioServerParameters:
        """``fleetprompt mcp`` on this database, as a local assistant would start it."""
        variables = dict(self.env, **env)
        if token is not None:
            variables["FLEETPROMPT_MCP_TOKEN"] = token
        return StdioServerParameters(
            command="fleetprompt", args=["mcp"], env=variables, cwd=str(self.directory)
        )

    def start(self) -> None:
        port = _free_port()
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                ["fleetprompt", "serve", "--port", str(port)],  # noqa: S607 - the console script
                cwd=self.directory,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with httpx.Client(timeout=1.0) as probe:
            while True:
                if self.process.poll() is not None:
                    pytest.fail(f"fleetprompt serve exited at start-up:\n{self.log_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if probe.get(self.base_url + "/healthz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    pytest.fail(f"fleetprompt serve not healthy:\n{self.log_text()}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                self.process.kill()
                self.process.wait(timeout=5)


@contextlib.contextmanager
def deployment(directory: Path, **env: str) -> Iterator[Deployment]:
    """A migrated SQLite database in ``directory`` served by ``fleetprompt serve``."""
    if shutil.which("fleetprompt") is None:
        pytest.skip("the MCP suites need the fleetprompt console script (pip install -e .)")
    database_url = f"sqlite:///{directory / 'fleetprompt.db'}"
    variables = {name: value for name, value in os.environ.items() if "FLEETPROMPT" not in name}
    variables.update(
        {
            "FLEETPROMPT_DATABASE_URL": database_url,
            "FLEETPROMPT_CURSOR_KEY": CURSOR_KEY.decode("ascii"),
            "FLEETPROMPT_INTERNAL_REDEEM_SECRET": REDEEM_SECRET,
            "FLEETPROMPT_IMAGE_HOSTS": IMAGE_HOST,
            "FLEETPROMPT_LOG_LEVEL": "DEBUG",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
    )
    engine = sql.create_engine(database_url)
    sql.upgrade(engine)
    fp = sql.bootstrap(
        engine, settings=CoreSettings(image_hosts=frozenset({IMAGE_HOST})), cursor_key=CURSOR_KEY
    )
    live = Deployment(directory, database_url, fp, engine, variables)
    try:
        live.start()
        yield live
    finally:
        live.stop()
        engine.dispose()


@contextlib.asynccontextmanager
async def http_client(
    base_url: str, token: str | None = None, *, headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    """The SDK's client of ``base_url``/mcp over streamable HTTP, as ``token``'s owner."""
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        httpx2.AsyncClient(headers=headers, timeout=CLIENT_TIMEOUT_S) as http,
        Client(streamable_http_client(base_url + "/mcp", http_client=http), cache=None) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def stdio_client(params: StdioServerParameters) -> AsyncIterator[Client]:
    """The SDK's client of a ``fleetprompt mcp`` process it starts and stops."""
    async with Client(params, cache=None) as client:
        yield client


def error_of(result: CallToolResult) -> dict[str, Any]:
    """The contract's error body of a failed tool call (fails if the call succeeded)."""
    assert result.is_error, result.structured_content
    body = result.structured_content
    assert isinstance(body, dict)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict)
    assert str(error["requestId"]).startswith("req_")
    assert error["requestId"] in result.content[0].text  # type: ignore[union-attr]
    return error

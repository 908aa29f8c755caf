"""Live plumbing for the HTTP security suites: a real uvicorn server and log capture.

- :func:`serve` runs an app (usually ``api.client.app``, so the test can still seed
  through ``api``) under uvicorn on ``127.0.0.1`` with an ephemeral port, in a
  thread, and stops it on exit. The lifespan is off: the ``TestClient`` already
  started the app, and a second shutdown would dispose its engine.
- :func:`captured_logs` sends every log record through the server's own JSON
  configuration (``fleetprompt_http.logs.configure_logging``) into a string,
  and restores the logging setup it replaced (pytest's handlers included).
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from fleetprompt_http.logs import configure_logging

__all__ = ["LogCapture", "captured_logs", "serve"]

_NAMED = ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar")


@contextmanager
def serve(app: Any, *, timeout_s: float = 10.0) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (ephemeral port); yields the base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_config=None,
        access_log=False,
        ws="none",
        http="h11",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        (listener,) = server.servers
        port = listener.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        assert not thread.is_alive(), "the test server did not stop"


class LogCapture:
    """The JSON lines written while capturing."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]

    def records(self) -> list[dict[str, Any]]:
        """Every line parsed as a JSON object (fails on a line that is not one)."""
        parsed = []
        for line in self.lines():
            record = json.loads(line)
            assert isinstance(record, dict), line
            parsed.append(record)
        return parsed

    def access(self) -> list[dict[str, Any]]:
        """The access lines (one per request)."""
        return [r for r in self.records() if r.get("logger") == "fleetprompt.access"]


@contextmanager
def captured_logs(level: str = "DEBUG") -> Iterator[LogCapture]:
    """Log everything as the server does (``configure_logging``) into a string buffer."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved_named = {
        name: (
            list(logging.getLogger(name).handlers),
            logging.getLogger(name).propagate,
            logging.getLogger(name).disabled,
        )
        for name in _NAMED
    }
    stream = io.StringIO()
    configure_logging(level=level, stream=stream)
    try:
        yield LogCapture(stream)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved_root[0]:
            root.addHandler(handler)
        root.setLevel(saved_root[1])
        for name, (handlers, propagate, disabled) in saved_named.items():
            named = logging.getLogger(name)
            named.handlers[:] = handlers
            named.propagate = propagate
            named.disabled = disabled

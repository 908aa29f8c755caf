"""Serving: the app factory every worker process calls, and the HTTP servers that run it.

``fleetprompt serve`` runs :func:`app_from_env` as a factory, so that each
worker process reads the same environment, configures the same JSON logging
and builds its own engine and pool after the fork. The default server is
granian (ADR 0029): its HTTP/1 parser (Rust, outside the GIL) bounds what one
connection may send before its request reaches the app — a request head larger
than :data:`MAX_HEAD_BYTES` or with more than 100 header fields is answered
``431`` and the connection closed, and a client that has not sent its whole
head within :data:`HEAD_TIMEOUT_MS` (``FLEETPROMPT_HEAD_TIMEOUT_MS``) is
disconnected — so a flood or a trickle on one connection does not stall the
others. uvicorn stays available
(``--server uvicorn``) without those bounds.
"""

from __future__ import annotations

import os
from typing import Final

from litestar import Litestar

from fleetprompt_http.app import create_app
from fleetprompt_http.logs import configure_logging
from fleetprompt_http.settings import Settings

__all__ = ["HEAD_TIMEOUT_MS", "MAX_HEAD_BYTES", "SERVERS", "app_from_env", "run"]

#: The read buffer of one HTTP/1 connection; a request head that does not fit
#: (a few times this at most, as the parser grows its buffer) is answered 431.
MAX_HEAD_BYTES: Final = 64 * 1024
#: How long a client may take to send a request head (slow clients are closed);
#: ``FLEETPROMPT_HEAD_TIMEOUT_MS`` changes it.
HEAD_TIMEOUT_MS: Final = 10_000
#: The servers ``fleetprompt serve --server`` offers; the first is the default.
SERVERS: Final = ("granian", "uvicorn")
_FACTORY: Final = "fleetprompt_http.server:app_from_env"


def app_from_env() -> Litestar:
    """The server as configured by ``FLEETPROMPT_*`` variables, logging JSON to stderr."""
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_level)
    return create_app(settings)


def run(
    server: str, host: str, port: int, workers: int, *, head_timeout_ms: int = HEAD_TIMEOUT_MS
) -> None:
    """Serve :func:`app_from_env` with ``server`` (one of :data:`SERVERS`) until stopped."""
    if server == "granian":
        from granian import Granian  # noqa: PLC0415 - the chosen server only
        from granian.constants import HTTPModes, Interfaces, Loops  # noqa: PLC0415
        from granian.http import HTTP1Settings  # noqa: PLC0415
        from granian.log import LogLevels  # noqa: PLC0415

        Granian(
            _FACTORY,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            factory=True,
            workers=workers,
            loop=Loops.auto,
            http=HTTPModes.http1,  # TLS and HTTP/2 end at the proxy in front
            websockets=False,
            http1_settings=HTTP1Settings(
                header_read_timeout=head_timeout_ms, max_buffer_size=MAX_HEAD_BYTES
            ),
            log_level=LogLevels.warning,  # our access lines are the app's (JSON)
            log_access=False,
        ).serve()
        return
    import uvicorn  # noqa: PLC0415

    uvicorn.run(
        _FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # the app reads X-Forwarded-For from trusted proxies only
    )

"""Serving with uvicorn: the app factory every worker process calls.

``fleetprompt serve`` runs ``uvicorn`` with :func:`app_from_env` as a factory,
so that each worker process reads the same environment, configures the same
JSON logging and builds its own engine and pool after the fork.
"""

from __future__ import annotations

import os

from litestar import Litestar

from fleetprompt_http.app import create_app
from fleetprompt_http.logs import configure_logging
from fleetprompt_http.settings import Settings

__all__ = ["app_from_env"]


def app_from_env() -> Litestar:
    """The server as configured by ``FLEETPROMPT_*`` variables, logging JSON to stderr."""
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_level)
    return create_app(settings)

"""The ``fleetprompt`` console script's entry point.

A core-only install (``pip install fleetprompt``, no extras) still installs the
script; without the ``server`` extra it says which extra to install instead of
failing with a traceback. Everything else is :mod:`fleetprompt_http.cli`.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run the ``fleetprompt`` command (exit status 2 when the ``server`` extra is missing)."""
    try:
        import click  # noqa: F401, PLC0415 - the command line's one start-up dependency
    except ModuleNotFoundError:
        from fleetprompt_adapters import MissingExtra  # noqa: PLC0415

        message = MissingExtra("the fleetprompt command", "server", "click")
        sys.stderr.write(f"fleetprompt: error: {message}\n")
        sys.exit(2)
    from fleetprompt_http.cli import main as command  # noqa: PLC0415

    command()

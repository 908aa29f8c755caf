"""FleetPrompt's adapters: the in-memory store (``memory``), the SQL store (``sql``),
the OIDC resolver and the Redis rate limiter behind the core's ports.

Each adapter beyond ``memory`` needs an optional extra of the ``fleetprompt``
distribution; importing one without it raises :class:`MissingExtra`, which says
what to install.
"""

from __future__ import annotations

__all__ = ["MissingExtra"]


class MissingExtra(ImportError):
    """An adapter was used without the optional dependencies it needs.

    The message names the extra to install, for example
    ``pip install 'fleetprompt[sql]'``.
    """

    def __init__(self, feature: str, extra: str, missing: str | None) -> None:
        self.extra = extra
        what = f" (module {missing!r} is not installed)" if missing else ""
        super().__init__(
            f"{feature} needs the {extra!r} extra{what}: pip install 'fleetprompt[{extra}]'",
            name=missing,
        )

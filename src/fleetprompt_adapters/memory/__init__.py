"""In-process adapter: a production-quality implementation of every port.

Use :func:`bootstrap` to get a ready :class:`~fleetprompt_core.FleetPrompt`
for tests, examples and single-process deployments.
"""

from __future__ import annotations

from typing import Unpack

from fleetprompt_adapters.memory.rate_limit import MemoryRateLimiter
from fleetprompt_adapters.memory.store import (
    MemoryCatalogVersion,
    MemoryStore,
    MemoryUnitOfWork,
)
from fleetprompt_adapters.system import ManualClock, Wiring, compose
from fleetprompt_core import FleetPrompt

__all__ = [
    "ManualClock",
    "MemoryCatalogVersion",
    "MemoryRateLimiter",
    "MemoryStore",
    "MemoryUnitOfWork",
    "Wiring",
    "bootstrap",
]


def bootstrap(*, store: MemoryStore | None = None, **wiring: Unpack[Wiring]) -> FleetPrompt:
    """A :class:`FleetPrompt` over an in-memory store (a new one unless given).

    The other keywords are :class:`~fleetprompt_adapters.system.Wiring`'s
    (``clock``, ``settings``, ``cursor_key``, ``limiter``, ``rate_limits``,
    ...), the same for every adapter; each has a default.
    """
    store = store if store is not None else MemoryStore()
    return compose(store.unit_of_work, catalog_version=store.catalog_version, **wiring)

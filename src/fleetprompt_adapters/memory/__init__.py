"""In-process adapter: a production-quality implementation of every port.

Use :func:`bootstrap` to get a ready :class:`~fleetprompt_core.FleetPrompt`
for tests, examples and single-process deployments.
"""

from __future__ import annotations

from fleetprompt_adapters.memory.rate_limit import MemoryRateLimiter
from fleetprompt_adapters.memory.store import (
    MemoryCatalogVersion,
    MemoryStore,
    MemoryUnitOfWork,
)
from fleetprompt_adapters.system import ManualClock, compose
from fleetprompt_core import CoreSettings, FleetPrompt
from fleetprompt_core.policies.rate_limits import RateLimits
from fleetprompt_core.ports import (
    Clock,
    IdGenerator,
    PasswordHasher,
    RateLimiter,
    TokenGenerator,
    TokenHasher,
)

__all__ = [
    "ManualClock",
    "MemoryCatalogVersion",
    "MemoryRateLimiter",
    "MemoryStore",
    "MemoryUnitOfWork",
    "bootstrap",
]


def bootstrap(
    *,
    store: MemoryStore | None = None,
    clock: Clock | None = None,
    settings: CoreSettings | None = None,
    cursor_key: bytes | None = None,
    ids: IdGenerator | None = None,
    tokens: TokenGenerator | None = None,
    hasher: TokenHasher | None = None,
    limiter: RateLimiter | None = None,
    rate_limits: RateLimits | None = None,
    passwords: PasswordHasher | None = None,
) -> FleetPrompt:
    """A :class:`FleetPrompt` over an in-memory store (a new one unless given)."""
    store = store if store is not None else MemoryStore()
    return compose(
        store.unit_of_work,
        clock=clock,
        settings=settings,
        cursor_key=cursor_key,
        ids=ids,
        tokens=tokens,
        hasher=hasher,
        limiter=limiter,
        rate_limits=rate_limits,
        passwords=passwords,
        catalog_version=store.catalog_version,
    )

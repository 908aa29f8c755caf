"""What every use case runs with: the wired ports, settings and the caller."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

import attrs

from fleetprompt_core.base import limits
from fleetprompt_core.base.errors import Conflict
from fleetprompt_core.policies.pagination import CursorCodec
from fleetprompt_core.policies.rate_limits import RateLimits
from fleetprompt_core.policies.urls import normalize_host_allowlist
from fleetprompt_core.ports import (
    CatalogVersion,
    Clock,
    IdGenerator,
    PasswordHasher,
    Principal,
    RateLimiter,
    TokenGenerator,
    TokenHasher,
    UnitOfWork,
    UnitOfWorkFactory,
)

__all__ = ["Call", "CoreSettings", "Outcome", "Runtime", "changed_ok"]

T = TypeVar("T")


def _hosts(value: str | Iterable[str]) -> frozenset[str]:
    """An allowlist from an iterable of hosts or one comma-separated string."""
    return normalize_host_allowlist(value.split(",") if isinstance(value, str) else value)


@attrs.frozen
class CoreSettings:
    """Operator settings the rules depend on."""

    #: Hosts listing images may point at (``*.example.com`` for subdomains); empty ⇒ no images.
    image_hosts: frozenset[str] = attrs.field(default=frozenset(), converter=_hosts)
    #: Whether anyone may create a built-in account (operators always can).
    signup_enabled: bool = True
    #: A browser session ends after this long without a request...
    session_idle_ms: int = attrs.field(default=12 * 3_600_000, validator=attrs.validators.ge(1))
    #: ...and this long after sign-in in any case.
    session_max_ms: int = attrs.field(default=7 * 86_400_000, validator=attrs.validators.ge(1))
    #: How long an idempotency claim whose request never finished (its process was
    #: killed) blocks its key; retries meanwhile get the "in progress" ``CONFLICT``.
    #: A shorter lease is safe: a late finisher's result is refused (ADR 0007).
    idempotency_lease_ms: int = attrs.field(
        default=limits.IDEMPOTENCY_LEASE_MS, validator=attrs.validators.ge(1)
    )


@attrs.frozen
class Runtime:
    """The ports a use case needs, wired once by a composition root."""

    uow: UnitOfWorkFactory
    clock: Clock
    ids: IdGenerator
    tokens: TokenGenerator
    hasher: TokenHasher
    cursors: CursorCodec
    settings: CoreSettings = CoreSettings()
    #: Counters for rate limits; ``None`` disables rate limiting.
    limiter: RateLimiter | None = None
    rate_limits: RateLimits = attrs.field(factory=RateLimits)
    #: Units of work that only read (never commit); adapters may run them without
    #: taking write locks. ``None``: reads use ``uow`` too.
    read_uow: UnitOfWorkFactory | None = None
    #: The password hash of built-in accounts; ``None``: accounts are unavailable.
    passwords: PasswordHasher | None = None
    #: The storage's catalogue version (copies of public answers check it);
    #: ``None``: the storage offers none, so nothing may keep such copies.
    catalog_version: CatalogVersion | None = None

    def reader(self) -> UnitOfWork:
        """A unit of work for a use case (or a step) that only reads."""
        return (self.read_uow or self.uow)()


@attrs.frozen
class Call:
    """Who is calling and under which request id (for the audit log)."""

    principal: Principal | None = None
    request_id: str | None = None
    #: The client's address, for per-client rate limits of anonymous calls.
    client: str | None = None

    @classmethod
    def as_user(cls, external_id: str, request_id: str | None = None) -> Call:
        """A call by the user whose identity provider names them ``external_id``."""
        return cls(Principal(external_id), request_id)


@attrs.frozen
class Outcome(Generic[T]):
    """The result of an idempotent write; ``replayed`` when it is a stored response."""

    value: T
    replayed: bool = False


def changed_ok(stored: bool) -> None:
    """Turn a lost compare-and-set into ``CONFLICT`` (the use case rolls back)."""
    if not stored:
        raise Conflict("The resource changed while this request ran.", hint="retry the request")

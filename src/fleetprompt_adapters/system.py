"""Plain implementations of the core's small ports: clock, ids, tokens, hashing."""

from __future__ import annotations

import os
import secrets
import threading
import time
from typing import TypedDict, Unpack

from fleetprompt_adapters.passwords import Argon2PasswordHasher
from fleetprompt_core import CoreSettings, CursorCodec, FleetPrompt, Runtime
from fleetprompt_core.policies.rate_limits import RateLimits
from fleetprompt_core.policies.tokens import generate_token, hash_token
from fleetprompt_core.ports import (
    CatalogVersion,
    Clock,
    IdGenerator,
    PasswordHasher,
    RateLimiter,
    TokenGenerator,
    TokenHasher,
    UnitOfWorkFactory,
)

__all__ = [
    "ManualClock",
    "SecretTokenGenerator",
    "Sha256TokenHasher",
    "SystemClock",
    "UlidIdGenerator",
    "Wiring",
    "compose",
]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class SystemClock:
    """Wall-clock time in epoch milliseconds."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to: for tests and simulations."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:  # 2026-01-01T00:00:00Z
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError("time does not run backwards")
        with self._lock:
            self._now += ms
            return self._now

    def set(self, now_ms: int) -> None:
        with self._lock:
            self._now = now_ms


class UlidIdGenerator:
    """``prefix_`` + a 26-character ULID: 48-bit milliseconds, 80 random bits.

    Ids are unique and sort by creation time; within one millisecond they
    increase monotonically (the random part is incremented), so the string
    order of ids from one generator is their creation order.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def _next(self) -> tuple[int, int]:
        with self._lock:
            now = self._clock.now_ms()
            if now <= self._last_ms:
                now = self._last_ms
                self._last_random += 1
                if self._last_random >= 1 << 80:  # pragma: no cover - 2**80 ids in one ms
                    now += 1
                    self._last_random = int.from_bytes(os.urandom(10), "big") >> 1
            else:
                self._last_random = int.from_bytes(os.urandom(10), "big") >> 1
            self._last_ms = now
            return now, self._last_random

    def new_id(self, prefix: str) -> str:
        ms, rand = self._next()
        value = (ms << 80) | rand
        chars = []
        for _ in range(26):
            chars.append(_CROCKFORD[value & 31])
            value >>= 5
        return f"{prefix}_{''.join(reversed(chars))}"


class SecretTokenGenerator:
    """256-bit tokens from the operating system's CSPRNG."""

    def new_token(self, prefix: str) -> str:
        return generate_token(prefix)


class Sha256TokenHasher:
    """SHA-256 of the token (ADR 0005): right for 256-bit random secrets."""

    def hash(self, raw_token: str) -> str:
        return hash_token(raw_token)


class Wiring(TypedDict, total=False):
    """What a :class:`FleetPrompt` is wired with besides its store, named once.

    Every adapter's ``bootstrap(...)`` takes these keywords and hands them to
    :func:`compose`; each is optional, and a missing or ``None`` one gets the
    default :func:`compose` names. A new collaborator is one line here and
    one in :func:`compose`.
    """

    #: Epoch milliseconds; :class:`SystemClock` by default.
    clock: Clock | None
    #: Image host allowlist, idempotency lease, sign-up and session lengths.
    settings: CoreSettings | None
    #: Signs pagination cursors; several processes serving one store must share it.
    cursor_key: bytes | None
    #: ULIDs (:class:`UlidIdGenerator` over the clock) by default.
    ids: IdGenerator | None
    #: CSPRNG tokens (:class:`SecretTokenGenerator`) by default.
    tokens: TokenGenerator | None
    #: SHA-256 (:class:`Sha256TokenHasher`) by default.
    hasher: TokenHasher | None
    #: No limiter: nothing is rate limited.
    limiter: RateLimiter | None
    #: The limits the limiter enforces (the contract's defaults).
    rate_limits: RateLimits | None
    #: argon2id (RFC 9106) by default.
    passwords: PasswordHasher | None


def compose(
    uow: UnitOfWorkFactory,
    *,
    read_uow: UnitOfWorkFactory | None = None,
    catalog_version: CatalogVersion | None = None,
    **wiring: Unpack[Wiring],
) -> FleetPrompt:
    """A :class:`FleetPrompt` over a storage adapter, with system defaults for the rest.

    Every adapter's ``bootstrap()`` ends here: the system clock, ULID ids,
    CSPRNG tokens, SHA-256 hashes, argon2id password hashes (RFC 9106) and a
    random cursor key unless given (several processes serving one store must
    share ``cursor_key``). A keyword that is not a :class:`Wiring` key is a
    ``TypeError``, as for any function.
    """
    unknown = sorted(wiring.keys() - Wiring.__optional_keys__)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
    clock = wiring.get("clock") or SystemClock()
    runtime = Runtime(
        uow=uow,
        read_uow=read_uow,
        clock=clock,
        ids=wiring.get("ids") or UlidIdGenerator(clock),
        tokens=wiring.get("tokens") or SecretTokenGenerator(),
        hasher=wiring.get("hasher") or Sha256TokenHasher(),
        cursors=CursorCodec(wiring.get("cursor_key") or secrets.token_bytes(32)),
        settings=wiring.get("settings") or CoreSettings(),
        limiter=wiring.get("limiter"),
        rate_limits=wiring.get("rate_limits") or RateLimits(),
        passwords=wiring.get("passwords") or Argon2PasswordHasher(),
        catalog_version=catalog_version,
    )
    return FleetPrompt(runtime)

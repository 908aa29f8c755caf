"""The password hash of built-in accounts: argon2id through argon2-cffi (ADR 0018).

Parameters are RFC 9106's second recommended option ("low memory":
argon2id, t=3 passes, m=64 MiB, p=4 lanes, 16-byte salt, 32-byte tag;
``argon2.profiles.RFC_9106_LOW_MEMORY``), which a server of two cores
computes in a few tenths of a second without reserving 2 GiB per sign-in
as the first option would. The hash string records its parameters, so
:meth:`Argon2PasswordHasher.needs_rehash` tells a hash made with other
parameters, and the core replaces it on the next successful sign-in.
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["Argon2PasswordHasher"]


class Argon2PasswordHasher:
    """argon2id with RFC 9106 parameters unless given others (tests use cheaper ones)."""

    def __init__(
        self,
        *,
        time_cost: int = profiles.RFC_9106_LOW_MEMORY.time_cost,
        memory_cost_kib: int = profiles.RFC_9106_LOW_MEMORY.memory_cost,
        parallelism: int = profiles.RFC_9106_LOW_MEMORY.parallelism,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            hash_len=profiles.RFC_9106_LOW_MEMORY.hash_len,
            salt_len=profiles.RFC_9106_LOW_MEMORY.salt_len,
            type=Type.ID,
        )

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

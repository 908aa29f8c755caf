"""Idempotency keys held by the open units of work of one store, in this process.

The in-memory store and the SQL store on SQLite run one writing unit of work at a
time, so a duplicate of a request still running would queue behind it and then
replay its answer. Contract §6 wants ``CONFLICT`` (in progress) instead: a unit of
work that holds a key (``UnitOfWork.hold_key``) takes it here *before* it queues
for the store's lock, and a second one with the same key is refused at once.

Process-local by nature: two processes on one SQLite file do not see each other's
keys (their duplicates wait for the database's write lock and replay). PostgreSQL
needs none of this: its transaction advisory lock is seen by every process.
"""

from __future__ import annotations

import threading

__all__ = ["HeldKey", "InFlightKeys"]

#: ``(scope_user_id, endpoint, key)``: one idempotency scope's key.
HeldKey = tuple[str, str, str]


class InFlightKeys:
    """A thread-safe set of held keys: ``try_hold`` never waits for a holder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[HeldKey] = set()

    def try_hold(self, key: HeldKey) -> bool:
        """Hold ``key`` and answer ``True``, or ``False`` if it is held already."""
        with self._lock:
            if key in self._held:
                return False
            self._held.add(key)
            return True

    def release(self, key: HeldKey) -> None:
        """Let ``key`` go (a key not held is a programming error)."""
        with self._lock:
            self._held.remove(key)

"""The catalogue version in the database (the core's ``CatalogVersion`` port).

Writers increment the one row of ``catalog_version`` inside the transaction
that changes the catalogue (:func:`bump_statement`), so no process can see
the new version before the change itself. Each process keeps the last value
it read (:meth:`SqlCatalogVersion.refresh`, called by a poller every few
hundred milliseconds) and the values its own commits produced; it vouches
for that value only while its last successful read *started* less than
``trust_ms`` ago, which bounds how stale anything tagged with it can be.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Final

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from fleetprompt_adapters.sql import tables as t

__all__ = ["DEFAULT_TRUST_MS", "SqlCatalogVersion", "bump_statement"]

#: How long a read of the shared version is trusted (the staleness bound of ADR 0028).
DEFAULT_TRUST_MS: Final = 1_000
_ROW: Final = 1
_READ: Final = sa.select(t.catalog_version.c.version).where(t.catalog_version.c.id == _ROW)


@functools.lru_cache(maxsize=4)
def bump_statement(dialect: str) -> sa.Insert:
    """``version + 1`` (the row is created at 1 on first use), returning the new value."""
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    statement = insert(t.catalog_version).values(id=_ROW, version=1)
    return statement.on_conflict_do_update(
        index_elements=[t.catalog_version.c.id],
        set_={"version": t.catalog_version.c.version + 1},
    ).returning(t.catalog_version.c.version)


class SqlCatalogVersion:
    """This process's view of the shared catalogue version."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        trust_ms: int = DEFAULT_TRUST_MS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._trust_s = trust_ms / 1000
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._value: int | None = None
        #: When the last successful read started (``None``: no read yet, or the last failed).
        self._read_at: float | None = None
        #: When this process last committed a change (its value is newer than any read before).
        self._observed_at = float("-inf")

    @property
    def trust_ms(self) -> int:
        """How long after the start of a read its value is vouched for (the bound)."""
        return round(self._trust_s * 1000)

    @trust_ms.setter
    def trust_ms(self, value: int) -> None:
        self._trust_s = value / 1000

    def now(self) -> float:
        """The clock of :meth:`observe`'s ``at``."""
        return self._monotonic()

    def current(self) -> int | None:
        with self._lock:
            read_at = self._read_at
            if read_at is None or self._monotonic() - read_at > self._trust_s:
                return None
            return self._value

    def refresh(self) -> None:
        """Read the shared version; a failed read withdraws the trust (nothing is cached)."""
        started = self._monotonic()
        try:
            with self._engine.connect() as connection:
                value = connection.execute(_READ).scalar() or 0
        except sa_exc.SQLAlchemyError:
            with self._lock:
                self._read_at = None
            raise
        with self._lock:
            # A commit of this process after the read started knows a newer value.
            newer_here = self._observed_at > started and (self._value or 0) > value
            if not newer_here:
                self._value = value
            self._read_at = started

    def observe(self, value: int, at: float) -> None:
        """A commit of this process moved the version to ``value``; ``at`` (:meth:`now`)
        is before its increment ran. That increment waited for every earlier one (row
        lock), so ``value`` is as good as a read started at ``at``."""
        with self._lock:
            if self._value is None or value > self._value:
                self._value = value
            self._observed_at = self._monotonic()
            if self._read_at is not None and at > self._read_at:
                self._read_at = at

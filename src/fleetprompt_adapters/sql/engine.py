"""Engines tuned for a server: SQLite (WAL, foreign keys, busy timeout) and PostgreSQL (pool).

SQLite: every unit of work that may write starts with ``BEGIN IMMEDIATE``,
so a transaction that reads and then writes never meets a newer snapshot
(WAL readers would otherwise fail with ``SQLITE_BUSY_SNAPSHOT`` when
upgrading); writers wait for one another up to the busy timeout. Read-only
units of work (connection option :data:`READ_ONLY_OPTION`) start a deferred
transaction: a WAL snapshot that never waits for or blocks a writer.

PostgreSQL: psycopg 3 with a connection pool, ``READ COMMITTED``; every
status change is a compare-and-set ``UPDATE``, so races have one winner
without serialisable isolation (ADR 0013).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from fleetprompt_adapters import MissingExtra

__all__ = [
    "READ_ONLY_OPTION",
    "SQLITE_BUSY_TIMEOUT_MS",
    "create_engine",
    "is_sqlite",
    "normalize_url",
]

SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Connection execution option marking a unit of work that only reads.
READ_ONLY_OPTION = "fleetprompt_read_only"


def normalize_url(url: str | sa.URL) -> sa.URL:
    """``postgres://`` and ``postgresql://`` mean psycopg 3; ``sqlite://`` the stdlib driver."""
    parsed = sa.make_url(url)
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+pysqlite")
    return parsed


def is_sqlite(bind: sa.Engine | sa.Connection) -> bool:
    return bind.dialect.name == "sqlite"


def _sqlite_engine(url: sa.URL, options: dict[str, Any]) -> sa.Engine:
    if url.database in {None, "", ":memory:"}:
        raise ValueError(
            "an in-memory SQLite database is private to one connection; use a file path"
        )
    engine = sa.create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA temp_store = MEMORY")
            cursor.execute("PRAGMA cache_size = -65536")  # 64 MiB per connection
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def create_engine(
    url: str | sa.URL,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    echo: bool = False,
) -> sa.Engine:
    """An engine for ``url`` (SQLite file or PostgreSQL) configured for FleetPrompt.

    Creating an engine opens no connection; the first unit of work does.
    """
    parsed = normalize_url(url)
    options: dict[str, Any] = {"echo": echo, "pool_size": pool_size, "max_overflow": max_overflow}
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, options)
    if parsed.get_backend_name() == "postgresql":
        try:
            import psycopg  # noqa: F401, PLC0415 - SQLAlchemy imports it too; we say what is missing
        except ModuleNotFoundError as missing:
            raise MissingExtra("PostgreSQL", "postgres", missing.name) from None
        return sa.create_engine(parsed, pool_pre_ping=True, **options)
    raise ValueError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
    )

"""Real databases for the tests: a SQLite file per store, one PostgreSQL database per run,
and a key prefix of its own per test on a Redis server.

PostgreSQL is reached through ``FLEETPROMPT_TEST_POSTGRES_URL`` (``.ci/run``
sets it). Each test run creates its own database named after the process and
a random suffix, and drops it at exit, so concurrent runs never meet. Without
the variable the PostgreSQL tests are skipped with that reason.

An empty store is made by emptying the tables of a migrated schema (much
faster than creating the schema again).

Redis is reached through ``FLEETPROMPT_TEST_REDIS_URL``; each user of
:func:`redis_key_prefix` gets keys under ``fleetprompt_test:<pid>:<hex>:<n>:``
and deletes them afterwards with :func:`delete_redis_keys`.
"""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from fleetprompt_adapters import sql
from fleetprompt_adapters.sql.tables import metadata

if TYPE_CHECKING:
    import redis

__all__ = [
    "POSTGRES_ENV",
    "REDIS_ENV",
    "delete_redis_keys",
    "empty",
    "postgres_engine",
    "postgres_url",
    "redis_key_prefix",
    "redis_url",
    "sqlite_engine",
]

POSTGRES_ENV = "FLEETPROMPT_TEST_POSTGRES_URL"
_SKIP_REASON = f"set {POSTGRES_ENV} to run the PostgreSQL tests (.ci/run does)"

_run_database: sa.URL | None = None


def _drop_database(server: sa.URL, name: str) -> None:
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


def postgres_url() -> sa.URL:
    """The URL of this run's own PostgreSQL database (created on first use), or skip."""
    global _run_database  # noqa: PLW0603 - one database per test run
    raw = os.environ.get(POSTGRES_ENV)
    if not raw:
        pytest.skip(_SKIP_REASON)
    if _run_database is None:
        server = sql.normalize_url(raw)
        name = f"fleetprompt_test_{os.getpid()}_{secrets.token_hex(4)}"
        engine = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        atexit.register(_drop_database, server, name)
        _run_database = server.set(database=name)
    return _run_database


def postgres_engine(**options: int) -> sa.Engine:
    """An engine on this run's PostgreSQL database, schema migrated (or skip)."""
    engine = sql.create_engine(postgres_url(), **options)
    if sql.current_revision(engine) != sql.head_revision():
        sql.upgrade(engine)
    return engine


def sqlite_engine(directory: Path, **options: int) -> sa.Engine:
    """An engine on a new SQLite file in ``directory``, schema migrated."""
    engine = sql.create_engine(f"sqlite:///{directory / 'fleetprompt.db'}", **options)
    sql.upgrade(engine)
    return engine


def empty(engine: sa.Engine) -> None:
    """Delete every row of every FleetPrompt table, children first.

    Test stores hold a handful of rows: ``DELETE`` is much faster than
    ``TRUNCATE`` (which rewrites files and takes exclusive locks) for that.
    """
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


REDIS_ENV = "FLEETPROMPT_TEST_REDIS_URL"
_REDIS_SKIP_REASON = f"set {REDIS_ENV} (e.g. redis://127.0.0.1:6379/0) to run the Redis tests"
_REDIS_RUN = f"fleetprompt_test:{os.getpid()}:{secrets.token_hex(4)}:"
_redis_prefixes = itertools.count()


def redis_url() -> str:
    """The URL of the Redis server the tests may use, or skip."""
    raw = os.environ.get(REDIS_ENV, "").strip()
    if not raw:
        pytest.skip(_REDIS_SKIP_REASON)
    return raw


def redis_key_prefix() -> str:
    """A key prefix no other test, and no other test run, uses."""
    return f"{_REDIS_RUN}{next(_redis_prefixes)}:"


def delete_redis_keys(client: redis.Redis, prefix: str) -> int:
    """Delete every key starting with ``prefix``; returns how many."""
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1_000):
        batch.append(key)
        if len(batch) >= 1_000:
            deleted += client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += client.unlink(*batch)
    return deleted

"""Real databases for the tests: a SQLite file per store, one PostgreSQL database per run.

PostgreSQL is reached through ``FLEETPROMPT_TEST_POSTGRES_URL`` (``.ci/run``
sets it). Each test run creates its own database named after the process and
a random suffix, and drops it at exit, so concurrent runs never meet. Without
the variable the PostgreSQL tests are skipped with that reason.

An empty store is made by emptying the tables of a migrated schema (much
faster than creating the schema again).
"""

from __future__ import annotations

import atexit
import os
import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa

from fleetprompt_adapters import sql
from fleetprompt_adapters.sql.tables import metadata

__all__ = ["POSTGRES_ENV", "empty", "postgres_engine", "postgres_url", "sqlite_engine"]

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

"""SQLite: the event loop's inline units of work share a pinned connection (ADR 0046);
a failed one still rolls back, a broken connection is replaced, a dispose closes it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa

from fleetprompt_adapters import sql
from fleetprompt_adapters.sql.store import SqlStore

T = TypeVar("T")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    engine = sql.create_engine(f"sqlite:///{tmp_path / 'pinned.db'}", pool_size=1, max_overflow=0)
    sql.upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
    yield SqlStore(engine)
    engine.dispose()


def on_loop(action: Callable[[], T]) -> T:
    """Run ``action`` on an event loop's thread (where inline units of work run)."""

    async def run() -> T:
        return action()

    return asyncio.run(run())


def _dbapi(connection: sa.Connection) -> object:
    return connection.connection.dbapi_connection


def _count(store: SqlStore) -> int:
    with store.read_unit_of_work() as uow:
        return int(uow.connection.exec_driver_sql("SELECT count(*) FROM probe").scalar_one())


def test_inline_units_of_work_reuse_one_connection_per_mode(store: SqlStore) -> None:
    def two() -> tuple[object, object, object, object]:
        with store.unit_of_work() as first:
            one = _dbapi(first.connection)
        with store.unit_of_work() as second:
            two = _dbapi(second.connection)
        with store.read_unit_of_work() as third:
            three = _dbapi(third.connection)
        with store.read_unit_of_work() as fourth:
            four = _dbapi(fourth.connection)
        return one, two, three, four

    one, two, three, four = on_loop(two)
    assert one is two
    assert three is four
    assert one is not three
    # Off the loop (worker threads): the engine's pool, one connection of pool_size=1,
    # still free although two connections are pinned.
    with store.unit_of_work() as uow:
        uow.connection.exec_driver_sql("INSERT INTO probe VALUES (1)")
        uow.commit()
    assert _count(store) == 1


def test_a_nested_unit_of_work_takes_another_connection(store: SqlStore) -> None:
    def nested() -> tuple[object, object]:
        with store.read_unit_of_work() as outer, store.read_unit_of_work() as inner:
            return _dbapi(outer.connection), _dbapi(inner.connection)

    outer, inner = on_loop(nested)
    assert outer is not inner


def test_a_failed_unit_of_work_rolls_back_and_the_next_starts_clean(store: SqlStore) -> None:
    def failing() -> None:
        with store.unit_of_work() as uow:
            uow.connection.exec_driver_sql("INSERT INTO probe VALUES (1)")
            raise RuntimeError("the use case failed")

    def committed() -> bool:
        with store.unit_of_work() as uow:
            uow.connection.exec_driver_sql("INSERT INTO probe VALUES (2)")
            uow.commit()
        return True

    with pytest.raises(RuntimeError):
        on_loop(failing)
    assert on_loop(committed)
    assert on_loop(lambda: _count(store)) == 1
    assert _count(store) == 1


def test_a_connection_left_in_a_transaction_is_not_kept(store: SqlStore) -> None:
    def left_open() -> None:
        with store.unit_of_work() as uow:
            uow.connection.exec_driver_sql("INSERT INTO probe VALUES (1)")
            # A COMMIT that failed: the unit of work's transaction is gone, the
            # connection's is not; the pool's reset rolls it back.
            uow._transaction = None  # the state a failed COMMIT leaves

    def next_one() -> bool:
        with store.unit_of_work() as uow:
            uow.connection.exec_driver_sql("INSERT INTO probe VALUES (2)")
            uow.commit()
        return True

    on_loop(left_open)
    assert store.pinned is not None
    assert False not in store.pinned
    assert on_loop(next_one)
    assert False in store.pinned
    assert _count(store) == 1


def test_a_broken_connection_is_replaced(store: SqlStore) -> None:
    def broken() -> object:
        with store.unit_of_work() as uow:
            dbapi = _dbapi(uow.connection)
            uow.connection.invalidate()
        return dbapi

    def next_one() -> object:
        with store.unit_of_work() as uow:
            uow.connection.exec_driver_sql("INSERT INTO probe VALUES (3)")
            uow.commit()
            return _dbapi(uow.connection)

    first = on_loop(broken)
    assert on_loop(next_one) is not first
    assert _count(store) == 1


def test_a_disposed_engine_closes_the_pinned_connections(store: SqlStore) -> None:
    def pin() -> None:
        with store.unit_of_work():
            pass

    on_loop(pin)
    assert store.pinned
    store.engine.dispose()
    assert not store.pinned
    on_loop(pin)  # pins a new one
    assert store.pinned

"""Fixtures of the port contract suite: every storage adapter and rate limiter passes it.

Each registry maps a pytest param name to a factory. Adding an adapter is one
entry; nothing else in the suite names an adapter.

How the SQL adapter will register (one entry per database)::

    @contextlib.contextmanager
    def _sqlite(request: pytest.FixtureRequest) -> Iterator[UnitOfWorkFactory]:
        path = request.getfixturevalue("tmp_path_factory").mktemp("sqlite") / "fp.db"
        engine = sql.create_engine(f"sqlite+pysqlite:///{path}")
        sql.create_schema(engine)            # or run the migrations
        try:
            yield sql.SqlStore(engine).unit_of_work
        finally:
            engine.dispose()

    @contextlib.contextmanager
    def _postgres(request: pytest.FixtureRequest) -> Iterator[UnitOfWorkFactory]:
        url = os.environ.get("FLEETPROMPT_TEST_POSTGRES_URL")
        if not url:
            pytest.skip("set FLEETPROMPT_TEST_POSTGRES_URL to run the PostgreSQL contract")
        engine = sql.create_engine(url)
        sql.drop_schema(engine); sql.create_schema(engine)   # a fresh, empty store
        try:
            yield sql.SqlStore(engine).unit_of_work
        finally:
            engine.dispose()

    ADAPTERS["sqlite"] = _sqlite
    ADAPTERS["postgres"] = _postgres

A factory is called once per test (and once per hypothesis example through
``adapter.fresh()``), must yield a unit-of-work factory over an EMPTY store
and may call ``pytest.skip`` when its backend is not available. The Redis
rate limiter registers the same way in ``RATE_LIMITERS`` (a fresh key prefix
per test keeps buckets apart).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import pytest

from contract.harness import Adapter
from fleetprompt_adapters.memory import MemoryRateLimiter, MemoryStore
from fleetprompt_core.ports import RateLimiter, UnitOfWorkFactory

AdapterFactory = Callable[
    [pytest.FixtureRequest], contextlib.AbstractContextManager[UnitOfWorkFactory]
]
RateLimiterFactory = Callable[
    [pytest.FixtureRequest], contextlib.AbstractContextManager[RateLimiter]
]


@contextlib.contextmanager
def _memory(request: pytest.FixtureRequest) -> Iterator[UnitOfWorkFactory]:
    yield MemoryStore().unit_of_work


@contextlib.contextmanager
def _memory_rate_limiter(request: pytest.FixtureRequest) -> Iterator[RateLimiter]:
    yield MemoryRateLimiter()


#: Storage adapters under test: param name → factory of a fresh empty store.
ADAPTERS: dict[str, AdapterFactory] = {
    "memory": _memory,
}

#: Rate limiters under test: param name → factory of a fresh limiter.
RATE_LIMITERS: dict[str, RateLimiterFactory] = {
    "memory": _memory_rate_limiter,
}


@pytest.fixture(params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    """The adapter under test over a fresh empty store; ``.uow()`` opens a unit of work."""
    opener = functools.partial(ADAPTERS[request.param], request)
    with opener() as factory:
        yield Adapter(request.param, factory, opener)


@pytest.fixture(params=list(RATE_LIMITERS))
def rate_limiter(request: pytest.FixtureRequest) -> Iterator[RateLimiter]:
    """A fresh rate limiter of the kind under test."""
    with RATE_LIMITERS[request.param](request) as limiter:
        yield limiter

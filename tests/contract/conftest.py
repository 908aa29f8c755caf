"""Fixtures of the port contract suite: every storage adapter and rate limiter passes it.

Each registry maps a pytest param name to a factory. Adding an adapter is one
entry; nothing else in the suite names an adapter.

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
from typing import Any

import pytest
import sqlalchemy as sa

import databases
from contract import http_harness
from contract.harness import Adapter
from contract.http_harness import Api
from fleetprompt_adapters import sql
from fleetprompt_adapters.memory import MemoryRateLimiter, MemoryStore
from fleetprompt_adapters.redis_limiter import RedisRateLimiter
from fleetprompt_adapters.search.follower import SearchFollower
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


@contextlib.contextmanager
def _redis_rate_limiter(request: pytest.FixtureRequest) -> Iterator[RateLimiter]:
    """A limiter on the test Redis under a key prefix of this test's own, deleted after."""
    prefix = databases.redis_key_prefix()
    limiter = RedisRateLimiter.from_url(databases.redis_url(), prefix=prefix)
    try:
        yield limiter
    finally:
        try:
            databases.delete_redis_keys(limiter.client, prefix)
        finally:
            limiter.close()


@pytest.fixture(scope="session")
def _sqlite_contract_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = databases.sqlite_engine(tmp_path_factory.mktemp("contract-sqlite"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _postgres_contract_engine() -> Iterator[sa.Engine]:
    engine = databases.postgres_engine()
    yield engine
    engine.dispose()


def _sql(engine_fixture: str, **options: int) -> AdapterFactory:
    """The SQL adapter as ``sql.bootstrap`` composes it: with its search engine (ADR 0034)."""

    @contextlib.contextmanager
    def factory(request: pytest.FixtureRequest) -> Iterator[UnitOfWorkFactory]:
        engine: sa.Engine = request.getfixturevalue(engine_fixture)
        databases.empty(engine)
        follower = SearchFollower()
        try:
            yield sql.SqlStore(engine, search_engine=follower, **options).unit_of_work
        finally:
            follower.close()

    return factory


#: Storage adapters under test: param name → factory of a fresh empty store.
ADAPTERS: dict[str, AdapterFactory] = {
    "memory": _memory,
    "sqlite": _sql("_sqlite_contract_engine"),
    "postgres": _sql("_postgres_contract_engine"),
}

#: Extra configurations for the search suite only. With every term counted as
#: common, searches with words sorted by anything but relevance take the SQL
#: adapter's order-first plan (with the default threshold, test catalogues never
#: do); relevance searches with words are the engine's on every configuration.
SEARCH_PLAN_VARIANTS: dict[str, AdapterFactory] = {
    "sqlite-order-first": _sql("_sqlite_contract_engine", common_term_rows=1),
    "postgres-order-first": _sql("_postgres_contract_engine", common_term_rows=1),
}

#: Rate limiters under test: param name → factory of a fresh limiter.
RATE_LIMITERS: dict[str, RateLimiterFactory] = {
    "memory": _memory_rate_limiter,
    "redis": _redis_rate_limiter,
}


def open_adapter(
    request: pytest.FixtureRequest, factories: dict[str, AdapterFactory]
) -> Iterator[Adapter]:
    opener = functools.partial(factories[request.param], request)
    with opener() as factory:
        yield Adapter(request.param, factory, opener)


@pytest.fixture(params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    """The adapter under test over a fresh empty store; ``.uow()`` opens a unit of work."""
    yield from open_adapter(request, ADAPTERS)


@pytest.fixture(params=list(RATE_LIMITERS))
def rate_limiter(request: pytest.FixtureRequest) -> Iterator[RateLimiter]:
    """A fresh rate limiter of the kind under test."""
    with RATE_LIMITERS[request.param](request) as limiter:
        yield limiter


# --------------------------------------------------------------------------- HTTP suites

#: Databases the HTTP suites run the real app on.
HTTP_DATABASES = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def _http_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, sa.Engine]]:
    """One migrated engine per database, opened on first use, emptied before each test."""
    engines: dict[str, sa.Engine] = {}

    class Lazy(dict[str, sa.Engine]):
        def __missing__(self, name: str) -> sa.Engine:
            directory = tmp_path_factory.mktemp(f"http-{name}")
            engine = engines[name] = self[name] = http_harness.DATABASES[name](directory)
            return engine

    yield Lazy()
    for engine in engines.values():
        engine.dispose()


@pytest.fixture(params=HTTP_DATABASES)
def api(request: pytest.FixtureRequest, _http_engines: dict[str, sa.Engine]) -> Iterator[Api]:
    """The real app on an empty database, with a manual clock (``api.clock``)."""
    url = http_harness.database_url(_http_engines[request.param])
    with http_harness.open_api(request.param, url) as opened:
        yield opened


@pytest.fixture
def api_factory(
    request: pytest.FixtureRequest, _http_engines: dict[str, sa.Engine]
) -> Callable[..., contextlib.AbstractContextManager[Api]]:
    """Open an app with other settings: ``with api_factory("sqlite", rate_limits=...) as api``."""

    def factory(name: str, **overrides: Any) -> contextlib.AbstractContextManager[Api]:
        url = http_harness.database_url(_http_engines[name])
        return http_harness.open_api(name, url, **overrides)

    return factory

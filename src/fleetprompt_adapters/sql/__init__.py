"""The SQL adapter: every storage port over SQLAlchemy 2, on SQLite or PostgreSQL.

    from fleetprompt_adapters import sql

    engine = sql.create_engine("sqlite:///fleetprompt.db")   # or postgresql://...
    sql.upgrade(engine)                                       # apply the migrations
    app = sql.bootstrap(engine)                               # a FleetPrompt over it

Requires the ``sql`` extra (SQLAlchemy, Alembic and tantivy; ``postgres`` for PostgreSQL).
"""

from __future__ import annotations

import importlib.util
from typing import Unpack

from fleetprompt_adapters import MissingExtra

try:
    import sqlalchemy as sa
except ModuleNotFoundError as missing:  # a core-only install
    raise MissingExtra("fleetprompt_adapters.sql", "sql", missing.name) from None
if importlib.util.find_spec("alembic") is None:  # imported only to migrate: slow to import
    raise MissingExtra("fleetprompt_adapters.sql", "sql", "alembic")

from fleetprompt_adapters.sql.catalog_version import SqlCatalogVersion
from fleetprompt_adapters.sql.engine import (
    SQLITE_CACHE_MIB,
    Timeouts,
    create_engine,
    normalize_url,
    reading,
)
from fleetprompt_adapters.sql.schema import (
    create_schema,
    current_revision,
    drop_schema,
    head_revision,
    upgrade,
)
from fleetprompt_adapters.sql.search import RankedSearch
from fleetprompt_adapters.sql.store import SqlStore, SqlUnitOfWork, ping
from fleetprompt_adapters.system import Wiring, compose
from fleetprompt_core import FleetPrompt

__all__ = [
    "SQLITE_CACHE_MIB",
    "SqlCatalogVersion",
    "SqlStore",
    "SqlUnitOfWork",
    "Timeouts",
    "Wiring",
    "bootstrap",
    "create_engine",
    "create_schema",
    "current_revision",
    "drop_schema",
    "head_revision",
    "normalize_url",
    "ping",
    "reading",
    "upgrade",
]


def bootstrap(
    engine: sa.Engine,
    *,
    search_engine: RankedSearch | None = None,
    **wiring: Unpack[Wiring],
) -> FleetPrompt:
    """A :class:`FleetPrompt` over the database behind ``engine`` (already migrated).

    The other keywords are :class:`~fleetprompt_adapters.system.Wiring`'s
    (``clock``, ``settings``, ``cursor_key``, ``limiter``, ``rate_limits``,
    ...), the same for every adapter; each has a default. Several processes
    serving one database must share ``cursor_key``. The ``search_engine`` ranks
    relevance searches with words (ADR 0034): a
    :class:`~fleetprompt_adapters.search.follower.SearchFollower` whose index
    lives in this process's RAM unless another is given.
    """
    if search_engine is None:
        from fleetprompt_adapters.search.follower import SearchFollower  # noqa: PLC0415

        search_engine = SearchFollower()
    store = SqlStore(engine, search_engine=search_engine)
    return compose(
        store.unit_of_work,
        read_uow=store.read_unit_of_work,
        catalog_version=store.catalog_version,
        **wiring,
    )

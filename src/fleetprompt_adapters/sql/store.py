"""Repositories and the unit of work over SQLAlchemy Core.

A :class:`SqlUnitOfWork` is one database transaction on one pooled
connection: leaving its ``with`` block without ``commit()`` rolls back, so a
failed use case leaves nothing behind. Inserts use ``ON CONFLICT DO
NOTHING`` and report a skipped row as :class:`DuplicateError` naming the
constraint, which keeps the transaction usable on PostgreSQL (where a failed
statement would abort it). Status changes are compare-and-set ``UPDATE``
statements whose row count tells the winner.

Database failures never reach a caller as driver exceptions (:func:`guarded`):
a lost race the database detected (deadlock, serialisation failure) becomes
``Conflict``; an outage (down, stalled, out of connections, past a timeout)
``Unavailable``; anything else ``Internal``, without SQL text or parameters
(they may hold user data), not even in the exception chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar, cast

import attrs
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from fleetprompt_adapters.in_flight import HeldKey, InFlightKeys
from fleetprompt_adapters.sql import mapping as m
from fleetprompt_adapters.sql import search_log
from fleetprompt_adapters.sql import tables as t
from fleetprompt_adapters.sql.catalog_version import SqlCatalogVersion, bump_statement
from fleetprompt_adapters.sql.driver import DriverStatement, prepared
from fleetprompt_adapters.sql.engine import READ_ONLY_OPTION, SQLITE_BUSY_TIMEOUT_MS, reading
from fleetprompt_adapters.sql.search import (
    COMMON_TERM_ROWS,
    RankedSearch,
    cards_of,
    detail_of,
    fetch_ranked,
    fetch_ranked_cards,
    search_cards,
    search_published,
)
from fleetprompt_core.base.enums import (
    InstallIntentStatus,
    InstallTokenStatus,
    ListingStatus,
    ReleaseStatus,
)
from fleetprompt_core.base.errors import Conflict, DuplicateError, Internal, KeyHeld, Unavailable
from fleetprompt_core.domain.accounts import Account, BrowserSession
from fleetprompt_core.domain.model import (
    OPEN_INTENT_STATUSES,
    ApiToken,
    AuditEvent,
    IdempotencyRecord,
    InstallIntent,
    InstallToken,
    Listing,
    PublisherProfile,
    Release,
    User,
)
from fleetprompt_core.domain.search import (
    CardHit,
    ListingCard,
    ListingDetail,
    ListingSearch,
    SearchHit,
    ranked_by_engine,
)
from fleetprompt_core.policies.versions import VersionCandidate
from fleetprompt_core.ports import AuditQuery, CreatedKey, Redeemable, UniqueConstraint

__all__ = ["SqlStore", "SqlUnitOfWork", "guarded", "ping", "storage_error"]

T = TypeVar("T")

#: SQLSTATEs of a transaction the database aborted to resolve a race.
_LOST_RACE_STATES = frozenset({"40001", "40P01"})
#: SQLSTATE classes of an outage: connection exceptions (08), insufficient
#: resources (53: too many connections, disk full), operator intervention (57:
#: shutdown, statement timeout or cancel), system errors (58).
_OUTAGE_CLASSES = frozenset({"08", "53", "57", "58"})
#: Single SQLSTATEs of an outage: ``lock_not_available`` (the lock timeout),
#: ``read_only_sql_transaction`` (a standby or a database put in read-only mode).
_OUTAGE_STATES = frozenset({"55P03", "25006"})
_log = logging.getLogger("fleetprompt.sql")


def storage_error(error: sa_exc.SQLAlchemyError) -> Conflict | Internal | Unavailable:
    """The contract's error for a database failure, with nothing of the SQL in it.

    A lost race is ``Conflict``; a database that is down, stalled, out of
    connections or past a timeout (connect, pool, statement, lock) is
    ``Unavailable``; anything else ``Internal``. The log line names the
    exception class and SQLSTATE only (never the statement or its values).
    """
    state = getattr(error.orig, "sqlstate", None) if isinstance(error, sa_exc.DBAPIError) else None
    if state in _LOST_RACE_STATES:
        return Conflict(
            "The request lost a race with a concurrent request.", hint="retry the request"
        )
    if _is_outage(error, state):
        _log.warning(
            "database unavailable (%s, sqlstate %s)", type(error).__name__, state or "none"
        )
        return Unavailable("The database is unavailable.")
    _log.error("storage failure (%s, sqlstate %s)", type(error).__name__, state or "none")
    return Internal("A storage operation failed.")


def _is_outage(error: sa_exc.SQLAlchemyError, state: str | None) -> bool:
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # no pooled connection within the pool timeout; a dead connection
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if state is not None:
        return state[:2] in _OUTAGE_CLASSES or state in _OUTAGE_STATES
    # SQLite (no SQLSTATE): locked past the busy timeout, interrupted past the
    # statement timeout, I/O errors; any driver's lost or refused connection.
    return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)


def guarded(action: Callable[[], T]) -> T:
    """Run ``action``; a database error comes out as :func:`storage_error`.

    The translated error is raised *after* the ``except`` block, so neither its
    ``__cause__`` nor its ``__context__`` holds the driver's exception (whose
    text carries the SQL statement and its parameters).
    """
    try:
        return action()
    except sa_exc.SQLAlchemyError as error:
        failure = storage_error(error)
    raise failure


def ping(engine: sa.Engine) -> None:
    """One round trip (readiness): ``Unavailable`` unless the database answers.

    Read-only, so that on SQLite it takes no write lock.
    """

    def round_trip() -> None:
        with reading(engine) as connection:
            connection.exec_driver_sql("SELECT 1")

    guarded(round_trip)


@functools.lru_cache(maxsize=64)
def _insert_statement(dialect: str, table: sa.Table) -> sa.Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` for ``table``, built once (values are parameters)."""
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    return insert(table).on_conflict_do_nothing().execution_options(preserve_rowcount=True)


@functools.lru_cache(maxsize=64)
def _lookup(table: sa.Table, *columns: str) -> sa.Select[Any]:
    """``SELECT * FROM table WHERE column = :column …``, built once: the hot paths
    (lookups by id, hash or key) skip building an expression on every call."""
    return sa.select(table).where(*(table.c[name] == sa.bindparam(name) for name in columns))


_USERS_OF = sa.select(t.users).where(t.users.c.user_id.in_(sa.bindparam("ids", expanding=True)))
_PROFILES_OF = sa.select(t.publisher_profiles).where(
    t.publisher_profiles.c.publisher_id.in_(sa.bindparam("ids", expanding=True))
)
_INTENT_COUNTS = (
    sa.select(t.install_intents.c.listing_id, sa.func.count().label("n"))
    .where(
        t.install_intents.c.listing_id.in_(sa.bindparam("ids", expanding=True)),
        t.install_intents.c.created_at_ms >= sa.bindparam("since"),
    )
    .group_by(t.install_intents.c.listing_id)
)


# The hot write paths' statements, built once: only the parameters change per call.
def _compare_and_set(
    table: sa.Table, key: str, guard: str, columns: Iterable[str] | None = None, prefix: str = ""
) -> sa.Update:
    """``UPDATE table SET <columns> WHERE key = :k AND status = :s AND guard = :g``
    (every column when ``columns`` is ``None``; each parameter named with ``prefix``).

    The stored status must still be the expected one; ``guard``, an immutable
    column, is in the condition so that the winning path is one statement.
    """
    c = table.c
    names = [column.name for column in table.columns] if columns is None else columns
    return (
        sa.update(table)
        .where(
            c[key] == sa.bindparam(prefix + "where_key"),
            c.status == sa.bindparam(prefix + "where_status"),
            c[guard] == sa.bindparam(prefix + "where_guard"),
        )
        .values({name: sa.bindparam(prefix + name, type_=c[name].type) for name in names})
    )


_TOKEN_CAS = _compare_and_set(t.install_tokens, "token_id", "token_hash")
_INTENT_CAS = _compare_and_set(t.install_intents, "install_intent_id", "buyer_user_id")

#: The columns a state change of a token or an intent writes (``InstallToken._moved`` and
#: ``redeemed``, ``InstallIntent._moved``): every other column is set once, at creation
#: (``tests/unit/test_lifecycle_columns.py`` holds the domain to that). The redemption's
#: compare-and-sets write only these: SQLite then rewrites only the indexes holding one
#: of them and checks no foreign key (a ``SET`` of every column rewrote every index of
#: both rows and looked up every parent again); PostgreSQL binds a third of the values.
TOKEN_STATE_COLUMNS: Final = ("status", "redeemed_at_ms", "redeemed_by_system")
INTENT_STATE_COLUMNS: Final = ("status", "updated_at_ms")


_TOKEN_REDEEM = _compare_and_set(t.install_tokens, "token_id", "token_hash", TOKEN_STATE_COLUMNS)
_INTENT_REDEEM = _compare_and_set(
    t.install_intents, "install_intent_id", "buyer_user_id", INTENT_STATE_COLUMNS
)


def _cas_params(
    prefix: str,
    row: Mapping[str, Any],
    columns: Iterable[str],
    key: str,
    status: str,
    guard: str,
) -> dict[str, Any]:
    return {
        **{prefix + name: row[name] for name in columns},
        prefix + "where_key": key,
        prefix + "where_status": status,
        prefix + "where_guard": guard,
    }


def _redeem_statement() -> sa.Select[Any]:
    """A redemption's three writes as one PostgreSQL statement (data-modifying CTEs):
    the token's compare-and-set, the intent's only when the token's won, the audit
    insert only when the intent's won; it answers how many rows each wrote. One
    round trip instead of three; the rows and their locks are the same."""

    def cas(
        table: sa.Table,
        key: str,
        guard: str,
        columns: tuple[str, ...],
        prefix: str,
        after: sa.CTE | None,
    ) -> sa.CTE:
        statement = _compare_and_set(table, key, guard, columns, prefix)
        if after is not None:
            statement = statement.where(sa.exists(sa.select(after.c[0])))
        return statement.returning(table.c[key]).cte(prefix + "set")

    token = cas(t.install_tokens, "token_id", "token_hash", TOKEN_STATE_COLUMNS, "t_", None)
    intent = cas(
        t.install_intents, "install_intent_id", "buyer_user_id", INTENT_STATE_COLUMNS, "i_", token
    )
    columns = list(t.audit_events.columns)
    event = (
        sa.insert(t.audit_events)
        .from_select(
            [col.name for col in columns],
            sa.select(
                *(
                    sa.cast(sa.bindparam("a_" + col.name, type_=col.type), col.type)
                    for col in columns
                )
            ).where(sa.exists(sa.select(intent.c[0]))),
        )
        .returning(t.audit_events.c.event_id)
        .cte("a_ins")
    )
    counts = [
        sa.select(sa.func.count()).select_from(cte).scalar_subquery().label(cte.name)
        for cte in (token, intent, event)
    ]
    return sa.select(*counts)


_REDEEM_PG = _redeem_statement()


@functools.lru_cache(maxsize=8)
def _sqlite_redeem_statements(
    dialect: sa.Dialect,
) -> tuple[DriverStatement, DriverStatement, DriverStatement]:
    """Redemption's three SQLite writes for ``dialect`` (the engine's: its JSON serializer)."""
    return (
        prepared(_TOKEN_REDEEM, dialect),
        prepared(_INTENT_REDEEM, dialect),
        prepared(_insert_statement("sqlite", t.audit_events), dialect),
    )


def _prefixed(table: sa.Table, prefix: str) -> list[sa.Label[Any]]:
    return [column.label(prefix + column.name) for column in table.columns]


#: A token, its intent, release and listing in one query (redemption's only read).
_REDEEMABLE = (
    sa.select(
        *_prefixed(t.install_tokens, "t_"),
        *_prefixed(t.install_intents, "i_"),
        *_prefixed(t.releases, "r_"),
        *_prefixed(t.listings, "l_"),
    )
    .select_from(
        t.install_tokens.join(
            t.install_intents,
            t.install_intents.c.install_intent_id == t.install_tokens.c.install_intent_id,
        )
        .join(t.releases, t.releases.c.release_id == t.install_intents.c.release_id)
        .join(t.listings, t.listings.c.listing_id == t.install_intents.c.listing_id)
    )
    .where(t.install_tokens.c.token_hash == sa.bindparam("token_hash"))
)


#: Where each table's columns sit in a ``_REDEEMABLE`` row (they come in table order).
_REDEEMABLE_SLICES = tuple(
    slice(start, start + len(table.columns))
    for start, table in zip(
        itertools.accumulate(
            (len(x.columns) for x in (t.install_tokens, t.install_intents, t.releases)),
            initial=0,
        ),
        (t.install_tokens, t.install_intents, t.releases, t.listings),
        strict=True,
    )
)


class SqlStore:
    """The database behind an engine. Share one store between every unit of work."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        common_term_rows: int = COMMON_TERM_ROWS,
        search_engine: RankedSearch | None = None,
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        #: The catalogue version as this process sees it (ADR 0028).
        self.catalog_version = SqlCatalogVersion(engine)
        #: Search plan threshold (see ``search.py``); tests lower it to force a plan.
        self.common_term_rows = common_term_rows
        #: Ranks relevance searches with words (ADR 0034). ``bootstrap`` and the server
        #: always give one; ``None`` leaves them to the SQL plans of ADR 0012 (the previous
        #: design: the benchmarks' baseline and the plan tests).
        self.search_engine = search_engine
        #: SQLite: this process's writers queue here before ``BEGIN IMMEDIATE`` (ADR 0037).
        #: SQLite's busy handler polls with sleeps of up to 100 ms, so threads of one
        #: process contending for the write lock would mostly sleep; a lock wakes the
        #: next writer the moment the last one ends. Other processes still meet the busy
        #: timeout. ``None`` on PostgreSQL, whose writers do not exclude one another.
        self.writer_lock = threading.Lock() if self.dialect == "sqlite" else None
        #: SQLite: the idempotency keys this process's open units of work hold, taken
        #: before :attr:`writer_lock` so that a duplicate of a running request is refused
        #: instead of queueing behind it (§6). ``None`` on PostgreSQL, whose units of work
        #: hold keys with a transaction advisory lock that every process sees.
        self.in_flight = InFlightKeys() if self.dialect == "sqlite" else None
        #: A read-only unit of work's connection options. SQLite: a deferred transaction
        #: (a WAL snapshot, no write lock). PostgreSQL: autocommit (ADR 0042), no
        #: ``BEGIN``/``ROLLBACK`` round trips; under ``READ COMMITTED`` every statement
        #: has its own snapshot inside a transaction too, so what a reader sees is the
        #: same. What needs a transaction asks for one (``engine.in_transaction``).
        self.read_options: dict[str, Any] = {READ_ONLY_OPTION: True}
        if self.dialect == "postgresql":
            self.read_options["isolation_level"] = "AUTOCOMMIT"
        #: SQLite: the idle connection the event loop's inline units of work share
        #: (ADR 0046), one that writes and one that only reads; ``None`` on PostgreSQL.
        #: Those units of work never overlap on one loop, so a pool checkout and
        #: check-in (and its reset) per unit of work buys nothing there. They come from
        #: a pool of their own (the engine's connect events), so that they never take
        #: a connection the worker threads' units of work count on.
        self.pinned: dict[bool, sa.Connection] | None = None
        #: Bumped when the engine is disposed: a connection taken before is not kept.
        self.pin_epoch = 0
        if self.dialect == "sqlite":
            self.pinned = {}
            self._pin_pool = _pin_pool(engine.pool)
            #: The modes (read-only or not) with a pinned connection, idle or in use.
            self._pins: set[bool] = set()
            event.listen(engine, "engine_disposed", self._unpin_all)

    def _unpin_all(self, _engine: sa.Engine) -> None:
        """Close the pinned connections (the engine is disposed)."""
        self.pin_epoch += 1
        self._pins.clear()
        pinned = self.pinned
        while pinned:
            with contextlib.suppress(KeyError, sa_exc.SQLAlchemyError):
                pinned.pop(next(iter(pinned))).close()
        self._pin_pool.dispose()

    def connect(self, *, read_only: bool) -> tuple[sa.Connection, bool | None]:
        """A connection for a unit of work, and the pin to give it back to (or ``None``:
        close it). On an event loop's thread (SQLite), the pinned connection when idle."""
        pinned = self.pinned
        if pinned is not None and asyncio._get_running_loop() is not None:
            connection = pinned.pop(read_only, None)
            if connection is not None:
                return connection, read_only
            if read_only not in self._pins:  # none yet (else it is in use: nested)
                self._pins.add(read_only)
                try:
                    connection = guarded(
                        lambda: sa.Connection(self.engine, self._pin_pool.connect())
                    )
                except BaseException:
                    self._pins.discard(read_only)
                    raise
                if read_only:
                    connection.execution_options(**self.read_options)
                return connection, read_only
        connection = guarded(self.engine.connect)
        if read_only:
            connection.execution_options(**self.read_options)
        return connection, None

    def release(self, connection: sa.Connection, pin: bool | None, epoch: int) -> None:
        """End a unit of work's use of ``connection`` (its transaction ended): a pinned
        one back to its pin when it is healthy and outside any transaction; any other,
        or one that is not, to its pool, whose reset rolls back what is left and
        replaces a broken connection (the next unit of work pins a new one)."""
        pinned = self.pinned
        if pin is not None and pinned is not None and epoch == self.pin_epoch:
            if (
                not connection.closed
                and not connection.invalidated
                and not connection.in_transaction()
                and not _driver_in_transaction(connection)
            ):
                if pinned.setdefault(pin, connection) is connection:
                    return
                # Two loops pinned one each at once: the other one stays.
            else:
                self._pins.discard(pin)
        # A connection whose rollback failed is invalidated by the pool, not reused.
        with contextlib.suppress(sa_exc.SQLAlchemyError):
            connection.close()

    def unit_of_work(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self)

    def read_unit_of_work(self) -> SqlUnitOfWork:
        """A unit of work that only reads: no write lock on SQLite, never commits."""
        return SqlUnitOfWork(self, read_only=True)


def _pin_pool(pool: sa.Pool) -> sa.Pool:
    """A pool for the pinned connections, as ``pool.recreate()`` makes one (the same
    creator and connect events, hence the same pragmas) but sized for two, and never
    waiting (two event loops of one process may each pin one at the same moment)."""
    return sa.QueuePool(
        pool._creator,  # what Pool.recreate passes on too
        pool_size=2,
        max_overflow=-1,
        recycle=pool._recycle,
        echo=pool.echo,
        logging_name=pool._orig_logging_name,
        reset_on_return=pool._reset_on_return,
        _dispatch=pool.dispatch,
        dialect=pool._dialect,
    )


def _driver_in_transaction(connection: sa.Connection) -> bool:
    """Whether the driver's connection is inside a transaction SQLAlchemy has ended
    (a ``COMMIT`` that failed): the pool's reset must roll it back."""
    try:
        return bool(connection.connection.dbapi_connection.in_transaction)  # type: ignore[union-attr]
    except (AttributeError, sa_exc.SQLAlchemyError):
        return True


class _Repo:
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    @property
    def conn(self) -> sa.Connection:
        return self._uow.connection

    def _run(
        self, statement: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> sa.CursorResult[Any]:
        if statement.is_dml:
            self._uow.writing()
        return guarded(lambda: self.conn.execute(statement, params))

    def _write(self, statement: sa.Insert | sa.Update, params: Mapping[str, Any]) -> int:
        """Run a write built once (a module constant) with every parameter given; the rows
        it changed. On SQLite on the driver's cursor (``driver.py``)."""
        self._uow.writing()
        if self._uow.store.dialect == "sqlite":
            write = prepared(statement, self.conn.dialect)
            return guarded(lambda: write.run(self.conn, params))
        return int(self._run(statement, params).rowcount)

    def _one(
        self, statement: sa.Select[Any], params: Mapping[str, Any] | None = None
    ) -> sa.RowMapping | None:
        row = self._run(statement, params).first()
        return None if row is None else row._mapping

    def _all(
        self, statement: sa.Select[Any], params: Mapping[str, Any] | None = None
    ) -> list[sa.RowMapping]:
        return [row._mapping for row in self._run(statement, params).all()]

    def _entities(
        self, codec: m.Codec[T], statement: sa.Select[Any], params: Mapping[str, Any] | None = None
    ) -> list[T]:
        """The entities of a ``SELECT`` of every column of ``codec``'s table, in table order."""
        return codec.load_all(self._run(statement, params).all())

    def _find(self, codec: m.Codec[T], **key: str) -> T | None:
        """The entity whose columns equal ``key`` (a prepared statement).

        Every lookup by id, hash or key comes here: a key holding NUL cannot be
        stored (PostgreSQL text never holds one), so it finds nothing instead of
        failing in the driver.
        """
        if not self._storable(*key.values()):
            return None
        statement = _lookup(codec.table, *key)
        if self._uow.store.dialect == "sqlite":  # on the driver's cursor (``driver.py``)
            found = prepared(statement, self.conn.dialect)
            values = guarded(lambda: found.first(self.conn, key))
            return None if values is None else codec.load_values(values)
        row = self._run(statement, key).first()
        return None if row is None else codec.load_values(row)

    def _insert(
        self,
        table: sa.Table,
        values: Mapping[str, Any],
        primary_key: str | None,
        constraint: UniqueConstraint,
    ) -> None:
        """Insert a row; a conflict raises ``DuplicateError`` (primary key first).

        ``primary_key`` names the primary-key column (looked up only after a
        conflict); ``None`` when the primary key is itself ``constraint``.
        """
        self._uow.writing()
        dialect = self._uow.store.dialect
        statement = _insert_statement(dialect, table)
        if dialect == "sqlite" and len(values) == len(table.columns):
            # Every column given (the mapping's rows): on the driver's cursor (``driver.py``).
            insert = prepared(statement, self.conn.dialect)
            inserted = guarded(lambda: insert.run(self.conn, values))
        else:
            inserted = guarded(lambda: self.conn.execute(statement, dict(values))).rowcount
        if inserted == 1:
            return
        if primary_key is not None and self._one(
            sa.select(sa.literal(1))
            .select_from(table)
            .where(table.c[primary_key] == values[primary_key])
        ):
            raise DuplicateError(UniqueConstraint.PRIMARY_KEY)
        raise DuplicateError(constraint)

    def _update(self, statement: sa.Update) -> bool:
        return self._run(statement).rowcount == 1

    def _catalog_changed(self) -> None:
        """What public reads show changed: the commit moves the catalogue version."""
        self._uow.catalog_changed = True

    @staticmethod
    def _storable(*keys: str) -> bool:
        """Whether a key can exist at all: PostgreSQL text never holds NUL, so a lookup
        by a key holding one finds nothing (instead of failing in the driver)."""
        return not any("\x00" in key for key in keys)


def _page_condition(
    columns: Sequence[sa.ColumnElement[Any]], after: CreatedKey | None
) -> list[Any]:
    if after is None:
        return []
    return [sa.tuple_(*columns) < sa.tuple_(*(sa.literal(v) for v in after))]


def _descending(columns: Sequence[sa.ColumnElement[Any]]) -> list[Any]:
    return [column.desc() for column in columns]


# The read paths' statements, built once per shape: only the parameters change per call
# (building a statement costs more than SQLite takes to run it).
def _after(columns: Sequence[sa.ColumnElement[Any]]) -> sa.ColumnElement[bool]:
    """``(columns) < (:after_0, :after_1, …)``: a keyset position as parameters."""
    bound = [
        sa.bindparam(f"after_{index}", type_=column.type) for index, column in enumerate(columns)
    ]
    return sa.tuple_(*columns) < sa.tuple_(*bound)


def _after_params(after: CreatedKey | None) -> dict[str, Any]:
    return {} if after is None else {f"after_{index}": value for index, value in enumerate(after)}


def _newest_first(
    table: sa.Table, key: Sequence[str], owner: str, *conditions: sa.ColumnElement[bool]
) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """``SELECT * FROM table WHERE owner = :owner AND … ORDER BY key DESC LIMIT :limit``,
    from the start and after a keyset position (``:after_0``, …)."""
    columns = [table.c[name] for name in key]
    base = (
        sa.select(table)
        .where(table.c[owner] == sa.bindparam(owner), *conditions)
        .order_by(*_descending(columns))
        .limit(sa.bindparam("limit"))
    )
    return base, base.where(_after(columns))


_RELEASES_OF = {
    include_revoked: _newest_first(
        t.releases,
        ("published_at_ms", "release_id"),
        "listing_id",
        *(() if include_revoked else (t.releases.c.status == ReleaseStatus.PUBLISHED,)),
    )
    for include_revoked in (False, True)
}
_PUBLISHED_VERSIONS = sa.select(
    t.releases.c.release_id, t.releases.c.version, t.releases.c.published_at_ms
).where(
    t.releases.c.listing_id == sa.bindparam("listing_id"),
    t.releases.c.status == ReleaseStatus.PUBLISHED,
)
_LISTINGS_OF = _newest_first(t.listings, ("created_at_ms", "listing_id"), "publisher_user_id")
_LISTINGS_OF_IN = _newest_first(
    t.listings,
    ("created_at_ms", "listing_id"),
    "publisher_user_id",
    t.listings.c.status == sa.bindparam("status"),
)
_API_TOKENS_OF = _newest_first(t.api_tokens, ("created_at_ms", "token_id"), "user_id")


def _intent_filters() -> dict[str, tuple[sa.ColumnElement[bool], ...]]:
    """A buyer's intents by status filter (``:status``), as every reader observes them at
    ``:now``: an open intent past its expiry is expired."""
    c = t.install_intents.c
    status, now = (
        sa.bindparam("status", type_=c.status.type),
        sa.bindparam("now", type_=c.expires_at_ms.type),
    )
    open_statuses = sorted(OPEN_INTENT_STATUSES)
    return {
        "any": (),
        # Stored as expired, or still open with its expiry passed.
        "expired": (
            sa.or_(
                c.status == InstallIntentStatus.EXPIRED,
                sa.and_(c.status.in_(open_statuses), c.expires_at_ms <= now),
            ),
        ),
        "open": (c.status == status, c.expires_at_ms > now),
        "stored": (c.status == status,),
    }


_INTENTS_OF = {
    shape: _newest_first(
        t.install_intents, ("created_at_ms", "install_intent_id"), "buyer_user_id", *filters
    )
    for shape, filters in _intent_filters().items()
}


class _Users(_Repo):
    def get(self, user_id: str) -> User | None:
        return self._find(m.USERS, user_id=user_id)

    def get_many(self, user_ids: Iterable[str]) -> Mapping[str, User]:
        wanted = sorted(uid for uid in set(user_ids) if self._storable(uid))
        if not wanted:
            return {}
        if len(wanted) == 1:  # one lookup by key (a prepared statement)
            found = self.get(wanted[0])
            return {} if found is None else {found.user_id: found}
        users = self._entities(m.USERS, _USERS_OF, {"ids": wanted})
        return {user.user_id: user for user in users}

    def get_by_external_id(self, external_id: str) -> User | None:
        return self._find(m.USERS, external_id=external_id)

    def add(self, user: User) -> None:
        self._insert(
            t.users,
            m.user_row(user),
            "user_id",
            UniqueConstraint.USER_EXTERNAL_ID,
        )

    def update(self, user: User) -> None:
        values = m.user_row(user)
        statement = (
            sa.update(t.users)
            .where(t.users.c.user_id == user.user_id, t.users.c.external_id == user.external_id)
            .values(values)
        )
        if not self._update(statement):
            if self.get(user.user_id) is None:
                raise KeyError(user.user_id)
            raise ValueError("external ids never change")
        self._catalog_changed()  # the default publisher name

    def list_page(self, after_user_id: str | None, limit: int) -> Sequence[User]:
        c = t.users.c
        query = sa.select(t.users).order_by(c.user_id).limit(limit)
        if after_user_id is not None:
            query = query.where(c.user_id > after_user_id)
        return self._entities(m.USERS, query)


class _Profiles(_Repo):
    def get(self, publisher_id: str) -> PublisherProfile | None:
        return self._find(m.PROFILES, publisher_id=publisher_id)

    def get_many(self, publisher_ids: Iterable[str]) -> Mapping[str, PublisherProfile]:
        wanted = sorted(pid for pid in set(publisher_ids) if self._storable(pid))
        if not wanted:
            return {}
        if len(wanted) == 1:  # one lookup by key (a prepared statement)
            found = self.get(wanted[0])
            return {} if found is None else {found.publisher_id: found}
        profiles = self._entities(m.PROFILES, _PROFILES_OF, {"ids": wanted})
        return {profile.publisher_id: profile for profile in profiles}

    def save(self, profile: PublisherProfile) -> None:
        c = t.publisher_profiles.c
        before = self._one(
            sa.select(c.verification_status).where(c.publisher_id == profile.publisher_id)
        )
        if (before["verification_status"] if before else None) != profile.verification.status:
            # The verified filter of the search engine follows the publisher's listings.
            owned = sa.select(t.listings.c.listing_id).where(
                t.listings.c.publisher_user_id == profile.publisher_id
            )
            self._uow.search_changed(row[0] for row in self._run(owned))
        values = m.profile_row(profile)
        dialect = sqlite if self._uow.store.dialect == "sqlite" else postgresql
        statement = dialect.insert(t.publisher_profiles).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[t.publisher_profiles.c.publisher_id],
            set_={key: statement.excluded[key] for key in values if key != "publisher_id"},
        )
        self._run(statement)
        self._catalog_changed()


class _Listings(_Repo):
    def get(self, listing_id: str) -> Listing | None:
        return self._find(m.LISTINGS, listing_id=listing_id)

    def add(self, listing: Listing) -> None:
        self._insert(
            t.listings,
            m.listing_row(listing),
            "listing_id",
            UniqueConstraint.PRIMARY_KEY,
        )
        self._index(listing, replace=False)
        if listing.status is not ListingStatus.DRAFT:
            self._catalog_changed()
            self._uow.search_changed([listing.listing_id])
        # A new draft is in no public answer and no search index (engines index published
        # listings only, ADR 0027): nothing to log, and no turn taken on the log's head row,
        # which would queue every concurrent create behind one another (ADR 0037).

    def _index(self, listing: Listing, *, replace: bool) -> None:
        """Keep the search tables holding exactly the published listings, up to date."""
        if replace:
            for table in (t.listing_terms, t.listing_labels):
                self._run(sa.delete(table).where(table.c.listing_id == listing.listing_id))
        if listing.status is not ListingStatus.PUBLISHED:
            return
        labels = m.label_rows(listing, (t.LABEL_TAG, t.LABEL_CATEGORY))
        if labels:
            guarded(lambda: self.conn.execute(sa.insert(t.listing_labels), labels))
        terms = m.term_rows(listing)
        if terms:
            guarded(lambda: self.conn.execute(sa.insert(t.listing_terms), terms))

    def update(self, listing: Listing, expected: Listing) -> bool:
        c = t.listings.c
        current = self._one(
            sa.select(c.publisher_user_id, c.asset_kind).where(c.listing_id == listing.listing_id)
        )
        if current is None:
            raise KeyError(listing.listing_id)
        if (current["publisher_user_id"], current["asset_kind"]) != (
            listing.publisher_user_id,
            listing.asset_kind,
        ):
            raise ValueError("owner and asset kind never change")
        statement = (
            sa.update(t.listings)
            .where(
                c.listing_id == listing.listing_id,
                c.status == expected.status,
                c.updated_at_ms == expected.updated_at_ms,
            )
            .values(m.listing_row(listing))
        )
        if not self._update(statement):
            return False
        self._index(listing, replace=True)
        self._catalog_changed()
        self._uow.search_changed([listing.listing_id])
        return True

    def list_by_owner(
        self, owner_user_id: str, status: ListingStatus | None, after: CreatedKey | None, limit: int
    ) -> Sequence[Listing]:
        statement = (_LISTINGS_OF if status is None else _LISTINGS_OF_IN)[after is not None]
        params = {"publisher_user_id": owner_user_id, "limit": limit, **_after_params(after)}
        if status is not None:
            params["status"] = status
        return self._entities(m.LISTINGS, statement, params)

    def search_published(self, search: ListingSearch) -> Sequence[SearchHit]:
        store = self._uow.store
        engine = store.search_engine
        if engine is not None and ranked_by_engine(search):
            return guarded(lambda: fetch_ranked(self.conn, engine, search))
        threshold = store.common_term_rows
        return guarded(lambda: search_published(self.conn, search, threshold))

    def search_cards(self, search: ListingSearch) -> Sequence[CardHit]:
        store = self._uow.store
        engine = store.search_engine
        if engine is not None and ranked_by_engine(search):
            return guarded(lambda: fetch_ranked_cards(self.conn, engine, search))
        threshold = store.common_term_rows
        return guarded(lambda: search_cards(self.conn, search, threshold))

    def cards(
        self, listing_ids: Iterable[str], installs_since_ms: int
    ) -> Mapping[str, ListingCard]:
        wanted = sorted(lid for lid in set(listing_ids) if self._storable(lid))
        return guarded(lambda: cards_of(self.conn, wanted, installs_since_ms))

    def detail(
        self, listing_id: str, installs_since_ms: int, releases: int
    ) -> ListingDetail | None:
        if not self._storable(listing_id):
            return None
        return guarded(lambda: detail_of(self.conn, listing_id, installs_since_ms, releases))


class _Releases(_Repo):
    def get(self, release_id: str) -> Release | None:
        return self._find(m.RELEASES, release_id=release_id)

    def add(self, release: Release) -> None:
        self._insert(
            t.releases,
            m.release_row(release),
            "release_id",
            UniqueConstraint.RELEASE_VERSION,
        )
        self._catalog_changed()

    def update(self, release: Release, expected_status: ReleaseStatus) -> bool:
        current = self.get(release.release_id)
        if current is None:
            raise KeyError(release.release_id)
        if current.status is not expected_status:
            return False
        if attrs.evolve(
            release, status=current.status, revoked_at_ms=None, revoke_reason=None
        ) != attrs.evolve(current, revoked_at_ms=None, revoke_reason=None):
            raise ValueError("a release is immutable apart from its revocation")
        c = t.releases.c
        statement = (
            sa.update(t.releases)
            .where(c.release_id == release.release_id, c.status == expected_status)
            .values(
                status=release.status,
                revoked_at_ms=release.revoked_at_ms,
                revoke_reason=release.revoke_reason,
            )
        )
        if not self._update(statement):
            return False
        self._catalog_changed()
        return True

    def list_for_listing(
        self, listing_id: str, include_revoked: bool, after: CreatedKey | None, limit: int
    ) -> Sequence[Release]:
        statement = _RELEASES_OF[include_revoked][after is not None]
        params = {"listing_id": listing_id, "limit": limit, **_after_params(after)}
        return self._entities(m.RELEASES, statement, params)

    def published_versions(self, listing_id: str) -> Sequence[VersionCandidate]:
        rows = self._run(_PUBLISHED_VERSIONS, {"listing_id": listing_id})
        return [VersionCandidate(*row) for row in cast(Iterable[tuple[str, str, int]], rows)]


class _Intents(_Repo):
    def get(self, install_intent_id: str) -> InstallIntent | None:
        return self._find(m.INSTALL_INTENTS, install_intent_id=install_intent_id)

    def add(self, intent: InstallIntent) -> None:
        self._insert(
            t.install_intents,
            m.intent_row(intent),
            "install_intent_id",
            UniqueConstraint.PRIMARY_KEY,
        )
        # Not a catalogue change: the public install statistics it moves lag by at most
        # the response cache's entry lifetime (ADR 0033), so installs never empty it.

    def update(self, intent: InstallIntent, expected_status: InstallIntentStatus) -> bool:
        c = t.install_intents.c
        # The immutable buyer is part of the condition: one statement when the set wins.
        params = {
            **m.intent_row(intent),
            "where_key": intent.install_intent_id,
            "where_status": expected_status.value,
            "where_guard": intent.buyer_user_id,
        }
        if self._write(_INTENT_CAS, params) == 1:
            return True
        current = self._one(
            sa.select(c.buyer_user_id).where(c.install_intent_id == intent.install_intent_id)
        )
        if current is None:
            raise KeyError(intent.install_intent_id)
        if current["buyer_user_id"] != intent.buyer_user_id:
            raise ValueError("the buyer never changes")
        return False

    def list_for_buyer(
        self,
        buyer_user_id: str,
        status: InstallIntentStatus | None,
        now_ms: int,
        after: CreatedKey | None,
        limit: int,
    ) -> Sequence[InstallIntent]:
        if status is InstallIntentStatus.EXPIRED:
            shape = "expired"
        elif status in OPEN_INTENT_STATUSES:
            shape = "open"
        else:
            shape = "any" if status is None else "stored"
        params: dict[str, Any] = {
            "buyer_user_id": buyer_user_id,
            "limit": limit,
            "now": now_ms,
            **_after_params(after),
        }
        if status is not None:
            params["status"] = status
        return self._entities(m.INSTALL_INTENTS, _INTENTS_OF[shape][after is not None], params)

    def count_created_since(self, listing_ids: Iterable[str], since_ms: int) -> Mapping[str, int]:
        wanted = sorted(set(listing_ids))
        if not wanted:
            return {}
        rows = self._all(_INTENT_COUNTS, {"ids": wanted, "since": since_ms})
        return {row["listing_id"]: int(row["n"]) for row in rows}

    def due_for_expiry(self, now_ms: int, limit: int) -> Sequence[InstallIntent]:
        c = t.install_intents.c
        query = (
            sa.select(t.install_intents)
            .where(c.status.in_(sorted(OPEN_INTENT_STATUSES)), c.expires_at_ms <= now_ms)
            .order_by(c.expires_at_ms, c.install_intent_id)
            .limit(limit)
        )
        return self._entities(m.INSTALL_INTENTS, query)


class _Tokens(_Repo):
    def add(self, token: InstallToken) -> None:
        self._insert(
            t.install_tokens,
            m.token_row(token),
            "token_id",
            UniqueConstraint.TOKEN_HASH,
        )

    def update(self, token: InstallToken, expected_status: InstallTokenStatus) -> bool:
        c = t.install_tokens.c
        # The immutable hash is part of the condition: one statement when the set wins.
        params = {
            **m.token_row(token),
            "where_key": token.token_id,
            "where_status": expected_status.value,
            "where_guard": token.token_hash,
        }
        if self._write(_TOKEN_CAS, params) == 1:
            return True
        current = self._one(sa.select(c.token_hash).where(c.token_id == token.token_id))
        if current is None:
            raise KeyError(token.token_id)
        if current["token_hash"] != token.token_hash:
            raise ValueError("a token's hash never changes")
        return False

    def redeem(
        self,
        token: InstallToken,
        token_was: InstallTokenStatus,
        intent: InstallIntent,
        intent_was: InstallIntentStatus,
        event: AuditEvent,
    ) -> bool:
        self._uow.writing()
        if self._uow.store.dialect != "postgresql":
            return self._redeem_sqlite(token, token_was, intent, intent_was, event)
        params = {
            **_cas_params(
                "t_",
                m.token_row(token),
                TOKEN_STATE_COLUMNS,
                token.token_id,
                token_was.value,
                token.token_hash,
            ),
            **_cas_params(
                "i_",
                m.intent_row(intent),
                INTENT_STATE_COLUMNS,
                intent.install_intent_id,
                intent_was.value,
                intent.buyer_user_id,
            ),
            **{"a_" + name: value for name, value in m.audit_row(event).items()},
        }
        statement = prepared(_REDEEM_PG, self.conn.dialect)
        counts = guarded(lambda: statement.first(self.conn, params))
        assert counts is not None  # a SELECT of three counts: always one row
        tokens, intents, events = counts
        if tokens and intents and events:
            return True
        # A lost set: the same checks as ``update`` (an unknown row, a changed guard).
        if not tokens:
            return self._lost(
                t.install_tokens, "token_id", token.token_id, "token_hash", token.token_hash
            )
        return self._lost(
            t.install_intents,
            "install_intent_id",
            intent.install_intent_id,
            "buyer_user_id",
            intent.buyer_user_id,
        )

    def _redeem_sqlite(
        self,
        token: InstallToken,
        token_was: InstallTokenStatus,
        intent: InstallIntent,
        intent_was: InstallIntentStatus,
        event: AuditEvent,
    ) -> bool:
        """SQLite has no data-modifying CTEs: the same three writes as three statements in
        the transaction (driver statements: see ``driver.py``)."""
        token_set, intent_set, audit_insert = _sqlite_redeem_statements(self.conn.dialect)
        token_params = _cas_params(
            "",
            m.token_row(token),
            TOKEN_STATE_COLUMNS,
            token.token_id,
            token_was.value,
            token.token_hash,
        )
        if guarded(lambda: token_set.run(self.conn, token_params)) != 1:
            return self._lost(
                t.install_tokens, "token_id", token.token_id, "token_hash", token.token_hash
            )
        intent_params = _cas_params(
            "",
            m.intent_row(intent),
            INTENT_STATE_COLUMNS,
            intent.install_intent_id,
            intent_was.value,
            intent.buyer_user_id,
        )
        if guarded(lambda: intent_set.run(self.conn, intent_params)) != 1:
            return self._lost(
                t.install_intents,
                "install_intent_id",
                intent.install_intent_id,
                "buyer_user_id",
                intent.buyer_user_id,
            )
        if guarded(lambda: audit_insert.run(self.conn, m.audit_row(event))) != 1:
            raise DuplicateError(UniqueConstraint.PRIMARY_KEY)  # the event id, its only key
        return True

    def _lost(self, table: sa.Table, key: str, value: str, guard: str, expected: str) -> bool:
        current = self._one(sa.select(table.c[guard]).where(table.c[key] == value))
        if current is None:
            raise KeyError(value)
        if current[guard] != expected:
            raise ValueError(f"{table.name}.{guard} never changes")
        return False

    def get_by_hash(self, token_hash: str) -> InstallToken | None:
        return self._find(m.INSTALL_TOKENS, token_hash=token_hash)

    def get_for_redemption(self, token_hash: str) -> Redeemable | None:
        if not self._storable(token_hash):
            return None
        params = {"token_hash": token_hash}
        row: Sequence[Any] | None
        if self._uow.store.dialect == "sqlite":  # on the driver's cursor (``driver.py``)
            read = prepared(_REDEEMABLE, self.conn.dialect)
            row = guarded(lambda: read.first(self.conn, params))
        else:
            row = self._run(_REDEEMABLE, params).first()
        if row is None:
            return None
        token, intent, release, listing = (row[part] for part in _REDEEMABLE_SLICES)
        return Redeemable(
            token=m.INSTALL_TOKENS.load_values(token),
            intent=m.INSTALL_INTENTS.load_values(intent),
            release=m.RELEASES.load_values(release),
            listing=m.LISTINGS.load_values(listing),
        )

    def list_issued_for_intent(self, install_intent_id: str) -> Sequence[InstallToken]:
        c = t.install_tokens.c
        query = (
            sa.select(t.install_tokens)
            .where(c.install_intent_id == install_intent_id, c.status == InstallTokenStatus.ISSUED)
            .order_by(c.issued_at_ms, c.token_id)
        )
        return self._entities(m.INSTALL_TOKENS, query)

    def list_issued_for_listing(self, listing_id: str) -> Sequence[InstallToken]:
        c = t.install_tokens.c
        intents = sa.select(t.install_intents.c.install_intent_id).where(
            t.install_intents.c.listing_id == listing_id
        )
        query = (
            sa.select(t.install_tokens)
            .where(c.install_intent_id.in_(intents), c.status == InstallTokenStatus.ISSUED)
            .order_by(c.issued_at_ms, c.token_id)
        )
        return self._entities(m.INSTALL_TOKENS, query)

    def due_for_expiry(self, now_ms: int, limit: int) -> Sequence[InstallToken]:
        c = t.install_tokens.c
        query = (
            sa.select(t.install_tokens)
            .where(c.status == InstallTokenStatus.ISSUED, c.expires_at_ms <= now_ms)
            .order_by(c.expires_at_ms, c.token_id)
            .limit(limit)
        )
        return self._entities(m.INSTALL_TOKENS, query)


class _ApiTokens(_Repo):
    def add(self, token: ApiToken) -> None:
        self._insert(
            t.api_tokens,
            m.api_token_row(token),
            "token_id",
            UniqueConstraint.API_TOKEN_HASH,
        )

    def get(self, token_id: str) -> ApiToken | None:
        return self._find(m.API_TOKENS, token_id=token_id)

    def get_by_hash(self, token_hash: str) -> ApiToken | None:
        return self._find(m.API_TOKENS, token_hash=token_hash)

    def update(self, token: ApiToken, expected_revoked_at_ms: int | None) -> bool:
        current = self.get(token.token_id)
        if current is None:
            raise KeyError(token.token_id)
        if current.revoked_at_ms != expected_revoked_at_ms:
            return False
        if attrs.evolve(token, revoked_at_ms=current.revoked_at_ms) != current:
            raise ValueError("an API token is immutable apart from its revocation")
        c = t.api_tokens.c
        unchanged = (
            c.revoked_at_ms.is_(None)
            if expected_revoked_at_ms is None
            else c.revoked_at_ms == expected_revoked_at_ms
        )
        statement = (
            sa.update(t.api_tokens)
            .where(c.token_id == token.token_id, unchanged)
            .values(revoked_at_ms=token.revoked_at_ms)
        )
        return self._update(statement)

    def list_for_user(
        self, user_id: str, after: CreatedKey | None, limit: int
    ) -> Sequence[ApiToken]:
        params = {"user_id": user_id, "limit": limit, **_after_params(after)}
        return self._entities(m.API_TOKENS, _API_TOKENS_OF[after is not None], params)


class _Accounts(_Repo):
    def get(self, user_id: str) -> Account | None:
        return self._find(m.ACCOUNTS, user_id=user_id)

    def get_by_username(self, username: str) -> Account | None:
        return self._find(m.ACCOUNTS, username=username)

    def get_by_email(self, email: str) -> Account | None:
        return self._find(m.ACCOUNTS, email=email)

    def add(self, account: Account) -> None:
        try:
            self._insert(
                t.accounts,
                m.account_row(account),
                "user_id",
                UniqueConstraint.ACCOUNT_USERNAME,
            )
        except DuplicateError as error:
            if error.constraint != UniqueConstraint.ACCOUNT_USERNAME:
                raise
            # Two unique columns besides the key: say which one is taken.
            if self.get_by_username(account.username) is None:
                raise DuplicateError(UniqueConstraint.ACCOUNT_EMAIL) from None
            raise

    def update(self, account: Account, expected_password_hash: str) -> bool:
        c = t.accounts.c
        statement = (
            sa.update(t.accounts)
            .where(
                c.user_id == account.user_id,
                c.password_hash == expected_password_hash,
                c.username == account.username,
                c.email.is_(None) if account.email is None else c.email == account.email,
            )
            .values(
                password_hash=account.password_hash,
                password_changed_at_ms=account.password_changed_at_ms,
                updated_at_ms=account.updated_at_ms,
            )
        )
        if self._update(statement):
            return True
        current = self.get(account.user_id)
        if current is None:
            raise KeyError(account.user_id)
        if (current.username, current.email) != (account.username, account.email):
            raise ValueError("an account's username and e-mail never change through update")
        return False


class _Sessions(_Repo):
    def add(self, session: BrowserSession) -> None:
        self._insert(t.browser_sessions, m.session_row(session), None, UniqueConstraint.PRIMARY_KEY)

    def get(self, session_hash: str) -> BrowserSession | None:
        return self._find(m.SESSIONS, session_hash=session_hash)

    def touch(self, session_hash: str, last_seen_at_ms: int) -> None:
        c = t.browser_sessions.c
        self._run(
            sa.update(t.browser_sessions)
            .where(c.session_hash == session_hash, c.last_seen_at_ms < last_seen_at_ms)
            .values(last_seen_at_ms=last_seen_at_ms)
        )

    def delete(self, session_hash: str) -> bool:
        if not self._storable(session_hash):
            return False
        c = t.browser_sessions.c
        return (
            self._update_count(sa.delete(t.browser_sessions).where(c.session_hash == session_hash))
            == 1
        )

    def delete_for_user(self, user_id: str) -> int:
        c = t.browser_sessions.c
        return self._update_count(sa.delete(t.browser_sessions).where(c.user_id == user_id))

    def delete_expired(self, now_ms: int, idle_ms: int, limit: int) -> int:
        c = t.browser_sessions.c
        batch = (
            sa.select(c.session_hash)
            .where(sa.or_(c.expires_at_ms <= now_ms, c.last_seen_at_ms <= now_ms - idle_ms))
            .limit(limit)
        )
        return self._update_count(sa.delete(t.browser_sessions).where(c.session_hash.in_(batch)))

    def _update_count(self, statement: sa.Delete) -> int:
        return int(self._run(statement).rowcount)


def _idempotency_statements() -> tuple[sa.Update, sa.Delete]:
    """A claim's completion (or takeover) and its release, built once: each is guarded by
    the claim id it expects, so a holder whose claim was taken over changes nothing."""
    c = t.idempotency_records.c
    where = (
        c.scope_user_id == sa.bindparam("where_scope_user_id"),
        c.endpoint == sa.bindparam("where_endpoint"),
        c.key == sa.bindparam("where_key"),
        c.claim_id == sa.bindparam("where_claim_id"),
    )
    replace = (
        sa.update(t.idempotency_records)
        .where(*where)
        .values({column.name: sa.bindparam(column.name) for column in t.idempotency_records.c})
    )
    return replace, sa.delete(t.idempotency_records).where(*where)


_IDEMPOTENCY_REPLACE, _IDEMPOTENCY_DELETE = _idempotency_statements()


def _claim_key(record: IdempotencyRecord, claim_id: str) -> dict[str, Any]:
    return {
        "where_scope_user_id": record.scope_user_id,
        "where_endpoint": record.endpoint,
        "where_key": record.key,
        "where_claim_id": claim_id,
    }


#: PostgreSQL: the key's transaction-scoped advisory lock, taken without waiting.
_IDEMPOTENCY_TRY_LOCK = sa.select(
    sa.func.pg_try_advisory_xact_lock(sa.bindparam("lock", type_=sa.BigInteger))
)


def _lock_id(key: HeldKey) -> int:
    """A signed 64-bit advisory lock id for the key (two keys share one with odds 2**-64)."""
    triple = "\x00".join(key).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(triple, digest_size=8).digest(), "big", signed=True)


class _Idempotency(_Repo):
    def get(self, scope_user_id: str, endpoint: str, key: str) -> IdempotencyRecord | None:
        return self._find(m.IDEMPOTENCY, scope_user_id=scope_user_id, endpoint=endpoint, key=key)

    def add(self, record: IdempotencyRecord) -> None:
        self._insert(
            t.idempotency_records,
            m.idempotency_row(record),
            None,
            UniqueConstraint.IDEMPOTENCY_KEY,
        )

    def replace(self, record: IdempotencyRecord, expected_claim_id: str) -> bool:
        params = {**m.idempotency_row(record), **_claim_key(record, expected_claim_id)}
        return self._write(_IDEMPOTENCY_REPLACE, params) == 1

    def delete(self, record: IdempotencyRecord) -> None:
        self._run(_IDEMPOTENCY_DELETE, _claim_key(record, record.claim_id))

    def delete_expired(self, now_ms: int, limit: int) -> int:
        c = t.idempotency_records.c
        key = sa.tuple_(c.scope_user_id, c.endpoint, c.key)
        batch = (
            sa.select(c.scope_user_id, c.endpoint, c.key)
            .where(c.expires_at_ms <= now_ms)
            .order_by(c.expires_at_ms)
            .limit(limit)
        )
        return int(self._run(sa.delete(t.idempotency_records).where(key.in_(batch))).rowcount)


class _Audit(_Repo):
    def append(self, event: AuditEvent) -> None:
        self._insert(
            t.audit_events,
            m.audit_row(event),
            "event_id",
            UniqueConstraint.PRIMARY_KEY,
        )

    def query(
        self, query: AuditQuery, after: CreatedKey | None, limit: int
    ) -> Sequence[AuditEvent]:
        c = t.audit_events.c
        key = [c.created_at_ms, c.event_id]
        conditions = _page_condition(key, after)
        if query.type is not None:
            conditions.append(c.type == query.type)
        if query.listing_id is not None:
            conditions.append(c.listing_id == query.listing_id)
        if query.actor_user_id is not None:
            conditions.append(c.actor_user_id == query.actor_user_id)
        statement = (
            sa.select(t.audit_events).where(*conditions).order_by(*_descending(key)).limit(limit)
        )
        return self._entities(m.AUDIT_EVENTS, statement)


class SqlUnitOfWork:
    """One database transaction over a :class:`SqlStore`."""

    def __init__(self, store: SqlStore, *, read_only: bool = False) -> None:
        self.store = store
        self.read_only = read_only
        #: Set by a write that changes what public reads show (see ``_Repo._catalog_changed``).
        self.catalog_changed = False
        self._connection: sa.Connection | None = None
        self._transaction: sa.RootTransaction | None = None
        #: The store's writer lock while this unit of work holds it (SQLite).
        self._held: threading.Lock | None = None
        #: The idempotency key to hold (``hold_key``), and whether ``in_flight`` holds it.
        self._key: HeldKey | None = None
        self._holds_key = False
        self._search_seq: int | None = None
        #: Where :meth:`SqlStore.release` gives the connection back (``SqlStore.connect``).
        self._pin: bool | None = None
        self._epoch = 0
        self.users = _Users(self)
        self.profiles = _Profiles(self)
        self.listings = _Listings(self)
        self.releases = _Releases(self)
        self.intents = _Intents(self)
        self.tokens = _Tokens(self)
        self.api_tokens = _ApiTokens(self)
        self.accounts = _Accounts(self)
        self.sessions = _Sessions(self)
        self.idempotency = _Idempotency(self)
        self.audit = _Audit(self)

    @property
    def connection(self) -> sa.Connection:
        if self._connection is None:
            raise RuntimeError("use the unit of work inside its with block")
        return self._connection

    def hold_key(self, scope_user_id: str, endpoint: str, key: str) -> None:
        if self.read_only:
            raise RuntimeError("a read-only unit of work holds no idempotency key")
        if self._connection is not None or self._key is not None:
            raise RuntimeError("hold one key, before entering the unit of work")
        self._key = (scope_user_id, endpoint, key)

    def __enter__(self) -> Self:
        if self._connection is not None:
            raise RuntimeError("a unit of work is entered once")
        in_flight = self.store.in_flight
        if self._key is not None and in_flight is not None:
            # SQLite: the key before the writer lock, so that a duplicate does not queue.
            if not in_flight.try_hold(self._key):
                raise KeyHeld()
            self._holds_key = True
        try:
            self._open()
        except BaseException:
            self._release_key()
            raise
        return self

    def _open(self) -> None:
        lock = None if self.read_only else self.store.writer_lock
        if lock is not None and not lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            # As long as SQLite itself would wait for the write lock: an outage.
            _log.warning("database unavailable (writer lock wait timed out)")
            raise Unavailable("The database is unavailable.")
        try:
            epoch = self.store.pin_epoch
            connection, pin = self.store.connect(read_only=self.read_only)
            try:
                self._transaction = guarded(connection.begin)
                if self._key is not None and self.store.in_flight is None:
                    self._advisory_lock(connection, self._key)
            except BaseException:
                self._transaction = None
                if connection.in_transaction():
                    with contextlib.suppress(sa_exc.SQLAlchemyError):
                        connection.rollback()
                self.store.release(connection, pin, epoch)
                raise
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        self._held = lock
        self._connection = connection
        self._pin, self._epoch = pin, epoch

    @staticmethod
    def _advisory_lock(connection: sa.Connection, key: HeldKey) -> None:
        """PostgreSQL: hold ``key`` with a transaction advisory lock, taken without waiting
        (a duplicate of a running request answers at once rather than queue on the claim
        row's unique index); released by the commit or the rollback."""
        statement, params = _IDEMPOTENCY_TRY_LOCK, {"lock": _lock_id(key)}
        if not guarded(lambda: connection.execute(statement, params).scalar_one()):
            raise KeyHeld()

    def _release_key(self) -> None:
        if self._holds_key and self._key is not None and self.store.in_flight is not None:
            self._holds_key = False
            self.store.in_flight.release(self._key)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            self.rollback()
        finally:
            self._transaction = None
            self.store.release(connection, self._pin, self._epoch)
            # The key before the writer lock (it is free once the transaction ended):
            # a duplicate that takes it queues for the lock an instant, then replays.
            self._release_key()
            held, self._held = self._held, None
            if held is not None:
                held.release()

    def search_changed(self, listing_ids: Iterable[str]) -> None:
        """Log, in this transaction, that ``listing_ids`` changed for search engines."""
        ids = list(listing_ids)
        if not ids:
            return
        self.writing()
        if self._search_seq is None:
            self._search_seq = guarded(lambda: search_log.next_seq(self.connection))
        seq = self._search_seq
        guarded(lambda: search_log.append(self.connection, seq, ids))

    def writing(self) -> None:
        """Refuse a write in a read-only unit of work (a programming error): on PostgreSQL
        its statements autocommit (ADR 0042), so a write would not be rolled back."""
        if self.read_only:
            raise RuntimeError("a read-only unit of work never writes")

    def commit(self) -> None:
        if self._transaction is None or not self._transaction.is_active:
            raise RuntimeError("commit outside the unit of work")
        if self.read_only:
            raise RuntimeError("a read-only unit of work never commits")
        version, bumped_at = None, 0.0
        if self.catalog_changed:
            # Last statement of the transaction: the row lock is held only while committing.
            statement = bump_statement(self.store.dialect)
            bumped_at = self.store.catalog_version.now()
            version = guarded(lambda: self.connection.execute(statement).scalar_one())
        guarded(self._transaction.commit)
        self.catalog_changed = False
        if version is not None:
            self.store.catalog_version.observe(version, bumped_at)

    def rollback(self) -> None:
        self.catalog_changed = False
        transaction = self._transaction
        if transaction is not None and transaction.is_active:
            with contextlib.suppress(sa_exc.SQLAlchemyError):
                transaction.rollback()

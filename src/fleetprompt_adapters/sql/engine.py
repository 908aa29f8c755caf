"""Engines tuned for a server: SQLite (WAL, foreign keys, busy timeout) and PostgreSQL (pool).

SQLite: every unit of work that may write starts with ``BEGIN IMMEDIATE``,
so a transaction that reads and then writes never meets a newer snapshot
(WAL readers would otherwise fail with ``SQLITE_BUSY_SNAPSHOT`` when
upgrading); writers wait for one another up to the busy timeout. Read-only
units of work (connection option :data:`READ_ONLY_OPTION`) start a deferred
transaction: a WAL snapshot that never waits for or blocks a writer.

PostgreSQL: psycopg 3 with a connection pool, ``READ COMMITTED``; every
status change is a compare-and-set ``UPDATE``, so races have one winner
without serialisable isolation (ADR 0013). A pooled connection is checked at
checkout without a round trip (ADR 0042): only one whose socket has something
to read (the server closed it, or said it will) is pinged, and replaced, with
every older one, when the ping fails — what ``pool_pre_ping`` does, without its
round trip for every healthy connection.

Timeouts (:class:`Timeouts`, ADR 0026): connecting (PostgreSQL), waiting for
a pooled connection, and each statement are bounded. PostgreSQL enforces
``statement_timeout`` and ``lock_timeout`` itself; on SQLite the busy timeout
bounds waiting for the write lock and a progress handler interrupts a
statement that runs past the bound. A failure of any of them is an outage
(``Unavailable``, see ``store.storage_error``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import select
import sqlite3
import threading
import time
import types
import weakref
from collections.abc import Iterator
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from fleetprompt_adapters import MissingExtra
from fleetprompt_adapters.sql.driver import on_cursor

__all__ = [
    "READ_ONLY_OPTION",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_CACHE_MIB",
    "SQLITE_CHECKPOINT_MS",
    "Timeouts",
    "WalCheckpointer",
    "checkpointer_of",
    "create_engine",
    "decode_json",
    "in_transaction",
    "is_sqlite",
    "normalize_url",
]

SQLITE_BUSY_TIMEOUT_MS = 10_000
#: How long after a commit the background thread checkpoints SQLite's WAL (ADR 0045).
SQLITE_CHECKPOINT_MS = 20
#: Each SQLite connection's page cache, in MiB (``PRAGMA cache_size``): a bound, filled
#: as reads touch pages. Past it a page is read again from the operating system's file
#: cache (one system call, no disk), so a small cache costs little.
SQLITE_CACHE_MIB = 8
#: SQLite calls the progress handler every this many virtual machine steps.
_PROGRESS_STEPS = 10_000
_DEADLINE_KEY = "fleetprompt_statement_deadline"


@attrs.frozen
class Timeouts:
    """Bounds on one connection's waits; ``None`` leaves one unbounded (migrations)."""

    #: Opening a PostgreSQL connection (libpq counts whole seconds, at least 2).
    connect_ms: int | None = 5_000
    #: Waiting for a pooled connection when every one is in use.
    pool_ms: int = 5_000
    #: One statement, waiting for locks included.
    statement_ms: int | None = 10_000

    @property
    def connect_s(self) -> int | None:
        return None if self.connect_ms is None else max(2, math.ceil(self.connect_ms / 1000))


#: What ``create_engine`` uses unless told otherwise: no statement bound (a
#: migration may run long), the pool and connect bounds of :class:`Timeouts`.
UNBOUNDED_STATEMENTS = Timeouts(statement_ms=None)
#: Connection execution option marking a unit of work that only reads.
READ_ONLY_OPTION = "fleetprompt_read_only"


@contextlib.contextmanager
def reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection for work that only reads the database (a search index build, a
    count): on SQLite its transactions begin deferred, so they take no write lock and
    neither wait for writers nor keep them (or another process starting) waiting."""
    with engine.connect() as conn:
        yield conn.execution_options(**{READ_ONLY_OPTION: True})


@contextlib.contextmanager
def in_transaction(conn: sa.Connection) -> Iterator[sa.Connection]:
    """``conn`` inside a database transaction for the block, for a read that needs one: a
    server-side cursor (``yield_per``) on PostgreSQL lives only in a transaction.

    Every unit of work's connection is in one already, except a read-only unit of work
    on PostgreSQL, whose statements run on their own (autocommit, ADR 0042: under
    ``READ COMMITTED`` each has its own snapshot anyway). There the block opens a
    transaction and rolls it back after (it only reads): two round trips, paid only by
    what asks for it.
    """
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        yield conn
        return
    conn.exec_driver_sql("BEGIN")
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(sa_exc.SQLAlchemyError):
            conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("ROLLBACK")


#: JSON texts up to this length are decoded once and the value kept (see ``decode_json``).
JSON_CACHE_TEXT_MAX = 2_048
#: How many decoded JSON values one process keeps (the least recently used go first).
JSON_CACHE_SIZE = 8_192


def _frozen(value: Any) -> Any:
    """``value`` that no one can change: arrays as tuples, objects as read-only mappings."""
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return types.MappingProxyType({key: _frozen(item) for key, item in value.items()})
    return value


@functools.lru_cache(maxsize=JSON_CACHE_SIZE)
def _decode_cached(text: str | bytes) -> Any:
    return _frozen(json.loads(text))


def decode_json(text: str | bytes) -> Any:
    """The engine's JSON decoder: a stored JSON text as an immutable value, decoded once.

    Rows repeat the same few JSON texts (tags, categories, images, artifacts):
    each distinct text up to :data:`JSON_CACHE_TEXT_MAX` is decoded once per
    process and the frozen value shared (arrays become tuples, objects
    read-only mappings, so no reader can change what another sees).
    """
    if len(text) > JSON_CACHE_TEXT_MAX:
        return _frozen(json.loads(text))
    return _decode_cached(text)


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


_log = logging.getLogger(__name__)
#: The checkpointer closes its connection after this long without a commit.
_IDLE_CLOSE_S = 1.0


class WalCheckpointer:
    """Checkpoints one SQLite file's WAL in a daemon thread, soon after each commit (ADR 0045).

    Left to SQLite, the commit that takes the WAL past ``wal_autocheckpoint``
    pages copies them into the database and syncs both files itself: on a server,
    on the event loop (ADR 0036), every request of the process waiting. Here a
    commit only sets a flag (:meth:`committed`); the thread wakes, waits
    ``delay_s`` (so that one checkpoint serves the commits of that moment) and runs
    ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection: it copies what no
    reader still needs, never waits for or blocks a writer or a reader, and
    releases the GIL while SQLite works. The connections keep SQLite's automatic
    checkpoint as a backstop (``wal_autocheckpoint``, unchanged), so the WAL stays
    as short as before and, with ``synchronous = NORMAL``, what a power loss can
    take is bounded as before in pages, and now also in time (the delay and the
    checkpoint's run).
    """

    def __init__(self, path: str, delay_s: float) -> None:
        self._path = path
        self._delay_s = delay_s
        self._wanted = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: The process that started the thread (a forked child has none: it starts one).
        self._pid = 0
        #: Checkpoints run (for tests and benchmarks).
        self.runs = 0

    @property
    def running(self) -> bool:
        """Whether its thread is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def committed(self) -> None:
        """A transaction committed: checkpoint soon (starts the thread on first use)."""
        if self._thread is None or self._pid != os.getpid():
            self._start()
        self._wanted.set()

    def _start(self) -> None:
        with self._lock:
            pid = os.getpid()
            if (self._thread is None or self._pid != pid) and not self._stopping:
                if self._pid != pid:  # forked: the parent's lock and event are not ours
                    self._wanted = threading.Event()
                thread = threading.Thread(
                    target=self._run, name="fleetprompt-sqlite-checkpoint", daemon=True
                )
                self._thread, self._pid = thread, pid
                thread.start()

    def stop(self) -> None:
        """End the thread after a last checkpoint (an engine disposed and used again
        starts a new one at its next commit)."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wanted.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._lock:
            self._thread = None
            self._stopping = False

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                # Idle for a while: close the file (an engine nobody disposed keeps no
                # descriptor open); the next commit opens it again.
                if not self._wanted.wait(_IDLE_CLOSE_S):
                    if conn is not None:
                        conn.close()
                        conn = None
                    self._wanted.wait()
                if not self._stopping:
                    time.sleep(self._delay_s)
                self._wanted.clear()
                try:
                    if conn is None:
                        conn = sqlite3.connect(
                            self._path, isolation_level=None, check_same_thread=False
                        )
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                except sqlite3.Error as error:  # the next commit tries again; autocheckpoint stays
                    _log.warning("SQLite WAL checkpoint failed: %s", type(error).__name__)
                if self._stopping:
                    return
        finally:
            if conn is not None:
                conn.close()


_CHECKPOINTERS: weakref.WeakKeyDictionary[sa.Engine, WalCheckpointer] = weakref.WeakKeyDictionary()


def checkpointer_of(engine: sa.Engine) -> WalCheckpointer | None:
    """The background WAL checkpointer of a SQLite engine, if it has one."""
    return _CHECKPOINTERS.get(engine)


def _sqlite_engine(
    url: sa.URL,
    options: dict[str, Any],
    timeouts: Timeouts,
    cache_mib: int,
    checkpoint_ms: int | None,
) -> sa.Engine:
    if url.database in {None, "", ":memory:"}:
        raise ValueError(
            "an in-memory SQLite database is private to one connection; use a file path"
        )
    engine = sa.create_engine(url, **options)
    busy_timeout_ms = timeouts.statement_ms or SQLITE_BUSY_TIMEOUT_MS
    if checkpoint_ms is not None:
        checkpointer = _CHECKPOINTERS[engine] = WalCheckpointer(
            str(url.database), checkpoint_ms / 1000
        )

        @event.listens_for(engine, "commit")
        def _committed(connection: sa.Connection) -> None:
            if not connection.get_execution_options().get(READ_ONLY_OPTION, False):
                checkpointer.committed()

        # The thread ends with the engine: disposed, or collected (tests make many).
        event.listen(engine, "engine_disposed", lambda _engine: checkpointer.stop())
        weakref.finalize(engine, checkpointer.stop)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (see below).
        dbapi_connection.isolation_level = None
        if timeouts.statement_ms is not None:
            deadline = record.info[_DEADLINE_KEY] = [math.inf]
            # A non-zero answer interrupts the running statement (OperationalError).
            dbapi_connection.set_progress_handler(
                lambda: time.monotonic() > deadline[0], _PROGRESS_STEPS
            )
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA temp_store = MEMORY")
            cursor.execute(f"PRAGMA cache_size = -{cache_mib * 1024}")  # KiB, per connection
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        # On the driver's cursor, with the cursor events (``driver.py``): a statement
        # SQLAlchemy would spend more time preparing than SQLite takes to run.
        on_cursor(connection, "BEGIN" if read_only else "BEGIN IMMEDIATE")

    if timeouts.statement_ms is not None:
        bound_s = timeouts.statement_ms / 1000

        @event.listens_for(engine, "before_cursor_execute")
        def _arm(connection: sa.Connection, *_args: Any) -> None:
            deadline = connection.info.get(_DEADLINE_KEY)
            if deadline is not None:
                deadline[0] = time.monotonic() + bound_s

        def _disarm(connection: sa.Connection, *_args: Any) -> None:
            deadline = connection.info.get(_DEADLINE_KEY)
            if deadline is not None:
                deadline[0] = math.inf

        # Also before COMMIT and ROLLBACK, in case the last statement failed: they
        # must never be interrupted by a stale deadline.
        for name in ("after_cursor_execute", "commit", "rollback"):
            event.listen(engine, name, _disarm)

    return engine


def _quiet(dbapi_connection: Any) -> bool:
    """Whether an idle psycopg connection is open with nothing to read: no round trip.

    The server writes to an idle connection only to end it (a restart, a shutdown,
    ``pg_terminate_backend``, an idle timeout: a ``FATAL`` message, then the close);
    FleetPrompt never ``LISTEN``s, so nothing else arrives between statements.
    """
    if dbapi_connection.closed:
        return False
    try:
        socket = dbapi_connection.fileno()
    except Exception:  # no usable socket: the ping decides
        return False
    poller = select.poll()
    poller.register(socket, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


def _check_on_checkout(engine: sa.Engine) -> None:
    """``pool_pre_ping``'s verdict without its round trip for a healthy connection.

    A connection that is not :func:`_quiet` is pinged as ``pool_pre_ping`` would; a
    ping that meets a disconnect raises ``InvalidatePoolError``, so the pool replaces
    this connection and every older one, and the checkout gets a fresh connection
    (as after a failed pre-ping). A quiet connection is used as it is: a server
    that goes away after the check fails the first statement as it would have
    failed right after a pre-ping (``Unavailable``, then the pool is invalidated).
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if _quiet(dbapi_connection):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise sa_exc.InvalidatePoolError("the server closed the connection") from None
            raise


def create_engine(
    url: str | sa.URL,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    echo: bool = False,
    timeouts: Timeouts = UNBOUNDED_STATEMENTS,
    sqlite_cache_mib: int = SQLITE_CACHE_MIB,
    sqlite_checkpoint_ms: int | None = SQLITE_CHECKPOINT_MS,
) -> sa.Engine:
    """An engine for ``url`` (SQLite file or PostgreSQL) configured for FleetPrompt.

    ``sqlite_cache_mib`` bounds each SQLite connection's page cache;
    ``sqlite_checkpoint_ms`` is how soon after a commit a background thread
    checkpoints the WAL (:class:`WalCheckpointer`; ``None``: only SQLite's own
    checkpoints, in the committing connection). Both are ignored on PostgreSQL.

    Creating an engine opens no connection; the first unit of work does.
    """
    parsed = normalize_url(url)
    options: dict[str, Any] = {
        "echo": echo,
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_timeout": timeouts.pool_ms / 1000,
        # SQLite's JSON type and psycopg's json loader both decode through it.
        "json_deserializer": decode_json,
    }
    if parsed.get_backend_name() == "sqlite":
        if sqlite_cache_mib < 1:
            raise ValueError("sqlite_cache_mib must be at least 1")
        return _sqlite_engine(parsed, options, timeouts, sqlite_cache_mib, sqlite_checkpoint_ms)
    if parsed.get_backend_name() == "postgresql":
        try:
            import psycopg  # noqa: F401, PLC0415 - SQLAlchemy imports it too; we say what is missing
        except ModuleNotFoundError as missing:
            raise MissingExtra("PostgreSQL", "postgres", missing.name) from None
        connect_args: dict[str, Any] = {}
        if timeouts.connect_s is not None:
            connect_args["connect_timeout"] = timeouts.connect_s
        if timeouts.statement_ms is not None:
            bound = timeouts.statement_ms
            connect_args["options"] = f"-c statement_timeout={bound} -c lock_timeout={bound}"
        engine = sa.create_engine(parsed, connect_args=connect_args, **options)
        _check_on_checkout(engine)
        return engine
    raise ValueError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
    )

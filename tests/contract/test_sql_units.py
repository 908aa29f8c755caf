"""The SQL adapter's own machinery: engines, units of work, error translation, retention."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

import databases
from fleetprompt_adapters import sql
from fleetprompt_adapters.memory import ManualClock
from fleetprompt_adapters.sql import tables
from fleetprompt_adapters.sql.store import guarded
from fleetprompt_core import CoreSettings, Outcome
from fleetprompt_core.base.enums import InstallIntentStatus, InstallTokenStatus
from fleetprompt_core.base.errors import Conflict, Internal, Unavailable
from fleetprompt_core.base.limits import INTENT_TTL_MS
from fleetprompt_core.policies import markdown
from fleetprompt_core.services import _idempotency as idempotency
from support import CURSOR_KEY, IMAGE_HOST, Market

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = databases.sqlite_engine(tmp_path)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def _postgres_engine() -> Iterator[sa.Engine]:
    engine = databases.postgres_engine()
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest) -> sa.Engine:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_engine")
    engine: sa.Engine = request.getfixturevalue("_postgres_engine")
    databases.empty(engine)
    return engine


def sql_market(engine: sa.Engine) -> Market:
    clock = ManualClock()
    fp = sql.bootstrap(
        engine,
        clock=clock,
        cursor_key=CURSOR_KEY,
        settings=CoreSettings(image_hosts=frozenset({IMAGE_HOST})),
    )
    return Market(fp, clock, store=None)  # type: ignore[arg-type] - no in-memory store here


# --------------------------------------------------------------------------- engines


def test_sqlite_engine_is_tuned_for_a_server(sqlite_engine: sa.Engine) -> None:
    """WAL, foreign keys on, synchronous NORMAL and a busy timeout on every connection."""
    with sqlite_engine.connect() as connection:

        def pragma(name: str) -> object:
            return connection.exec_driver_sql(f"PRAGMA {name}").scalar_one()

        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("busy_timeout") == sql.engine.SQLITE_BUSY_TIMEOUT_MS
        # KiB when negative: a bounded page cache per connection (docs/benchmarks.md, issue 11).
        assert pragma("cache_size") == -sql.SQLITE_CACHE_MIB * 1024


def test_sqlite_page_cache_is_sized_per_engine(tmp_path: Path) -> None:
    """``sqlite_cache_mib`` bounds every connection's page cache; below 1 MiB is refused."""
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    engine = sql.create_engine(url, sqlite_cache_mib=3)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA cache_size").scalar_one() == -3 * 1024
    finally:
        engine.dispose()
    with pytest.raises(ValueError, match="sqlite_cache_mib"):
        sql.create_engine(url, sqlite_cache_mib=0)


def test_sqlite_wal_is_checkpointed_off_the_committing_thread(tmp_path: Path) -> None:
    """ADR 0045: a commit wakes the engine's checkpointer thread; the committing
    connection keeps SQLite's own automatic checkpoint only as a backstop."""
    path = tmp_path / "wal.db"
    engine = sql.create_engine(f"sqlite:///{path}")
    checkpointer = sql.engine.checkpointer_of(engine)
    assert checkpointer is not None
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 1000
        with sql.engine.reading(engine) as connection, connection.begin():
            connection.exec_driver_sql("SELECT 1").all()
        assert checkpointer.runs == 0  # a reader commits nothing to checkpoint
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (a INTEGER)")
        for n in range(20):
            with engine.begin() as connection:
                connection.exec_driver_sql("INSERT INTO t VALUES (?)", (n,))
        # An open connection keeps the WAL file (the last one to close would checkpoint).
        with engine.connect() as held:
            held.exec_driver_sql("SELECT 1").all()
            checkpointer.stop()  # a last checkpoint, then the thread ends
            assert checkpointer.runs >= 1
            assert not checkpointer.running
            # The database file alone, without its WAL, holds every committed row.
            alone = tmp_path / "alone.db"
            alone.write_bytes(path.read_bytes())
            with contextlib.closing(sqlite3.connect(alone)) as raw:
                assert raw.execute("SELECT count(*) FROM t").fetchone() == (20,)
        # Used again after it stopped: the next commit starts a new thread.
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO t VALUES (20)")
        assert checkpointer.running
    finally:
        engine.dispose()  # stops the thread
    assert not checkpointer.running


def test_sqlite_checkpointer_can_be_left_to_sqlite(tmp_path: Path) -> None:
    engine = sql.create_engine(f"sqlite:///{tmp_path / 'own.db'}", sqlite_checkpoint_ms=None)
    try:
        assert sql.engine.checkpointer_of(engine) is None
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (a INTEGER)")
    finally:
        engine.dispose()


def test_sqlite_enforces_foreign_keys(sqlite_engine: sa.Engine) -> None:
    """A release of a listing that does not exist is refused by the database itself."""
    row = {
        "release_id": "rel_x",
        "listing_id": "lst_missing",
        "publisher_user_id": "usr_missing",
        "version": "1.0.0",
        "status": "published",
        "artifacts": [],
        "notes_markdown": "",
        "notes_html": "",
        "notes_renderer": "fp-md-1",
        "published_at_ms": 1,
    }
    with pytest.raises(sa_exc.IntegrityError), sqlite_engine.begin() as connection:
        connection.execute(sa.insert(tables.releases).values(row))


def test_check_constraints_refuse_values_outside_the_enums(engine: sa.Engine) -> None:
    """The database refuses a status the contract does not know, whatever the Python says."""
    with engine.begin() as connection:
        connection.execute(
            sa.insert(tables.users).values(
                user_id="usr_a",
                external_id="a",
                roles=[],
                created_at_ms=1,
                updated_at_ms=1,
            )
        )
    raw = sa.text(
        "INSERT INTO listings (listing_id, publisher_user_id, asset_kind, status, name, name_key,"
        " summary, description_markdown, description_html, description_renderer, tags,"
        " categories, images, moderation_flagged, created_at_ms, updated_at_ms) VALUES"
        " ('lst_a', 'usr_a', 'whs_agent', 'deleted', 'n', 'n', 's', '', '', 'r', '[]', '[]',"
        " '[]', false, 1, 1)"
    )
    with pytest.raises(sa_exc.IntegrityError), engine.begin() as connection:
        connection.execute(raw)


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite+pysqlite"),
    ],
)
def test_database_urls_name_the_supported_drivers(url: str, driver: str) -> None:
    """Plain PostgreSQL URLs mean psycopg 3; plain SQLite URLs the standard library driver."""
    assert sql.normalize_url(url).drivername == driver


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db"])
def test_unsupported_databases_are_refused_at_engine_creation(url: str) -> None:
    """In-memory SQLite (private per connection) and other databases are refused clearly."""
    with pytest.raises(ValueError, match=r"memory|unsupported"):
        sql.create_engine(url)


# --------------------------------------------------------------------------- units of work


def test_sqlite_readers_neither_wait_for_nor_block_a_writer(sqlite_engine: sa.Engine) -> None:
    """While a writing unit of work holds the write lock, a read-only one runs to the end."""
    store = sql.SqlStore(sqlite_engine)
    writer_open, reader_done = threading.Event(), threading.Event()
    results: list[object] = []

    def read() -> None:
        writer_open.wait(5)
        with store.read_unit_of_work() as uow:
            results.append(uow.users.get("usr_none"))
        reader_done.set()

    thread = threading.Thread(target=read)
    thread.start()
    with store.unit_of_work() as writer:
        writer.audit.query(sql.store.AuditQuery(), None, 1)  # holds BEGIN IMMEDIATE
        writer_open.set()
        # The busy timeout is 10 s: a reader that queued behind the writer would not be done.
        assert reader_done.wait(5), "the reader waited for the writer"
    thread.join(5)
    assert results == [None]


def test_sqlite_writers_queue_instead_of_failing(sqlite_engine: sa.Engine) -> None:
    """A second writer waits for the first to finish (BEGIN IMMEDIATE + busy timeout)."""
    store = sql.SqlStore(sqlite_engine)
    first_open = threading.Event()
    order: list[str] = []

    def second() -> None:
        first_open.wait(5)
        with store.unit_of_work() as uow:
            order.append("second")
            uow.commit()

    thread = threading.Thread(target=second)
    thread.start()
    with store.unit_of_work() as uow:
        first_open.set()
        thread.join(0.3)  # the second writer is blocked, not failed
        order.append("first")
        uow.commit()
    thread.join(10)
    assert order == ["first", "second"]


def test_sqlite_writers_of_two_stores_queue_on_the_busy_timeout(sqlite_engine: sa.Engine) -> None:
    """The in-process writer lock is per store (per process); another store's writer (as
    another process's would) still waits on SQLite's own lock instead of failing."""
    first, other = sql.SqlStore(sqlite_engine), sql.SqlStore(sqlite_engine)
    assert first.writer_lock is not other.writer_lock
    first_open = threading.Event()
    order: list[str] = []

    def second() -> None:
        first_open.wait(5)
        with other.unit_of_work() as uow:
            order.append("second")
            uow.commit()

    thread = threading.Thread(target=second)
    thread.start()
    with first.unit_of_work() as uow:
        uow.audit.query(sql.store.AuditQuery(), None, 1)  # holds BEGIN IMMEDIATE
        first_open.set()
        thread.join(0.3)
        order.append("first")
        uow.commit()
    thread.join(10)
    assert order == ["first", "second"]


def test_sqlite_writer_lock_is_released_by_failures_and_bounded(
    sqlite_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit of work that fails lets the next writer in; a writer that cannot get the lock
    within the bound is ``Unavailable`` (an outage), and readers never take it."""
    store = sql.SqlStore(sqlite_engine)
    assert store.writer_lock is not None
    with pytest.raises(RuntimeError), store.unit_of_work():
        raise RuntimeError("the use case failed")
    assert not store.writer_lock.locked()
    monkeypatch.setattr(sql.store, "SQLITE_BUSY_TIMEOUT_MS", 50)
    with store.writer_lock:
        with pytest.raises(Unavailable), store.unit_of_work():
            pytest.fail("entered without the writer lock")  # pragma: no cover
        with store.read_unit_of_work() as uow:
            assert uow.users.get("usr_none") is None
    with store.unit_of_work() as uow:
        uow.commit()
    assert not store.writer_lock.locked()


def test_postgres_writers_take_no_process_lock(engine: sa.Engine) -> None:
    """Only SQLite serialises writers; PostgreSQL's run side by side (row locks)."""
    store = sql.SqlStore(engine)
    assert (store.writer_lock is None) == (engine.dialect.name == "postgresql")


def test_a_new_draft_logs_no_search_change_until_it_is_published(engine: sa.Engine) -> None:
    """Creating a draft writes nothing to the search log (engines index published listings
    only); publishing it logs it, and the follower then finds it."""
    market = sql_market(engine)
    publisher = market.publisher()
    view = market.draft(publisher)
    log = tables.search_log
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(log)).scalar_one() == 0
    market.release(publisher, view.listing.listing_id)
    market.fp.publishing.change_status(
        publisher, view.listing.listing_id, {"status": "published"}, idempotency_key="pub-1"
    )
    with engine.connect() as connection:
        logged = connection.execute(sa.select(log.c.listing_id)).scalars().all()
    assert view.listing.listing_id in logged


def test_r_idemp_02_a_duplicate_while_the_first_runs_never_runs(engine: sa.Engine) -> None:
    """The claim lives in the operation's transaction (ADR 0037). While the first request's
    transaction is open, a duplicate through the composed application is CONFLICT (in
    progress) at once: on PostgreSQL it finds the key's advisory lock held, on SQLite the
    key held by this process before it would queue for the write lock. The operation
    runs once, one record is stored, and the request replays afterwards."""
    market = sql_market(engine)
    rt = market.fp.runtime
    running, proceed = threading.Event(), threading.Event()
    calls: list[str] = []

    def run(name: str) -> Outcome[int] | Conflict:
        def operation(_uow: object) -> int:
            calls.append(name)
            if name == "first":
                running.set()
                assert proceed.wait(30)
            return 7

        try:
            return idempotency.run(
                rt,
                scope_user_id="usr_x",
                scope=idempotency.Operation.PROFILE_UPDATE,
                key="k",
                required=True,
                target={},
                body={"a": 1},
                codec=idempotency.ResultCodec(int),
                operation=operation,
            )
        except Conflict as error:
            return error

    results: dict[str, Outcome[int] | Conflict] = {}
    first = threading.Thread(target=lambda: results.setdefault("first", run("first")))
    first.start()
    assert running.wait(10)
    duplicate = threading.Thread(target=lambda: results.setdefault("second", run("second")))
    duplicate.start()
    try:
        duplicate.join(30)
        assert not duplicate.is_alive(), "the duplicate waited for the first request"
        assert first.is_alive()
    finally:
        proceed.set()
        first.join(30)
    refused = results["second"]
    assert isinstance(refused, Conflict)
    assert refused.hint == "in progress"
    assert results["first"] == Outcome(7)
    assert calls == ["first"]
    assert run("again") == Outcome(7, replayed=True)
    records = tables.idempotency_records
    with engine.connect() as connection:
        stored = connection.execute(sa.select(records.c.key, records.c.response_json)).all()
    assert [tuple(row) for row in stored] == [("k", "7")]


def test_a_read_only_unit_of_work_refuses_to_commit(engine: sa.Engine) -> None:
    """Committing a reader is a programming error, reported as such."""
    with (
        sql.SqlStore(engine).read_unit_of_work() as uow,
        pytest.raises(RuntimeError, match="read-only"),
    ):
        uow.commit()


def test_a_unit_of_work_is_used_inside_its_block_only(engine: sa.Engine) -> None:
    """Repositories refuse to run outside the ``with`` block instead of autocommitting."""
    uow = sql.SqlStore(engine).unit_of_work()
    with pytest.raises(RuntimeError):
        uow.users.get("usr_a")
    with uow:
        assert uow.users.get("usr_a") is None
    with pytest.raises(RuntimeError):
        uow.users.get("usr_a")


# --------------------------------------------------------------------------- errors


class _DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("SELECT secret FROM users WHERE token = 'fp_it_raw'")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("40P01", Conflict),
        ("40001", Conflict),
        ("53300", Unavailable),  # too many connections
        ("57014", Unavailable),  # statement timeout
        ("55P03", Unavailable),  # lock timeout
        ("08006", Unavailable),  # connection failure
        ("57P01", Unavailable),  # administrator shutdown
        ("42P01", Internal),  # undefined table: a bug, not an outage
        ("23505", Internal),
    ],
)
def test_database_errors_become_contract_errors_without_sql(
    sqlstate: str, expected: type[Exception]
) -> None:
    """Lost races are CONFLICT, outages (connections, resources, timeouts, shutdown)
    UNAVAILABLE, anything else INTERNAL; none carries SQL, parameters or a class name."""
    driver_error = _DriverError(sqlstate)

    def fail() -> None:
        raise sa_exc.OperationalError("SELECT secret FROM users", {"t": "fp_it_raw"}, driver_error)

    with pytest.raises(expected) as caught:
        guarded(fail)
    error = caught.value
    assert type(error) is expected
    assert "SELECT" not in str(error)
    assert "fp_it_raw" not in str(error)
    assert "Error" not in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None


def test_non_driver_sqlalchemy_errors_become_internal() -> None:
    """Errors raised by SQLAlchemy itself (no driver involved) are INTERNAL too."""

    def fail() -> None:
        raise sa_exc.InvalidRequestError("bad statement: SELECT 1")

    with pytest.raises(Internal, match=r"^A storage operation failed\.$") as caught:
        guarded(fail)
    assert caught.value.__context__ is None


def test_pool_timeouts_and_disconnections_become_unavailable() -> None:
    """No pooled connection within the pool timeout, or a connection the pool found
    dead, is an outage (503), not a bug (500)."""
    for error in (sa_exc.TimeoutError("QueuePool limit reached"), sa_exc.DisconnectionError()):

        def fail(error: Exception = error) -> None:
            raise error

        with pytest.raises(Unavailable, match=r"^The database is unavailable\.$"):
            guarded(fail)


# --------------------------------------------------------------------------- retention


def _retention_scenario(market: Market) -> tuple[object, ...]:
    """Five intents (three with a token) left to expire, then retention in batches of 2."""
    publisher, buyer = market.publisher(), market.user("buyer")
    view, _release = market.published(publisher)
    intents = [market.intent(buyer, view.listing.listing_id) for _ in range(5)]
    for intent in intents[:3]:
        market.token(buyer, intent.install_intent_id)
    market.clock.advance(INTENT_TTL_MS + 1)
    first = market.fp.retention.run_batch(2)
    rest = market.fp.retention.run(batch_size=2)
    after = market.fp.retention.run(batch_size=2)
    statuses = tuple(
        market.fp.installs.get_intent(buyer, intent.install_intent_id).status for intent in intents
    )
    return first, rest, after, statuses


def test_retention_runs_on_sql_in_bounded_batches(engine: sa.Engine) -> None:
    """Retention on SQL does what it does in memory, at most ``batch_size`` rows per batch."""
    sql_result = _retention_scenario(sql_market(engine))
    memory_result = _retention_scenario(Market.create())
    assert sql_result == memory_result
    first, rest, after, statuses = sql_result
    assert first.intents_expired == 2  # type: ignore[attr-defined]
    assert rest.intents_expired == 3  # type: ignore[attr-defined]
    assert after == type(after)()  # nothing left
    assert statuses == (InstallIntentStatus.EXPIRED,) * 5
    with engine.connect() as connection:
        stored = connection.execute(sa.select(tables.install_intents.c.status)).scalars().all()
        tokens = connection.execute(sa.select(tables.install_tokens.c.status)).scalars().all()
    assert stored == [InstallIntentStatus.EXPIRED] * 5  # persisted, not only observed
    assert len(tokens) == 3
    assert InstallTokenStatus.ISSUED not in tokens


def test_u_xss_03_html_stored_by_an_older_renderer_is_rendered_again_on_load(
    engine: sa.Engine,
) -> None:
    """A description stored under the old link policy (href with credentials) reads back clean."""
    market = sql_market(engine)
    pub = market.publisher()
    view, _ = market.published(
        pub, description={"format": "markdown", "markdown": "[x](https://user:pw@evil.com)"}
    )
    listing_id = view.listing.listing_id
    with engine.begin() as connection:
        connection.execute(
            sa.update(tables.listings)
            .where(tables.listings.c.listing_id == listing_id)
            .values(
                description_html='<p><a href="https://user:pw@evil.com">x</a></p>\n',
                description_renderer="fp-md-1",
            )
        )
    detail = market.fp.catalog.listing(listing_id)
    assert "href" not in detail.description.html
    assert detail.description.renderer == markdown.RENDERER_VERSION


def test_a_read_only_unit_of_work_refuses_to_write(engine: sa.Engine) -> None:
    """A reader's write is a programming error, refused before it reaches the database (on
    PostgreSQL a reader autocommits, ADR 0042: nothing would roll the write back)."""
    market = sql_market(engine)
    market.publisher("owner")
    store = sql.SqlStore(engine)
    with store.read_unit_of_work() as uow:
        (user,) = uow.users.list_page(None, 1)
        with pytest.raises(RuntimeError, match="never writes"):
            uow.users.update(attrs.evolve(user, display_name="Changed"))
        with pytest.raises(RuntimeError, match="never writes"):
            uow.search_changed(["lst_x"])
    with store.read_unit_of_work() as uow:
        assert uow.users.get(user.user_id) == user


@pytest.fixture
def one_connection_engine(_postgres_engine: sa.Engine) -> Iterator[sa.Engine]:
    """An engine over the run's PostgreSQL database whose pool holds one connection."""
    engine = sql.create_engine(_postgres_engine.url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def test_postgres_readers_hold_no_transaction(one_connection_engine: sa.Engine) -> None:
    """ADR 0042: a read-only unit of work on PostgreSQL sends no BEGIN (its statements run
    on their own), a writing one does; the connection leaves both with no transaction."""
    store = sql.SqlStore(one_connection_engine)
    with store.read_unit_of_work() as uow:
        assert uow.users.get("usr_none") is None
        assert uow.connection.connection.dbapi_connection.info.transaction_status.name == "IDLE"
    with store.unit_of_work() as uow:
        assert uow.users.get("usr_none") is None
        assert uow.connection.connection.dbapi_connection.info.transaction_status.name == "INTRANS"
    with store.read_unit_of_work() as uow:
        assert uow.users.get("usr_none") is None
        assert uow.connection.connection.dbapi_connection.info.transaction_status.name == "IDLE"


def test_postgres_checkout_of_a_healthy_connection_sends_nothing(
    one_connection_engine: sa.Engine, tmp_path: Path
) -> None:
    """ADR 0042: checking a quiet pooled connection out and in again costs no round trip
    (``pool_pre_ping`` sent one per checkout)."""
    from psycopg import pq  # noqa: PLC0415 - PostgreSQL only

    with one_connection_engine.connect() as connection:
        dbapi_connection: Any = connection.connection.dbapi_connection
    trace = tmp_path / "libpq.trace"
    with trace.open("wb") as sink:
        dbapi_connection.pgconn.trace(sink.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            with one_connection_engine.connect() as connection:
                assert connection.connection.dbapi_connection is dbapi_connection
        finally:
            dbapi_connection.pgconn.untrace()
    assert trace.read_text() == ""


def test_a_pooled_connection_the_server_ended_is_replaced_at_checkout(
    one_connection_engine: sa.Engine,
) -> None:
    """A pooled connection whose backend the server ended while it sat idle (a restart,
    ``pg_terminate_backend``) is noticed at checkout and replaced: the next unit of work
    succeeds on a fresh connection, as with ``pool_pre_ping`` (ADR 0042)."""
    store = sql.SqlStore(one_connection_engine)
    before = _backend_pid(one_connection_engine)
    admin = sa.create_engine(one_connection_engine.url, poolclass=sa.NullPool)
    try:
        with admin.connect() as connection:
            ended = connection.execute(
                sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": before}
            ).scalar_one()
    finally:
        admin.dispose()
    assert ended
    for new_unit in (store.read_unit_of_work, store.unit_of_work):
        with new_unit() as uow:
            assert uow.users.get("usr_none") is None
    assert _backend_pid(one_connection_engine) != before

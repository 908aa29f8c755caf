"""Races through the application services on SQLite (WAL file) and PostgreSQL (§6, §7).

Every race runs twice: in 8 threads sharing one application, and in 4 ``spawn``
worker processes that each build their own engine and application from the
database URL (as several server instances on one database would). Racers
wait at a barrier, then call the same use case at once; the tests then look
at the database from the outside.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from contract import sql_apps
from contract.harness import run_threads
from contract.sql_apps import Database, Result, contents, count
from fleetprompt_adapters.sql import tables as t
from fleetprompt_core import FleetPrompt
from support import CURSOR_KEY, listing_payload, release_payload

THREADS = 8
PROCESSES = 4
#: Longest a round of racers may take before the test fails instead of hanging.
ROUND_TIMEOUT_S = 60.0

IN_PROGRESS = (
    "CONFLICT",
    "A request with this idempotency key is still in progress.",
    "in progress",
)


@pytest.fixture(scope="module", params=sql_apps.KINDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    with sql_apps.open_database(request.param, tmp_path_factory) as database:
        yield database


@pytest.fixture
def db(database: Database) -> Database:
    """The database of the test, emptied."""
    sql_apps.empty(database.engine)
    return database


@attrs.frozen
class ProcessPool:
    """Worker processes (spawned once per module) and the barrier they start a round at."""

    pool: Any
    start_line: Any


@pytest.fixture(scope="module")
def process_pool() -> Iterator[ProcessPool]:
    context = multiprocessing.get_context("spawn")
    start_line = context.Barrier(PROCESSES)
    pool = context.Pool(PROCESSES, initializer=sql_apps.init_worker, initargs=(start_line,))
    try:
        yield ProcessPool(pool, start_line)
    finally:
        pool.terminate()
        pool.join()


@attrs.frozen
class Racers:
    """Runs one use case concurrently, in threads or in processes."""

    how: str
    db: Database
    fp: FleetPrompt
    pool: ProcessPool | None

    @property
    def size(self) -> int:
        return PROCESSES if self.pool else THREADS

    def run(self, action: str, args: list[tuple[Any, ...]]) -> list[Result]:
        assert len(args) == self.size
        if self.pool is None:
            start_line = threading.Barrier(THREADS, timeout=sql_apps.START_TIMEOUT_S)

            def work(i: int) -> Result:
                start_line.wait()
                return sql_apps.run_action(self.fp, action, args[i])

            return run_threads(THREADS, work, timeout_s=ROUND_TIMEOUT_S)
        self.pool.start_line.reset()
        pending = [
            self.pool.pool.apply_async(
                sql_apps.run_in_process, (self.db.url, CURSOR_KEY, action, one)
            )
            for one in args
        ]
        return [result.get(timeout=ROUND_TIMEOUT_S) for result in pending]


@pytest.fixture(params=["threads", "processes"])
def racers(request: pytest.FixtureRequest, db: Database) -> Racers:
    pool = request.getfixturevalue("process_pool") if request.param == "processes" else None
    return Racers(request.param, db, db.app(), pool)


def _audit_count(db: Database, event_type: str, *where: sa.ColumnElement[bool]) -> int:
    return count(db.engine, t.audit_events, t.audit_events.c.type == event_type, *where)


# --------------------------------------------------------------------------- §6 same key


def test_r_idemp_02_sql_concurrent_duplicate_keys_create_one_listing(racers: Racers) -> None:
    """Concurrent creates with one Idempotency-Key: one listing, one audit event, and every
    caller gets that listing (original or replay) or CONFLICT in progress."""
    fp, engine = racers.fp, racers.db.engine
    owner = sql_apps.publisher(fp, "pub-race")
    payload = listing_payload(name="Raced Listing")
    key = "race-create"

    results = racers.run("create_listing", [("pub-race", payload, key)] * racers.size)

    originals = [r for r in results if r.ok and not r.replayed]
    assert len(originals) == 1, results
    original = originals[0]
    for result in results:
        if result.ok:
            assert result.value == original.value, "a replay answered another listing"
        else:
            assert (result.code, result.message, result.hint) == IN_PROGRESS
    listing_id = original.field("listing", "listing_id")
    with engine.connect() as connection:
        stored = connection.execute(sa.select(t.listings.c.listing_id)).scalars().all()
    assert stored == [listing_id]
    assert _audit_count(racers.db, "listing.created") == 1
    assert (
        _audit_count(racers.db, "listing.created", t.audit_events.c.listing_id == listing_id) == 1
    )
    records = t.idempotency_records.c
    assert count(engine, t.idempotency_records, records.key == key) == 1
    assert count(engine, t.idempotency_records, records.response_json.is_(None)) == 0
    # The key now replays the stored listing, and creates nothing.
    replay = fp.publishing.create_listing(owner, payload, idempotency_key=key)
    assert replay.replayed
    assert sql_apps.canonical(replay.value) == original.value
    assert count(engine, t.listings) == 1


# --------------------------------------------------------------------------- one version


def test_i_rel_01_sql_concurrent_publishes_of_one_version_store_one_release(racers: Racers) -> None:
    """Concurrent publishes of version 2.0.0 with different keys: one release, one audit
    event, every loser gets CONFLICT and keeps no idempotency record."""
    fp, engine = racers.fp, racers.db.engine
    owner = sql_apps.publisher(fp, "pub-race")
    listing_id = sql_apps.draft(fp, owner)
    before = contents(engine)
    payload = release_payload("2.0.0")

    results = racers.run(
        "publish_release",
        [("pub-race", listing_id, payload, f"race-publish-{i}") for i in range(racers.size)],
    )

    winners = [r for r in results if r.ok]
    assert len(winners) == 1, results
    assert not winners[0].replayed
    losers = [(r.code, r.message) for r in results if not r.ok]
    assert losers == [("CONFLICT", "Version 2.0.0 already exists for this listing.")] * (
        racers.size - 1
    )
    release_id = winners[0].field("release_id")
    c = t.releases.c
    with engine.connect() as connection:
        stored = connection.execute(sa.select(c.release_id, c.version)).all()
    assert [tuple(row) for row in stored] == [(release_id, "2.0.0")]
    assert _audit_count(racers.db, "release.published") == 1
    assert (
        _audit_count(racers.db, "release.published", t.audit_events.c.release_id == release_id) == 1
    )
    # Only the winner's key is remembered: failed requests store nothing (§6).
    after = contents(engine)
    new_records = set(after["idempotency_records"]) - set(before["idempotency_records"])
    assert [record[2] for record in new_records] == [f"race-publish-{results.index(winners[0])}"]


# --------------------------------------------------------------------------- §7 redemption


def test_i_int_06_sql_concurrent_redemptions_of_one_token_have_one_winner(racers: Racers) -> None:
    """Concurrent signed redemptions of one install token: exactly one succeeds, every loser
    gets NOT_FOUND, token and intent are redeemed once, one redemption audit event."""
    fp, engine = racers.fp, racers.db.engine
    issued = sql_apps.issued_token(fp)

    results = racers.run("redeem", [(sql_apps.REDEEM_KEY, issued.token)] * racers.size)

    winners = [r for r in results if r.ok]
    assert len(winners) == 1, results
    assert winners[0].field("install_intent", "install_intent_id") == issued.intent_id
    assert winners[0].field("install_intent", "status") == "redeemed"
    losers = [(r.code, r.message, r.hint) for r in results if not r.ok]
    assert losers == [("NOT_FOUND", "Install token not found.", None)] * (racers.size - 1)
    with engine.connect() as connection:
        token = connection.execute(
            sa.select(t.install_tokens.c.status, t.install_tokens.c.redeemed_by_system)
        ).one()
        intent = connection.execute(sa.select(t.install_intents.c.status)).scalar_one()
    assert tuple(token) == ("redeemed", "whs")
    assert intent == "redeemed"
    redeemed_events = t.audit_events.c.install_intent_id == issued.intent_id
    assert _audit_count(racers.db, "install_token.redeemed") == 1
    assert _audit_count(racers.db, "install_token.redeemed", redeemed_events) == 1
    # The token stays spent.
    again = sql_apps.redeem(fp, sql_apps.REDEEM_KEY, issued.token)
    assert (again.code, again.message) == ("NOT_FOUND", "Install token not found.")

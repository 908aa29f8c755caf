"""Faults on a PostgreSQL server of the test's own (issue 14 item 16; contract §14
X-OPS-01..02).

The module starts a throw-away PostgreSQL server (``pg_server``) and breaks it
for real:

- X-OPS-01/02: the database crashes (``pg_ctl stop -m immediate``) in the
  middle of traffic to a running FleetPrompt server. Every request meanwhile
  answers at once with ``503 UNAVAILABLE`` and the envelope — no 500, no hang
  past the bound, no driver text — ``/readyz`` says the database is down and
  ``/healthz`` stays up; when the database is started again, the same server
  process answers normally by itself, and a write refused during the outage
  succeeds when retried under its ``Idempotency-Key``.
- A FleetPrompt server process is killed with SIGKILL in the middle of a burst
  of writes (listings, releases, install intents): no partial row is left (each
  entity has exactly its one audit event and vice versa), and after a restart,
  retrying every write under its key answers what the first attempt did (a
  replay of the same resource when it had committed, a fresh one when not) and
  leaves exactly one resource per key.

Bounded: about 20 s together on a shared machine.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from contract.http_checks import assert_error, assert_no_internals
from contract.http_harness import settings_for
from contract.http_live import serve
from contract.pg_server import ThrowawayPostgres, throwaway_postgres
from fleetprompt_adapters import sql
from fleetprompt_adapters.sql import tables as t
from fleetprompt_core import Call, CoreSettings, FleetPrompt, Role
from fleetprompt_http.app import create_app
from support import IMAGE_HOST, listing_payload, release_payload

#: No request may take longer than this while the database is away (the request
#: deadline is 3 s; connection refusals answer at once).
BOUND_S = 5.0
LEASE_MS = 2_000
LEAKS = ("OperationalError", "psycopg", "Traceback", "connection refused", "SELECT", "server")


@pytest.fixture(scope="module")
def postgres() -> Iterator[ThrowawayPostgres]:
    with throwaway_postgres() as server:
        yield server


_databases = itertools.count()


@contextlib.contextmanager
def _database(server: ThrowawayPostgres) -> Iterator[str]:
    """A migrated database of its own on the throw-away server."""
    name = f"fp_fault_{next(_databases)}"
    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    url = server.url.rsplit("/", 1)[0] + f"/{name}"
    engine = sql.create_engine(url)
    try:
        sql.upgrade(engine)
    finally:
        engine.dispose()
    yield url


def _seeder(url: str) -> tuple[sa.Engine, FleetPrompt]:
    engine = sql.create_engine(url, pool_size=2)
    return engine, sql.bootstrap(engine, settings=CoreSettings(image_hosts=frozenset({IMAGE_HOST})))


def _user(fp: FleetPrompt, name: str, *roles: Role) -> dict[str, str]:
    external_id = f"fault-{name}-{secrets.token_hex(3)}"
    fp.operator.ensure_user(external_id, display_name=name.title(), roles=roles)
    token = fp.credentials.issue_api_token(external_id).api_token
    return {"Authorization": f"Bearer {token}"}


def _assert_unavailable(response: httpx.Response) -> None:
    assert_error(response, 503, "UNAVAILABLE")
    assert_no_internals(response.text)
    for word in LEAKS:
        assert word not in response.text, (word, response.text)
    assert int(response.headers["retry-after"]) >= 1


# --------------------------------------------------------------------------- X-OPS-01/02


@attrs.define
class Traffic:
    """Two clients sending reads and writes in a loop; every answer is kept."""

    base_url: str
    headers: dict[str, str]
    results: list[tuple[float, str, httpx.Response | Exception, float]] = attrs.field(factory=list)
    stop: threading.Event = attrs.field(factory=threading.Event)

    def run(self, kind: str) -> None:
        with httpx.Client(base_url=self.base_url, timeout=2 * BOUND_S) as client:
            for i in itertools.count():
                if self.stop.is_set():
                    return
                started = time.monotonic()
                try:
                    if kind == "read":
                        response = client.get("/v1/public/listings/search", params={"q": "agent"})
                    else:
                        response = client.post(
                            "/v1/publisher/listings",
                            json=listing_payload(name=f"Traffic {i}"),
                            headers={**self.headers, "Idempotency-Key": f"traffic-{kind}-{i}"},
                        )
                    outcome: httpx.Response | Exception = response
                except httpx.HTTPError as error:
                    outcome = error
                self.results.append((started, kind, outcome, time.monotonic() - started))
                time.sleep(0.02)


def test_x_ops_02_and_01_database_crash_mid_traffic_gives_503s_then_recovers_by_itself(
    postgres: ThrowawayPostgres,
) -> None:
    """X-OPS-01: a database that goes away mid-traffic gives clear, quick 503s with the
    envelope (never a 500, a hang or a trace); X-OPS-02: when it returns, the same
    server process answers normally without a restart."""
    with _database(postgres) as url:
        engine, seeder = _seeder(url)
        try:
            publisher = _user(seeder, "publisher", Role.PUBLISHER)
        finally:
            engine.dispose()
        settings = settings_for(
            url,
            rate_limits=None,
            threads=2,
            db_connect_timeout_ms=2_000,
            db_pool_timeout_ms=1_000,
            db_statement_timeout_ms=2_000,
            request_timeout_ms=3_000,
        )
        app = create_app(settings)
        # The test client runs the app's lifespan (its shutdown closes the pool); uvicorn
        # serves it over real sockets.
        with (
            TestClient(app),
            serve(app) as base,
            httpx.Client(base_url=base, timeout=2 * BOUND_S) as probe,
        ):
            traffic = Traffic(base, publisher)
            workers = [
                threading.Thread(target=traffic.run, args=(kind,), daemon=True)
                for kind in ("read", "write")
            ]
            for worker in workers:
                worker.start()
            try:
                time.sleep(0.5)
                postgres.stop("immediate")
                down_at = time.monotonic()  # every request from here on meets no database
                time.sleep(1.5)
                ready = probe.get("/readyz")
                _assert_unavailable(ready)
                assert "database" in ready.json()["error"]["message"]
                assert probe.get("/healthz").status_code == 200
                refused = probe.post(
                    "/v1/publisher/listings",
                    json=listing_payload(name="Refused During Outage"),
                    headers={**publisher, "Idempotency-Key": "outage-key"},
                )
                _assert_unavailable(refused)
                up_at = time.monotonic()
                postgres.start()
                recovered_at = None
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    if probe.get("/readyz").status_code == 200:
                        recovered_at = time.monotonic()
                        break
                    time.sleep(0.1)
                assert recovered_at is not None, "the server did not recover by itself"
                time.sleep(0.5)
            finally:
                traffic.stop.set()
                for worker in workers:
                    worker.join(2 * BOUND_S)

            # The write refused during the outage runs now, under the same key.
            retried = probe.post(
                "/v1/publisher/listings",
                json=listing_payload(name="Refused During Outage"),
                headers={**publisher, "Idempotency-Key": "outage-key"},
            )
            assert retried.status_code == 201, retried.text
            assert retried.headers.get("idempotent-replayed") is None
            again = probe.post(
                "/v1/publisher/listings",
                json=listing_payload(name="Refused During Outage"),
                headers={**publisher, "Idempotency-Key": "outage-key"},
            )
            assert again.headers.get("idempotent-replayed") == "true"
            assert again.json() == retried.json()

        outage = [r for r in traffic.results if down_at <= r[0] and r[0] + r[3] < up_at]
        after = [r for r in traffic.results if r[0] >= recovered_at]
        assert outage, "no request was sent while the database was down"
        assert after, "no request was sent after the database returned"
        for _started, kind, outcome, elapsed in traffic.results:
            assert isinstance(outcome, httpx.Response), (kind, outcome)
            assert elapsed < BOUND_S, (kind, elapsed)
            assert outcome.status_code in (200, 201, 503), (kind, outcome.text)
            if outcome.status_code == 503:
                _assert_unavailable(outcome)
        # Writes need the database; a search may still be answered from the public
        # response cache (ADR 0028), which is correct, or be a 503.
        assert [r[2].status_code for r in outage if r[1] == "write"] == [503] * sum(
            r[1] == "write" for r in outage
        )
        assert any(r[1] == "write" for r in outage)
        assert all(
            r[2].status_code in (200, 201) for r in after if isinstance(r[2], httpx.Response)
        )


# --------------------------------------------------------------------------- SIGKILL


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.define
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4_000:]


def _start_server(url: str, directory: Path) -> ServerProcess:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLEETPROMPT")}
    env.update(
        {
            "FLEETPROMPT_DATABASE_URL": url,
            "FLEETPROMPT_RATE_LIMITS": "off",
            "FLEETPROMPT_IMAGE_HOSTS": IMAGE_HOST,
            "FLEETPROMPT_LOG_LEVEL": "WARNING",
            "FLEETPROMPT_THREADS": "4",
            # A request killed mid-flight frees its key after 2 s (retries wait for it).
            "FLEETPROMPT_IDEMPOTENCY_LEASE_MS": str(LEASE_MS),
        }
    )
    log = directory / f"server-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "fleetprompt_http.server:app_from_env",
                "--factory", "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                "--log-level", "warning",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 20
    with httpx.Client(timeout=1.0) as client:
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited at start:\n{server.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(server.base_url + "/healthz").status_code == 200:
                    return server
            if time.monotonic() > deadline:
                _kill(server)
                pytest.fail(f"the server did not start:\n{server.log_tail()}")
            time.sleep(0.05)


def _kill(server: ServerProcess) -> None:
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(10)


@attrs.frozen
class Write:
    """One idempotent write of the burst: where, what, under which key."""

    kind: str
    path: str
    body: dict[str, Any]
    key: str
    headers: dict[str, str]


def _writes(
    publisher: dict[str, str], buyer: dict[str, str], draft_id: str, listing: tuple[str, str]
) -> list[Write]:
    run = secrets.token_hex(3)
    writes: list[Write] = []
    for i in range(25):
        writes.append(
            Write(
                "listing",
                "/v1/publisher/listings",
                listing_payload(name=f"Burst {i}"),
                f"kill-{run}-listing-{i}",
                publisher,
            )
        )
        writes.append(
            Write(
                "release",
                f"/v1/publisher/listings/{draft_id}/releases",
                release_payload(f"2.0.{i}"),
                f"kill-{run}-release-{i}",
                publisher,
            )
        )
        writes.append(
            Write(
                "intent",
                "/v1/install/intents",
                {"listingId": listing[0], "releaseId": listing[1], "targetSystem": "whs"},
                f"kill-{run}-intent-{i}",
                buyer,
            )
        )
    return writes


def _send(client: httpx.Client, write: Write) -> httpx.Response:
    return client.post(
        write.path, json=write.body, headers={**write.headers, "Idempotency-Key": write.key}
    )


def _retry(client: httpx.Client, write: Write) -> httpx.Response:
    """``write`` again, as a client would: a "still in progress" 409 (the key of a request
    the killed process never finished) is retried after its ``Retry-After``."""
    deadline = time.monotonic() + LEASE_MS / 1000 + BOUND_S
    while True:
        response = _send(client, write)
        in_progress = response.status_code == 409 and "in progress" in response.text
        if not in_progress or time.monotonic() > deadline:
            return response
        time.sleep(int(response.headers["retry-after"]))


_CREATED = {
    "listing": ("listing", "listingId"),
    "release": ("release", "releaseId"),
    "intent": ("installIntent", "installIntentId"),
}


def _created_id(write: Write, response: httpx.Response) -> str:
    envelope, field = _CREATED[write.kind]
    value: str = response.json()[envelope][field]
    return value


def _consistency(engine: sa.Engine) -> dict[str, int]:
    """Every listing, release and intent has exactly its one creation event, and every
    creation event its entity: nothing half-written. Returns the entity counts."""
    pairs = {
        "listing": (t.listings, t.listings.c.listing_id, "listing.created", "listing_id"),
        "release": (t.releases, t.releases.c.release_id, "release.published", "release_id"),
        "intent": (
            t.install_intents,
            t.install_intents.c.install_intent_id,
            "install_intent.created",
            "install_intent_id",
        ),
    }
    counts: dict[str, int] = {}
    with engine.connect() as connection:
        for kind, (_table, id_column, event_type, event_column) in pairs.items():
            ids = set(connection.execute(sa.select(id_column)).scalars())
            events = list(
                connection.execute(
                    sa.select(t.audit_events.c[event_column]).where(
                        t.audit_events.c.type == event_type
                    )
                ).scalars()
            )
            assert sorted(events) == sorted(ids), kind  # one event per entity, no orphan
            counts[kind] = len(ids)
    return counts


def test_sigkill_mid_burst_leaves_no_partial_rows_and_retries_answer_as_the_first_attempt(
    postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    """SIGKILL of a server process in the middle of a burst of writes: no partial listing,
    release, intent or audit row; after a restart, every write retried under its key
    answers what the first attempt would have, and each key made exactly one resource."""
    with _database(postgres) as url:
        engine, seeder = _seeder(url)
        try:
            publisher_headers = _user(seeder, "publisher", Role.PUBLISHER)
            buyer_headers = _user(seeder, "buyer")
            seeder.operator.ensure_user(
                "fault-owner", display_name="Owner", roles=(Role.PUBLISHER,)
            )
            call = Call.as_user("fault-owner")
            publishing = seeder.publishing
            published = publishing.create_listing(
                call, listing_payload(name="Installable"), idempotency_key="seed-1"
            ).value.listing
            release = publishing.publish_release(
                call, published.listing_id, release_payload(), idempotency_key="seed-2"
            ).value
            publishing.change_status(
                call, published.listing_id, {"status": "published"}, idempotency_key="seed-3"
            )
            before = _consistency(engine)

            server = _start_server(url, tmp_path)
            with httpx.Client(base_url=server.base_url, timeout=BOUND_S) as client:
                # The publisher's own draft, for the burst's releases.
                draft = client.post(
                    "/v1/publisher/listings",
                    json=listing_payload(name="Draft For Releases"),
                    headers={**publisher_headers, "Idempotency-Key": "seed-draft"},
                )
                assert draft.status_code == 201, draft.text
            draft_id = draft.json()["listing"]["listingId"]
            writes = _writes(
                publisher_headers,
                buyer_headers,
                draft_id,
                (published.listing_id, release.release_id),
            )
            answered: dict[str, httpx.Response] = {}
            lanes: list[list[Write]] = [writes[i::4] for i in range(4)]

            def lane(items: list[Write]) -> None:
                with httpx.Client(base_url=server.base_url, timeout=BOUND_S) as client:
                    for write in items:
                        try:
                            answered[write.key] = _send(client, write)
                        except httpx.HTTPError:
                            return  # the server is gone

            threads = [threading.Thread(target=lane, args=(items,)) for items in lanes]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 10
            while len(answered) < 12 and time.monotonic() < deadline:
                time.sleep(0.005)
            _kill(server)
            for thread in threads:
                thread.join(2 * BOUND_S)
            assert 12 <= len(answered) < len(writes), "the kill did not land mid-burst"
            assert all(r.status_code == 201 for r in answered.values()), [
                r.text for r in answered.values() if r.status_code != 201
            ]

            mid = _consistency(engine)
            assert mid["listing"] >= before["listing"] + 1

            restarted = _start_server(url, tmp_path)
            try:
                with httpx.Client(base_url=restarted.base_url, timeout=BOUND_S) as client:
                    for write in writes:
                        retry = _retry(client, write)
                        assert retry.status_code == 201, (write.kind, retry.text)
                        first = answered.get(write.key)
                        if first is not None:
                            assert retry.headers.get("idempotent-replayed") == "true", write
                            assert retry.json() == first.json(), write
                        again = _send(client, write)
                        assert again.headers.get("idempotent-replayed") == "true", write
                        assert _created_id(write, again) == _created_id(write, retry)
            finally:
                _kill(restarted)

            after = _consistency(engine)
            per_kind = {kind: sum(w.kind == kind for w in writes) for kind in _CREATED}
            assert after == {
                "listing": before["listing"] + 1 + per_kind["listing"],  # +1: the draft
                "release": before["release"] + per_kind["release"],
                "intent": before["intent"] + per_kind["intent"],
            }
        finally:
            engine.dispose()

"""Two real server processes on one PostgreSQL database and one Redis (§6, §7, §9, §5 cursors).

The module starts two ``uvicorn`` processes running the production factory
(``fleetprompt_http.server:app_from_env``), each on its own ephemeral loopback
port, configured only through ``FLEETPROMPT_*`` variables: one PostgreSQL
database created for this module (migrated, dropped at the end), one Redis
key prefix of its own (deleted at the end), a shared cursor key and redeem
secret, and ``search=5/60`` as the search rate limit. Users and API tokens are
seeded through the core, as an operator would; everything under test goes
over real HTTP with ``httpx``, half of each concurrent burst to each process.

Skipped unless both ``FLEETPROMPT_TEST_POSTGRES_URL`` and
``FLEETPROMPT_TEST_REDIS_URL`` are set (``.ci/run`` sets them).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import redis
import sqlalchemy as sa

import databases
from fleetprompt_adapters import sql
from fleetprompt_adapters.sql import tables as t
from fleetprompt_core import Call, CoreSettings, FleetPrompt, Role
from fleetprompt_http.client import REDEEM_PATH, signed_redeem_request
from support import IMAGE_HOST, listing_payload, release_payload

REDEEM_SECRET = secrets.token_hex(32).encode("ascii")
CURSOR_KEY = secrets.token_hex(32)
SEARCH_LIMIT = 5
#: Requests per concurrent burst, half to each process.
BURST = 16
STARTUP_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 10.0
SEARCH_PATH = "/v1/public/listings/search"
CURSOR_TAG = "multiprocess"


# --------------------------------------------------------------------------- the cluster


@attrs.frozen
class Server:
    """One server process, its base URL and the file its stderr goes to."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path


@attrs.frozen
class Caller:
    external_id: str
    user_id: str
    token: str = attrs.field(repr=False)

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}


@attrs.define
class Cluster:
    """Two processes A and B on one database and one Redis, plus the seeding core."""

    a: Server
    b: Server
    engine: sa.Engine
    fp: FleetPrompt
    clients: dict[str, httpx.Client] = attrs.field(factory=dict)

    @property
    def servers(self) -> tuple[Server, Server]:
        return self.a, self.b

    def client(self, server: Server) -> httpx.Client:
        """A keep-alive client of ``server`` (safe to share between threads)."""
        if server.name not in self.clients:
            self.clients[server.name] = httpx.Client(
                base_url=server.base_url,
                timeout=REQUEST_TIMEOUT_S,
                limits=httpx.Limits(max_connections=BURST),
            )
        return self.clients[server.name]

    def user(self, name: str, *roles: Role) -> Caller:
        external_id = f"mp-{name}-{secrets.token_hex(3)}"
        user = self.fp.operator.ensure_user(external_id, display_name=name.title(), roles=roles)
        token = self.fp.credentials.issue_api_token(external_id).api_token
        return Caller(external_id, user.user_id, token)

    def burst(self, send: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
        """``BURST`` requests released together at a barrier, alternating A and B."""
        start_line = threading.Barrier(BURST, timeout=REQUEST_TIMEOUT_S)
        clients = [self.client(self.servers[i % 2]) for i in range(BURST)]

        def one(i: int) -> httpx.Response:
            start_line.wait()
            return send(clients[i])

        with ThreadPoolExecutor(BURST) as pool:
            return list(pool.map(one, range(BURST), timeout=4 * REQUEST_TIMEOUT_S))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _server_env(database_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLEETPROMPT")}
    env.update(
        {
            "FLEETPROMPT_DATABASE_URL": database_url,
            "FLEETPROMPT_INTERNAL_REDEEM_SECRET": REDEEM_SECRET.decode("ascii"),
            "FLEETPROMPT_CURSOR_KEY": CURSOR_KEY,
            "FLEETPROMPT_REDIS_URL": redis_url,
            "FLEETPROMPT_REDIS_PREFIX": prefix,
            "FLEETPROMPT_RATE_LIMITS": f"search={SEARCH_LIMIT}/60",
            "FLEETPROMPT_IMAGE_HOSTS": IMAGE_HOST,
            "FLEETPROMPT_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _start(name: str, env: dict[str, str], directory: Path) -> Server:
    port = _free_port()
    log = directory / f"server-{name}.stderr"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "fleetprompt_http.server:app_from_env",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name, f"http://127.0.0.1:{port}", process, log)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)


def _log_of(server: Server) -> str:
    try:
        text = server.log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return text[-8_000:] or "(empty)"


def _wait_healthy(servers: list[Server]) -> None:
    """Poll ``/healthz`` of every server until it answers 200; fail with its stderr if not."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    pending = list(servers)
    with httpx.Client(timeout=1.0) as client:
        while pending:
            for server in list(pending):
                if server.process.poll() is not None:
                    pytest.fail(
                        f"server {server.name} exited with {server.process.returncode} at "
                        f"start-up; its stderr:\n{_log_of(server)}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(server.base_url + "/healthz").status_code == 200:
                        pending.remove(server)
            if pending and time.monotonic() > deadline:
                logs = "\n".join(f"--- {s.name}:\n{_log_of(s)}" for s in pending)
                pytest.fail(f"servers not healthy after {STARTUP_TIMEOUT_S:.0f} s:\n{logs}")
            if pending:
                time.sleep(0.05)


@contextlib.contextmanager
def _postgres_database() -> Iterator[sa.URL]:
    """A database of its own on the test PostgreSQL server, dropped afterwards."""
    raw = os.environ.get(databases.POSTGRES_ENV, "").strip()
    if not raw:
        pytest.skip(f"set {databases.POSTGRES_ENV} to run the multi-process HTTP tests")
    server = sql.normalize_url(raw)
    name = f"fleetprompt_test_mp_{os.getpid()}_{secrets.token_hex(4)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@contextlib.contextmanager
def _redis_prefix(url: str) -> Iterator[str]:
    prefix = databases.redis_key_prefix()
    client = redis.Redis.from_url(url)
    try:
        yield prefix
    finally:
        try:
            databases.delete_redis_keys(client, prefix)
        finally:
            client.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not os.environ.get(databases.POSTGRES_ENV, "").strip():
        pytest.skip(f"set {databases.POSTGRES_ENV} to run the multi-process HTTP tests")
    redis_url = databases.redis_url()  # skips without FLEETPROMPT_TEST_REDIS_URL
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(_postgres_database())
        prefix = stack.enter_context(_redis_prefix(redis_url))
        engine = sql.create_engine(url)
        stack.callback(engine.dispose)
        sql.upgrade(engine)
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fp-mp-")))
        env = _server_env(url.render_as_string(hide_password=False), redis_url, prefix)
        servers: list[Server] = []
        for name in ("A", "B"):
            server = _start(name, env, directory)
            servers.append(server)
            stack.callback(_stop, server)  # runs before the database is dropped
        _wait_healthy(servers)
        seeder = sql.bootstrap(engine, settings=CoreSettings(image_hosts=frozenset({IMAGE_HOST})))
        opened = Cluster(servers[0], servers[1], engine, seeder)
        try:
            yield opened
        finally:
            for client in opened.clients.values():
                client.close()


def _count(engine: sa.Engine, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()
            or 0
        )


def _code(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["error"]["code"])


def _published(cluster: Cluster, publisher: Caller, name: str, tags: list[str]) -> tuple[str, str]:
    """A published listing with one release, made through the core: both ids."""
    call = Call.as_user(publisher.external_id)
    publishing = cluster.fp.publishing
    listing = publishing.create_listing(
        call, listing_payload(name=name, tags=tags), idempotency_key=f"c-{name}"
    ).value.listing
    release = publishing.publish_release(
        call, listing.listing_id, release_payload(), idempotency_key=f"r-{name}"
    ).value
    publishing.change_status(
        call, listing.listing_id, {"status": "published"}, idempotency_key=f"s-{name}"
    )
    return listing.listing_id, release.release_id


# --------------------------------------------------------------------------- §6 idempotency


def test_r_idemp_02_concurrent_duplicates_across_processes_create_one_listing(
    cluster: Cluster,
) -> None:
    publisher = cluster.user("idem", Role.PUBLISHER)
    payload = listing_payload(name="Raced Across Processes")
    headers = publisher.headers(**{"Idempotency-Key": "mp-race-create"})

    responses = cluster.burst(
        lambda client: client.post("/v1/publisher/listings", json=payload, headers=headers)
    )

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [(r.status_code, r.text) for r in responses]
    created = [r for r in responses if r.status_code == 201]
    assert created, "no request succeeded"
    ids = {r.json()["listing"]["listingId"] for r in created}
    assert len(ids) == 1, ids
    originals = [r for r in created if r.headers.get("idempotent-replayed") != "true"]
    assert len(originals) == 1, "more than one request executed"
    assert all(_code(r) == "CONFLICT" for r in responses if r.status_code == 409)
    (listing_id,) = ids

    # Afterwards both processes replay the stored answer.
    for server in cluster.servers:
        again = cluster.client(server).post("/v1/publisher/listings", json=payload, headers=headers)
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["listing"]["listingId"] == listing_id

    for server in cluster.servers:
        page = cluster.client(server).get("/v1/publisher/listings", headers=publisher.headers())
        assert page.status_code == 200, page.text
        assert [item["listingId"] for item in page.json()["items"]] == [listing_id]
    assert (
        _count(cluster.engine, t.listings, t.listings.c.publisher_user_id == publisher.user_id) == 1
    )
    assert (
        _count(
            cluster.engine,
            t.audit_events,
            t.audit_events.c.type == "listing.created",
            t.audit_events.c.actor_user_id == publisher.user_id,
        )
        == 1
    )


# --------------------------------------------------------------------------- §7 redemption


def test_i_int_06_concurrent_redemptions_across_processes_have_one_winner(
    cluster: Cluster,
) -> None:
    publisher = cluster.user("seller", Role.PUBLISHER)
    buyer = cluster.user("buyer")
    listing_id, release_id = _published(cluster, publisher, "Redeemed Across Processes", ["x"])
    a, b = cluster.client(cluster.a), cluster.client(cluster.b)
    intent = a.post(
        "/v1/install/intents",
        json={"listingId": listing_id, "releaseId": release_id, "targetSystem": "whs"},
        headers=buyer.headers(**{"Idempotency-Key": "mp-intent"}),
    )
    assert intent.status_code == 201, intent.text
    intent_id = intent.json()["installIntent"]["installIntentId"]
    issued = b.post(
        f"/v1/install/intents/{intent_id}/token",
        headers=buyer.headers(**{"Idempotency-Key": "mp-token"}),
    )
    assert issued.status_code == 201, issued.text
    signed = signed_redeem_request(
        issued.json()["installToken"], "whs", key=REDEEM_SECRET, source="whs"
    )

    responses = cluster.burst(
        lambda client: client.post(REDEEM_PATH, content=signed.body, headers=dict(signed.headers))
    )

    won = [r for r in responses if r.status_code == 200]
    lost = [r for r in responses if r.status_code != 200]
    assert len(won) == 1, [(r.status_code, r.text) for r in responses]
    assert all(r.status_code == 404 and _code(r) == "NOT_FOUND" for r in lost), [
        (r.status_code, r.text) for r in lost
    ]
    answer = won[0].json()
    assert answer["installIntent"]["installIntentId"] == intent_id
    assert answer["release"]["releaseId"] == release_id
    assert (
        _count(
            cluster.engine,
            t.audit_events,
            t.audit_events.c.type == "install_token.redeemed",
            t.audit_events.c.listing_id == listing_id,
        )
        == 1
    )
    # The token stays spent on both processes.
    for client in (a, b):
        again = client.post(REDEEM_PATH, content=signed.body, headers=dict(signed.headers))
        assert again.status_code == 404
        assert _code(again) == "NOT_FOUND"


# --------------------------------------------------------------------------- §9 rate limits


@pytest.mark.parametrize("who", ["signed-in", "anonymous"])
def test_s_rl_01_search_limit_holds_across_processes(cluster: Cluster, who: str) -> None:
    """``search=5/60`` counted in Redis: 5 searches succeed over both processes, then
    both answer ``RATE_LIMITED`` with ``Retry-After``. Anonymous calls count per client
    address (127.0.0.1 for both processes); no other test here searches anonymously."""
    headers = cluster.user("searcher").headers() if who == "signed-in" else {}

    responses = cluster.burst(lambda client: client.get(SEARCH_PATH, headers=headers))

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == SEARCH_LIMIT, statuses
    assert statuses.count(429) == BURST - SEARCH_LIMIT, statuses
    for server in cluster.servers:
        refused = cluster.client(server).get(SEARCH_PATH, headers=headers)
        assert refused.status_code == 429, refused.text
        assert _code(refused) == "RATE_LIMITED"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
    for response in responses:
        if response.status_code == 429:
            assert 1 <= int(response.headers["retry-after"]) <= 60


# --------------------------------------------------------------------------- §5 cursors


def test_r_pag_01_a_cursor_from_one_process_works_on_the_other(cluster: Cluster) -> None:
    publisher = cluster.user("catalogue", Role.PUBLISHER)
    ids = {_published(cluster, publisher, f"Paged {n}", [CURSOR_TAG])[0] for n in range(3)}
    reader = cluster.user("pager")  # signed in: its own search budget
    params = {"tags": CURSOR_TAG, "sort": "created"}
    a, b = cluster.client(cluster.a), cluster.client(cluster.b)

    first = a.get(SEARCH_PATH, params={**params, "limit": 2}, headers=reader.headers())
    assert first.status_code == 200, first.text
    cursor = first.json()["nextCursor"]
    assert cursor
    second = b.get(
        SEARCH_PATH, params={**params, "limit": 2, "cursor": cursor}, headers=reader.headers()
    )
    assert second.status_code == 200, second.text
    assert second.json()["nextCursor"] is None
    walked = [item["listingId"] for item in first.json()["items"] + second.json()["items"]]
    assert len(walked) == 3
    assert set(walked) == ids
    whole = b.get(SEARCH_PATH, params={**params, "limit": 10}, headers=reader.headers())
    assert [item["listingId"] for item in whole.json()["items"]] == walked

    # The publisher's own list pages across processes too (B → A).
    mine = b.get("/v1/publisher/listings", params={"limit": 1}, headers=publisher.headers())
    assert mine.status_code == 200, mine.text
    own = [mine.json()["items"][0]["listingId"]]
    cursor = mine.json()["nextCursor"]
    for client in (a, b, a):
        if cursor is None:
            break
        page = client.get(
            "/v1/publisher/listings",
            params={"limit": 1, "cursor": cursor},
            headers=publisher.headers(),
        )
        assert page.status_code == 200, page.text
        own += [item["listingId"] for item in page.json()["items"]]
        cursor = page.json()["nextCursor"]
    assert cursor is None
    assert sorted(own) == sorted(ids)


# --------------------------------------------------------------------------- response cache

#: The staleness bound of the public response cache (ADR 0028): the catalogue
#: version is trusted for 1 s after the start of the read that fetched it.
CACHE_BOUND_S = 1.0


def test_cache_a_catalogue_change_reaches_the_other_process_within_the_bound(
    cluster: Cluster,
) -> None:
    """Both processes serve a listing's detail from their response caches (a write behind
    the catalogue version's back stays invisible to anonymous readers, proving it); a
    change through A is served by A at once and by B within the bound of ADR 0028."""
    publisher = cluster.user("cache", Role.PUBLISHER)
    listing_id, _ = _published(cluster, publisher, "Cached Before", ["cachetest"])
    path = f"/v1/public/listings/{listing_id}"
    a, b = cluster.client(cluster.a), cluster.client(cluster.b)

    def name(client: httpx.Client, **headers: str) -> str:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        return str(response.json()["listingDetail"]["listing"]["name"])

    time.sleep(CACHE_BOUND_S)  # the seeding commit is past the bound for both processes
    assert [name(a), name(a), name(b), name(b)] == ["Cached Before"] * 4

    # Written behind the cache: the catalogue version does not move.
    with cluster.engine.begin() as connection:
        connection.execute(
            sa.update(t.listings)
            .where(t.listings.c.listing_id == listing_id)
            .values(name="Written Behind The Cache")
        )
    time.sleep(CACHE_BOUND_S + 0.2)
    assert name(a) == name(b) == "Cached Before"  # both answered from their caches
    assert name(b, **publisher.headers()) == "Written Behind The Cache"  # credentials bypass

    changed = a.patch(
        f"/v1/publisher/listings/{listing_id}",
        json={"name": "Changed Through A"},
        headers=publisher.headers(**{"Idempotency-Key": "mp-cache-patch"}),
    )
    committed = time.monotonic()
    assert changed.status_code == 200, changed.text
    assert name(a) == "Changed Through A"  # the writing process: at once
    seen_after = None
    while time.monotonic() < committed + CACHE_BOUND_S + 0.5:
        if name(b) == "Changed Through A":
            seen_after = time.monotonic() - committed
            break
        time.sleep(0.01)
    assert seen_after is not None, "B still served the old bytes past the bound"
    # Past the bound it is guaranteed, whatever the poll timing was.
    time.sleep(max(0.0, committed + CACHE_BOUND_S - time.monotonic()))
    assert name(b) == "Changed Through A"

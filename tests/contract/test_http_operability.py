"""Operability over HTTP (issue 14 items 11, 14 and 15b; contract §14 X-OPS-01..02).

- A storage outage answers ``503 UNAVAILABLE`` with the envelope and
  ``Retry-After`` — never a 500 naming an exception class — within the
  configured bounds, and the same request succeeds once storage is back
  (X-OPS-01, X-OPS-02 on SQLite here; on a throw-away PostgreSQL server that
  really goes away in ``test_fault_postgres.py``).
- Statement, lock and pool timeouts are bounded on SQLite and PostgreSQL.
- ``/readyz`` checks the database and Redis; ``/healthz`` checks nothing.
- ``HEAD`` answers like ``GET`` without a body; ``OPTIONS`` lists every method.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import databases
from contract.http_checks import assert_error, assert_no_internals, resolve_schema
from contract.http_harness import Api
from fleetprompt_adapters import sql
from fleetprompt_adapters.sql.store import guarded
from fleetprompt_core import Unavailable
from fleetprompt_http.settings import ConfigError, Settings
from support import listing_payload

ApiFactory = Callable[..., AbstractContextManager[Api]]
#: Words of a driver or an exception class that must never reach a client.
LEAKS = ("OperationalError", "sqlite", "psycopg", "locked", "Timeout", "Traceback", "SELECT")


@pytest.fixture
def api(api_factory: ApiFactory) -> Iterator[Api]:
    """The app on SQLite (what these prove does not depend on the store)."""
    with api_factory("sqlite") as opened:
        yield opened


def _assert_unavailable(response: httpx.Response) -> None:
    assert_error(response, 503, "UNAVAILABLE")
    assert_no_internals(response.text)
    for word in LEAKS:
        assert word not in response.text, word
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["cache-control"] == "no-store"


def _sqlite_file(api: Api) -> str:
    database = sa.make_url(api.settings.database_url).database
    assert database
    return database


def test_x_ops_02_and_01_a_locked_sqlite_database_answers_503_then_recovers(
    api_factory: ApiFactory,
) -> None:
    """X-OPS-01/02: while another process holds SQLite's write lock past the statement
    timeout, a write answers 503 UNAVAILABLE (envelope, Retry-After, no driver words)
    within the bound and changes nothing; once the lock is gone, the same request (same
    Idempotency-Key) succeeds without a restart."""
    with api_factory("sqlite", db_statement_timeout_ms=300) as api:
        publisher = api.publisher()
        blocker = sqlite3.connect(_sqlite_file(api), isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")
            started = time.monotonic()
            refused = api.post(
                "/v1/publisher/listings", publisher, listing_payload(), key="ops-key-1"
            )
            elapsed = time.monotonic() - started
            _assert_unavailable(refused)
            assert elapsed < 3.0
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert api.get("/v1/publisher/listings", publisher).json()["items"] == []
        created = api.post("/v1/publisher/listings", publisher, listing_payload(), key="ops-key-1")
        assert created.status_code == 201, created.text
        assert created.headers.get("idempotent-replayed") is None


def test_x_ops_01_a_use_case_past_the_request_deadline_answers_503(
    api_factory: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A use case that does not finish (a stalled database the driver waits on forever)
    answers 503 UNAVAILABLE at the request deadline instead of hanging; the server keeps
    serving other requests meanwhile, and afterwards. (A search with words: it runs in a
    worker thread; a short read on the event loop has no thread to abandon, ADR 0044.)"""
    release = threading.Event()

    class StalledCatalog:
        def __getattr__(self, name: str) -> Any:
            def stalled(*_args: object, **_kwargs: object) -> None:
                release.wait(10)

            return stalled

    with api_factory("sqlite", request_timeout_ms=300, threads=2) as api:
        real = api.fp.catalog
        monkeypatch.setattr(api.fp, "catalog", StalledCatalog())
        try:
            started = time.monotonic()
            response = api.get("/v1/public/listings/search?q=agent")
            elapsed = time.monotonic() - started
            _assert_unavailable(response)
            assert 0.3 <= elapsed < 3.0
            assert api.get("/healthz").status_code == 200
        finally:
            release.set()
            monkeypatch.setattr(api.fp, "catalog", real)
        assert api.get("/v1/public/listings/search?q=agent").status_code == 200


@pytest.mark.parametrize("name", ["sqlite", "postgres"])
def test_statement_and_pool_timeouts_are_bounded(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A statement that runs past ``statement_ms`` is interrupted, and a checkout that
    finds every pooled connection busy gives up after ``pool_ms``: both are Unavailable
    (an outage, 503) well before any client gives up."""
    if name == "postgres":
        url: str | sa.URL = databases.postgres_url()  # skips without PostgreSQL
        slow = "SELECT pg_sleep(5)"
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('timeouts') / 'slow.db'}"
        # Counts to a billion: minutes of work, unless interrupted.
        slow = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000)"
            " SELECT count(*) FROM n"
        )
    engine = sql.create_engine(
        url,
        pool_size=1,
        max_overflow=0,
        timeouts=sql.Timeouts(connect_ms=2_000, pool_ms=300, statement_ms=300),
    )
    try:

        def run_slow() -> None:
            with engine.connect() as connection:
                connection.exec_driver_sql(slow)

        started = time.monotonic()
        with pytest.raises(Unavailable):
            guarded(run_slow)
        assert time.monotonic() - started < 3.0

        with engine.connect() as held:
            held.exec_driver_sql("SELECT 1")
            started = time.monotonic()
            with pytest.raises(Unavailable):
                sql.ping(engine)
            assert 0.25 <= time.monotonic() - started < 3.0
        sql.ping(engine)  # the connection is back in the pool: answers again
    finally:
        engine.dispose()


def test_readiness_checks_the_database_and_liveness_checks_nothing(api: Api) -> None:
    """/readyz makes a round trip to the database and says so; /healthz answers without
    one. Both are no-store and carry the request id."""
    ready = api.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["ok"] is True
    assert body["checks"] == {"database": "ok"}
    assert ready.headers["cache-control"] == "no-store"
    assert api.get("/healthz").json()["ok"] is True


def test_readiness_answers_503_naming_a_redis_that_does_not_answer(
    api_factory: ApiFactory, unused_tcp_port: int
) -> None:
    """With Redis configured but unreachable, /readyz is 503 UNAVAILABLE naming redis
    (quickly, no driver text) while /healthz stays 200; a request that needs the rate
    limiter answers 503 too, never 500."""
    with api_factory("sqlite", redis_url=f"redis://127.0.0.1:{unused_tcp_port}/0") as api:
        started = time.monotonic()
        ready = api.get("/readyz")
        assert time.monotonic() - started < 5.0
        _assert_unavailable(ready)
        assert "redis" in ready.json()["error"]["message"]
        assert "database" not in ready.json()["error"]["message"]
        assert api.get("/healthz").status_code == 200
        _assert_unavailable(api.get("/v1/public/listings/search"))


def test_readiness_with_a_live_redis_checks_it(api_factory: ApiFactory) -> None:
    """With a reachable Redis, /readyz reports both dependencies."""
    url = databases.redis_url()  # skips without Redis
    with api_factory("sqlite", redis_url=url) as api:
        ready = api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_head_answers_like_get_without_a_body(api: Api) -> None:
    """Issue 14 item 15b: HEAD /healthz and /readyz (load balancers probe with HEAD), and
    any other GET route, answer the GET's status and headers with an empty body."""
    for path in ("/healthz", "/readyz", "/v1/public/listings/search", "/no/such/path"):
        got = api.client.get(path)
        head = api.client.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert head.headers["content-length"] == got.headers["content-length"], path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers["x-request-id"] != got.headers["x-request-id"]
        for name in ("cache-control", "content-security-policy", "x-content-type-options"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)


def test_options_and_405_list_every_method_of_the_path(api: Api) -> None:
    """Issue 14 item 14: OPTIONS lists GET where the path has GET (Litestar's own answer
    forgot methods registered after the first handler), HEAD with it; a 405 says the same."""
    for path, expected in (
        ("/v1/publisher/listings", "GET, HEAD, OPTIONS, POST"),
        ("/v1/install/intents", "GET, HEAD, OPTIONS, POST"),
        ("/healthz", "GET, HEAD, OPTIONS"),
        ("/v1/internal/install/redeem", "OPTIONS, POST"),
    ):
        options = api.client.options(path)
        assert options.status_code == 204, path
        assert options.headers["allow"] == expected, path
        wrong = api.client.request("PUT", path)
        assert wrong.status_code == 405, path
        assert wrong.headers["allow"] == expected, path


@pytest.fixture
def unused_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_timeouts_are_settings_with_sane_defaults() -> None:
    """The four bounds default to 5 s, 5 s, 10 s and 15 s, read FLEETPROMPT_* in
    milliseconds, and refuse nonsense naming the variable."""
    defaults = Settings.from_env({})
    assert (
        defaults.db_connect_timeout_ms,
        defaults.db_pool_timeout_ms,
        defaults.db_statement_timeout_ms,
        defaults.request_timeout_ms,
    ) == (5_000, 5_000, 10_000, 15_000)
    assert defaults.idempotency_lease_ms == 120_000
    custom = Settings.from_env(
        {"FLEETPROMPT_DB_STATEMENT_TIMEOUT_MS": "250", "FLEETPROMPT_REQUEST_TIMEOUT_MS": "900"}
    )
    assert (custom.db_statement_timeout_ms, custom.request_timeout_ms) == (250, 900)
    for variable in (
        "FLEETPROMPT_DB_CONNECT_TIMEOUT_MS",
        "FLEETPROMPT_DB_POOL_TIMEOUT_MS",
        "FLEETPROMPT_DB_STATEMENT_TIMEOUT_MS",
        "FLEETPROMPT_REQUEST_TIMEOUT_MS",
        "FLEETPROMPT_IDEMPOTENCY_LEASE_MS",
    ):
        for bad in ("0", "-5", "1.5", "soon", "600001"):
            with pytest.raises(ConfigError, match=variable):
                Settings.from_env({variable: bad})


def test_the_openapi_document_states_the_rules_the_server_enforces(api: Api) -> None:
    """Issue 14 item 14: the cursor's shape, the control-character and bidi rules of text,
    non-empty https URLs, A2's "grant or revoke at least one role, never both" and
    integers without a fraction are in the document. (schemathesis's
    positive_data_acceptance in test_http_fuzz checks the rest.)"""
    document = api.get("/schema/openapi.json").json()
    paths = document["paths"]

    def resolved(schema: dict[str, Any]) -> dict[str, Any]:
        # Request bodies are named components (ADR 0031).
        return resolve_schema(document, schema)

    search = {
        p["name"]: p["schema"] for p in paths["/v1/public/listings/search"]["get"]["parameters"]
    }
    assert re.fullmatch(search["cursor"]["pattern"], "abc.def")
    assert not re.fullmatch(search["cursor"]["pattern"], "0")
    for text, allowed in (("plain words", True), ("bell\x07", False), ("rtl\u202eoverride", False)):
        assert bool(re.fullmatch(search["q"]["pattern"], text)) is allowed, text
    body = paths["/v1/publisher/listings"]["post"]["requestBody"]["content"]["application/json"]
    listing = resolved(body["schema"])
    name = resolved(listing["properties"]["name"])
    assert not re.fullmatch(name["pattern"], "   ")  # needs a visible character
    assert re.fullmatch(name["pattern"], " Agent ")
    docs_url = resolved(resolved(listing["properties"]["links"])["properties"]["docsUrl"])
    assert docs_url["minLength"] == 1
    assert not re.fullmatch(docs_url["pattern"], "http://example.com/")
    assert re.fullmatch(docs_url["pattern"], "https://docs.example.com/guide")
    roles = paths["/v1/admin/users/{user_id}/roles"]["post"]["requestBody"]["content"]
    role_schema = resolved(roles["application/json"]["schema"])
    assert [option["required"] for option in role_schema["anyOf"]] == [["grant"], ["revoke"]]
    assert len(role_schema["not"]["anyOf"]) == 2  # one per role

    token = paths["/v1/install/intents/{install_intent_id}/token"]["post"]["requestBody"]
    ttl = resolved(resolved(token["content"]["application/json"]["schema"])["properties"]["ttlMs"])
    assert "not `600000.0`" in ttl["description"]

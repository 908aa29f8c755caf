"""Round trips to PostgreSQL per uncached request (issue 11): detail, browse, redemption.

Each tree runs in a worker process of its own on a fresh database
(``fleetprompt_trips_<random>``, dropped afterwards): it seeds a small catalogue
through the use cases (a publisher, 60 published listings with one release each,
so a browse page of 50 has a next page; install tokens to redeem), starts the
real app (``create_app`` with ``FLEETPROMPT_CACHE_MB=0``: every read runs its use
case, as the ``no cache`` server of ``bench/http_bench.py``) under Litestar's
test client, sends a few requests of each kind to warm the pool and the
prepared statements, then traces libpq (``PQtrace``) on every pooled connection
during one more request of each kind and counts what the database received:

* round trips: the server's ``ReadyForQuery`` messages (one per client wait:
  a ``Query`` message, or a ``Parse``/``Bind``/``Execute``/``Sync`` batch);
* the statements of each round trip (``BEGIN``, ``COMMIT``, the pool's pre-ping
  ``SELECT 1``, the use case's own).

Usage::

    python bench/pg_round_trips.py [--src src] [--baseline-src /work/base/src]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] [--statements]

Counts, not timings: no lock or quiet machine needed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from redeem_bench import scratch_postgres

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "src"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDEEM_SECRET = "bench-redeem-secret-0123456789abcdef"  # noqa: S105 - a bench key
CURSOR_KEY = "bench-cursor-key-0123456789abcdef"
IMAGE_HOST = "img.example.com"
LISTINGS = 60
WARM_UP = 8
KINDS = ("detail", "browse", "redeem")


def _trace_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def _round_trips(lines: list[str]) -> list[str]:
    """One entry per round trip: the statements the client sent before the server's
    ``ReadyForQuery`` (``Query`` texts, ``Parse`` texts; a prepared statement's
    ``Bind`` names it)."""
    trips: list[str] = []
    sent: list[str] = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        direction, message = parts[0], parts[2]
        detail = parts[3].strip() if len(parts) > 3 else ""
        if direction == "F" and message in {"Query", "Parse"}:
            text = detail.split('"')[1 if message == "Query" else 3]
            sent.append(" ".join(text.split())[:90])
        elif direction == "F" and message == "Bind" and not sent:
            sent.append("(prepared " + detail.split('"')[3] + ")")
        elif direction == "B" and message == "ReadyForQuery":
            trips.append(" ; ".join(sent) or "?")
            sent = []
    return trips


def _seed(database_url: str) -> tuple[list[str], list[str]]:
    """A publisher's published listings (one release each) and a buyer's install tokens."""
    from fleetprompt_adapters import sql  # noqa: PLC0415 - the worker imports the tree under test
    from fleetprompt_core import Call, Role  # noqa: PLC0415

    engine = sql.create_engine(database_url)
    sql.upgrade(engine)
    fp = sql.bootstrap(engine, cursor_key=CURSOR_KEY.encode())
    fp.operator.ensure_user("trips-pub", display_name="Trips", roles=[Role.PUBLISHER])
    fp.operator.ensure_user("trips-buyer")
    pub, buyer = Call.as_user("trips-pub"), Call.as_user("trips-buyer")
    listings = []
    for n in range(LISTINGS):
        listing = fp.publishing.create_listing(
            pub, {"assetKind": "whs_agent", "name": f"Trips agent {n}"}, idempotency_key=f"c{n}"
        ).value.listing.listing_id
        fp.publishing.publish_release(
            pub,
            listing,
            {"version": "1.0.0", "refs": {"whsAgentId": f"agent-{n}"}},
            idempotency_key=f"r{n}",
        )
        fp.publishing.change_status(pub, listing, {"status": "published"}, idempotency_key=f"p{n}")
        listings.append(listing)
    tokens = []
    for n in range(WARM_UP + 1):
        intent = fp.installs.create_intent(
            buyer, {"listingId": listings[0], "targetSystem": "whs"}, idempotency_key=f"i{n}"
        ).value
        tokens.append(
            fp.installs.issue_token(
                buyer, intent.install_intent_id, idempotency_key=f"t{n}"
            ).value.install_token
        )
    engine.dispose()
    return listings, tokens


def worker(database_url: str) -> dict[str, Any]:
    """Seed, warm up, then trace one request of each kind; the round trips of each."""
    import sqlalchemy as sa  # noqa: PLC0415 - the worker imports the tree under test
    from litestar.testing import TestClient  # noqa: PLC0415
    from psycopg import pq  # noqa: PLC0415
    from sqlalchemy import event  # noqa: PLC0415

    from fleetprompt_http.app import create_app  # noqa: PLC0415
    from fleetprompt_http.client import REDEEM_PATH, signed_redeem_request  # noqa: PLC0415
    from fleetprompt_http.settings import Settings  # noqa: PLC0415

    listings, tokens = _seed(database_url)
    traced: list[Any] = []

    def _connected(dbapi_connection: Any, _record: Any) -> None:
        traced.append(dbapi_connection)

    event.listen(sa.pool.Pool, "connect", _connected)
    env = {
        "FLEETPROMPT_DATABASE_URL": database_url,
        "FLEETPROMPT_CACHE_MB": "0",
        "FLEETPROMPT_RATE_LIMITS": "off",
        "FLEETPROMPT_INTERNAL_REDEEM_SECRET": REDEEM_SECRET,
        "FLEETPROMPT_CURSOR_KEY": CURSOR_KEY,
        "FLEETPROMPT_IMAGE_HOSTS": IMAGE_HOST,
        "FLEETPROMPT_LOG_LEVEL": "WARNING",
    }
    app = create_app(Settings.from_env(env))
    search = "/v1/public/listings/search"

    def request(client: Any, kind: str, n: int) -> None:
        if kind == "detail":
            response = client.get(f"/v1/public/listings/{listings[n % LISTINGS]}")
        elif kind == "browse":
            response = client.get(search)
        else:
            signed = signed_redeem_request(
                tokens[n], "whs", key=REDEEM_SECRET.encode(), source="whs"
            )
            response = client.post(REDEEM_PATH, content=signed.body, headers=signed.headers)
        assert response.status_code == 200, (kind, response.status_code, response.text)
        if kind == "browse":
            assert response.json()["nextCursor"], "a browse page with a next page"

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, TestClient(app) as client:
        for kind in KINDS:
            for n in range(WARM_UP):
                request(client, kind, n)
            path = Path(tmp) / f"{kind}.trace"
            with path.open("wb") as sink:
                for connection in traced:
                    if not connection.closed:
                        connection.pgconn.trace(sink.fileno())
                        connection.pgconn.set_trace_flags(
                            pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE
                        )
                try:
                    request(client, kind, WARM_UP)
                finally:
                    for connection in traced:
                        if not connection.closed:
                            connection.pgconn.untrace()
            result[kind] = _round_trips(_trace_lines(path))
    return result


def _run_worker(source: Path, postgres_url: str) -> dict[str, Any]:
    url, drop = scratch_postgres(postgres_url, "fleetprompt_trips")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPROMPT_")}
        env["PYTHONPATH"] = str(source)
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "--worker", url],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    finally:
        drop()
    if done.returncode != 0:
        raise SystemExit(f"worker failed ({source}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, default=SOURCE, help="src/ of the tree to count")
    parser.add_argument("--baseline-src", type=Path, help="src/ of a tree to count first")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--statements", action="store_true", help="list each round trip")
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(worker(options.worker)))
        return
    trees = [("this tree", options.src.resolve())]
    if options.baseline_src:
        trees.insert(0, ("baseline", options.baseline_src.resolve()))
    for label, source in trees:
        result = _run_worker(source, options.postgres_url)
        counts = ", ".join(f"{kind} {len(result[kind])}" for kind in KINDS)
        print(f"{label} ({source}): round trips per request: {counts}")
        if options.statements:
            for kind in KINDS:
                for n, trip in enumerate(result[kind], 1):
                    print(f"  {kind:7} {n}. {trip}")


if __name__ == "__main__":
    main()

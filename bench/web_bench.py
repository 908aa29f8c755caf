"""Page render of the marketplace search and the detail page beside the JSON API.

The whole app (routing, security headers, request ids, use cases in the
worker thread, templates) is driven in-process through Litestar's test client
over a migrated SQLite file with ``--listings`` published listings. For the
same query it times the JSON endpoint and the page, round-robin so that load
from other processes falls on every case alike, and a baseline from the same
run: ``GET /healthz`` (the app's fixed cost per request). Usage::

    python bench/web_bench.py [--listings 500] [--repeat 200]

It prints median and p99 per case; numbers are for comparison within one run.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

from litestar.testing import TestClient

from fleetprompt_adapters import sql
from fleetprompt_core import Call, Role
from fleetprompt_http.app import create_app, fleetprompt_of
from fleetprompt_http.settings import Settings

WORDS = ["agent", "triage", "support", "invoice", "router", "summary", "crm", "ticket", "email"]


def _populate(client: TestClient[object], listings: int) -> str:
    app = fleetprompt_of(client.app)
    app.operator.ensure_user("bench-pub", roles=[Role.PUBLISHER])
    pub = Call.as_user("bench-pub")
    rng = random.Random(7)
    first = ""
    for n in range(listings):
        listing = app.publishing.create_listing(
            pub,
            {
                "assetKind": "whs_agent",
                "name": " ".join(rng.sample(WORDS, 3)).title(),
                "summary": " ".join(rng.sample(WORDS, 6)),
                "tags": rng.sample(WORDS, 3),
                "description": {
                    "markdown": "# Title\n\nSome **markdown** with a [link](https://a.example)."
                },
            },
            idempotency_key=f"c{n}",
        ).value.listing
        app.publishing.publish_release(
            pub,
            listing.listing_id,
            {"version": "1.0.0", "refs": {"whsAgentId": f"a{n}"}},
            idempotency_key=f"r{n}",
        )
        app.publishing.change_status(
            pub, listing.listing_id, {"status": "published"}, idempotency_key=f"s{n}"
        )
        first = first or listing.listing_id
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listings", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument(
        "--cache-mb",
        type=int,
        default=32,
        help="the public response cache (ADR 0028) of the JSON reads; 0 turns it off",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = sql.create_engine(url)
        sql.upgrade(engine)
        engine.dispose()
        app = create_app(Settings(database_url=url, rate_limits=None, cache_mb=args.cache_mb))
        with TestClient(app) as client:
            listing_id = _populate(client, args.listings)
            cases = {
                "baseline: GET /healthz": "/healthz",
                "JSON: search q=agent (12)": "/v1/public/listings/search?q=agent&limit=12",
                "page: / q=agent (12 cards + facets)": "/?q=agent",
                "JSON: listing detail": f"/v1/public/listings/{listing_id}",
                "page: /listings/{id}": f"/listings/{listing_id}",
            }
            samples: dict[str, list[float]] = {name: [] for name in cases}
            for path in cases.values():  # warm up
                assert client.get(path).status_code == 200, path
            for _ in range(args.repeat):
                for name, path in cases.items():
                    start = time.perf_counter_ns()
                    response = client.get(path)
                    samples[name].append((time.perf_counter_ns() - start) / 1e6)
                    assert response.status_code == 200
    print(
        f"CPython {platform.python_version()}, {args.listings} published listings on SQLite, "
        f"{args.repeat} requests per case (round-robin, in-process test client), "
        f"public response cache {args.cache_mb} MB"
    )
    print("| case | median ms | p99 ms |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(f"| {name} | {statistics.median(values):.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()

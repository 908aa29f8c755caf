"""The SQL adapter's read path (issue 11, ADR 0032): this checkout against a baseline, in one run.

Loads a catalogue of N published listings (``sql_bench.Catalogue``: the same
generator, releases for 30 % of the listings) into SQLite and, when
``--postgres-url`` is given, into PostgreSQL, once per ``--data-dir`` (reused
by later runs). Then, in alternating rounds, a fresh worker process per
source tree (``--baseline-src``, e.g. an older commit's ``src`` exported with
``git archive <commit> src | tar -x -C /tmp/base``, and this checkout's
``src``) times, through the application (``sql.bootstrap``, no HTTP, no
response cache):

* ``browse``: P1 without filters, first page (50);
* ``tag``: P1 with the commonest tag, first page;
* ``kind``: P1 with an asset kind, first page;
* ``detail``: P2 of a random listing (its first page of releases included);
* ``releases``: P3 of a random listing that has releases;
* ``map listings`` / ``map releases``: 50 fetched rows turned into entities
  (the mapping alone; the rows are fetched once, before timing).

Each worker measures every operation for ``--seconds`` after a warm-up and
prints the per-call durations; the parent pools the rounds and prints the
median and p99 per operation, source and database, and the ratio to the
baseline. Usage::

    python bench/sql_read_bench.py --baseline-src /tmp/base/src [--size 20000]
        [--data-dir DIR] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--rounds 3] [--seconds 2] [--src SRC]

``--src`` measures another tree than this checkout's ``src`` (a snapshot of it,
so that editing the checkout during a run changes nothing).
``--rounds 0`` only loads the catalogues (do that first, outside the lock).

Run it under ``flock /work/coord/bench.lock`` on a shared machine. Numbers are
for comparison within one run; they are never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CURSOR_KEY = b"bench-cursor-key-0123456789abcdef"
OPERATIONS = ("browse", "tag", "kind", "detail", "releases", "map listings", "map releases")


# --------------------------------------------------------------------------- loading (parent)


def _load(url: str, size: int, meta_path: Path) -> None:
    """Migrate and load the catalogue at ``url`` unless ``meta_path`` says it is loaded."""
    if meta_path.exists():
        return
    sys.path.insert(0, str(HERE))
    import sql_bench  # noqa: PLC0415
    import sqlalchemy as sa  # noqa: PLC0415 - the parent only loads with this checkout

    from fleetprompt_adapters import sql  # noqa: PLC0415

    engine = sql.create_engine(url)
    try:
        sql.upgrade(engine)
    finally:
        engine.dispose()
    catalogue = sql_bench.Catalogue(size)
    print(f"loading {size:,} listings into {sa.make_url(url).get_backend_name()}…", flush=True)
    load = sql_bench.load_sql(sa.make_url(url), catalogue)
    print(f"  {load.rows:,} rows in {load.total_s:.1f} s", flush=True)
    engine = sql.create_engine(url)
    try:
        with engine.connect() as conn:
            with_releases = [
                row[0] for row in conn.execute(sa.text("SELECT DISTINCT listing_id FROM releases"))
            ]
    finally:
        engine.dispose()
    meta = {
        "detail": catalogue.detail_ids,
        "releases": sorted(with_releases)[:: max(1, len(with_releases) // 2000)],
        "tag": sql_bench.COMMON_TAG,
    }
    meta_path.write_text(json.dumps(meta))


def _postgres_database(server_url: str, name: str) -> str:
    import sqlalchemy as sa  # noqa: PLC0415

    from fleetprompt_adapters import sql  # noqa: PLC0415

    server = sql.normalize_url(server_url)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            exists = conn.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": name}
            ).first()
            if exists is None:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


# --------------------------------------------------------------------------- measuring (worker)


def _timed(fn: Callable[[], object], seconds: float, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    durations: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - start)
    return durations


def _mapping_operations(engine: Any) -> dict[str, Callable[[], object]]:
    """Rows → entities: the generated codec when this source has one, else the functions."""
    import sqlalchemy as sa  # noqa: PLC0415

    from fleetprompt_adapters.sql import mapping as m  # noqa: PLC0415
    from fleetprompt_adapters.sql import tables as t  # noqa: PLC0415

    with engine.connect() as conn:
        listing_rows = conn.execute(sa.select(t.listings).limit(50)).all()
        release_rows = conn.execute(sa.select(t.releases).limit(50)).all()
    if hasattr(m, "LISTINGS"):  # generated (ADR 0032): positional loaders
        load_listing, load_release = m.LISTINGS.load_values, m.RELEASES.load_values

        def listings() -> object:
            return [load_listing(row) for row in listing_rows]

        def releases() -> object:
            return [load_release(row) for row in release_rows]

    else:  # hand-written: by name

        def listings() -> object:
            return [m.to_listing(row._mapping) for row in listing_rows]

        def releases() -> object:
            return [m.to_release(row._mapping) for row in release_rows]

    return {"map listings": listings, "map releases": releases}


def worker(url: str, meta_path: Path, seconds: float) -> None:
    from fleetprompt_adapters import sql  # noqa: PLC0415

    meta = json.loads(meta_path.read_text())
    engine = sql.create_engine(url)
    app = sql.bootstrap(engine, cursor_key=CURSOR_KEY)
    rng = random.Random(7)
    detail_ids, release_ids = meta["detail"], meta["releases"]
    operations: dict[str, Callable[[], object]] = {
        "browse": lambda: app.catalog.search({}),
        "tag": lambda: app.catalog.search({"tags": meta["tag"]}),
        "kind": lambda: app.catalog.search({"assetKind": "agentromatic_workflow"}),
        "detail": lambda: app.catalog.listing(rng.choice(detail_ids)),
        "releases": lambda: app.catalog.releases(rng.choice(release_ids)),
        **_mapping_operations(engine),
    }
    results = {name: _timed(fn, seconds, warmup=30) for name, fn in operations.items()}
    engine.dispose()
    json.dump(results, sys.stdout)


# --------------------------------------------------------------------------- the run (parent)


def _run_worker(src: Path, url: str, meta: Path, seconds: float) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--worker", url, str(meta), str(seconds)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"worker on {src} failed:\n{done.stderr}")
    result: dict[str, list[float]] = json.loads(done.stdout)
    return result


def _ms(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(sys.argv[2], Path(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--baseline-src", type=Path, required=True)
    parser.add_argument(
        "--src", type=Path, default=HERE.parent / "src", help="the source measured against it"
    )
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "sql-read")
    parser.add_argument("--postgres-url")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    current = args.src.resolve()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    databases = {"sqlite": f"sqlite:///{args.data_dir / f'catalogue_{args.size}.db'}"}
    if args.postgres_url:
        name = f"sql_read_bench_{args.size}"
        databases["postgresql"] = _postgres_database(args.postgres_url, name)
    metas = {}
    for database, url in databases.items():
        metas[database] = args.data_dir / f"catalogue_{args.size}_{database}.json"
        _load(url, args.size, metas[database])
    if args.rounds == 0:
        return  # --rounds 0: load the catalogues only (outside the benchmark lock)
    print(f"load average before: {os.getloadavg()}", flush=True)
    sources = {"baseline": args.baseline_src.resolve(), "this checkout": current}
    print(f"baseline {sources['baseline']}, this checkout {current}", flush=True)
    pooled: dict[tuple[str, str, str], list[float]] = {}
    for round_number in range(args.rounds):
        for database, url in databases.items():
            for label, src in sources.items():
                result = _run_worker(src, url, metas[database], args.seconds)
                for operation, durations in result.items():
                    pooled.setdefault((database, label, operation), []).extend(durations)
        print(f"round {round_number + 1}/{args.rounds} done", flush=True)
    print(f"load average after: {os.getloadavg()}")
    print()
    print(f"N = {args.size:,} listings; median / p99 in ms; baseline {sources['baseline']}")
    print()
    print("| database | operation | baseline median | p99 | this checkout median | p99 | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for database in databases:
        for operation in OPERATIONS:
            base = pooled[(database, "baseline", operation)]
            new = pooled[(database, "this checkout", operation)]
            ratio = statistics.median(base) / statistics.median(new)
            print(
                f"| {database} | {operation} | {_ms(base, 0.5):.3f} | {_ms(base, 0.99):.3f} "
                f"| {_ms(new, 0.5):.3f} | {_ms(new, 0.99):.3f} | {ratio:.2f}× |"
            )


if __name__ == "__main__":
    main()

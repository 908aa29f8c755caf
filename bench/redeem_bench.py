"""In-process redemption over the SQL adapter, this tree against a baseline tree.

Each measurement is a fresh worker process on a fresh database (a SQLite
file, or a database ``fleetprompt_redeem_<random>`` on the PostgreSQL server,
dropped afterwards): it publishes one listing, issues ``--count`` install
tokens through the use cases, then redeems each once with
``fp.redemption.redeem(source, payload)`` — the use case after the HMAC check,
which costs the same in both trees — timing every call and counting the SQL
statements the database receives (``before_cursor_execute``, so SQLite's
``BEGIN IMMEDIATE`` counts, the driver's ``COMMIT`` does not).

With ``--baseline-src DIR`` (the ``src`` folder of another checkout, e.g.
``git archive <commit> src | tar -x -C /tmp/base``), the two trees run
alternately, ``--rounds`` times each, so that machine noise hits both alike.
Usage::

    python bench/redeem_bench.py [--databases sqlite,postgresql] [--count 2000]
        [--rounds 3] [--baseline-src /tmp/base/src]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] [--markdown]

Prints, per tree and database: redemptions per second of one thread (1 / mean),
the median and p99 latency, the median CPU time of the calling thread (what
the code costs, without waiting for the disk: a commit's fsync is outside our
control) and statements per redemption. Numbers compare
within one run on one machine; they are never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "src"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def seed_tokens(fp: Any, count: int) -> list[str]:
    """Through the use cases of ``fp`` (a FleetPrompt of the tree under test): a publisher
    ``bench-pub``, a buyer ``bench-buyer``, a published listing with a release, and
    ``count`` install tokens of the buyer, each ready to be redeemed once."""
    from fleetprompt_core import Call, Role  # noqa: PLC0415 - the tree under test

    fp.operator.ensure_user("bench-pub", roles=[Role.PUBLISHER])
    fp.operator.ensure_user("bench-buyer")
    pub, buyer = Call.as_user("bench-pub"), Call.as_user("bench-buyer")
    listing = fp.publishing.create_listing(
        pub, {"assetKind": "whs_agent", "name": "Redeem bench"}, idempotency_key="c"
    ).value.listing.listing_id
    fp.publishing.publish_release(
        pub, listing, {"version": "1.0.0", "refs": {"whsAgentId": "agent-1"}}, idempotency_key="r"
    )
    fp.publishing.change_status(pub, listing, {"status": "published"}, idempotency_key="p")
    tokens = []
    for n in range(count):
        intent = fp.installs.create_intent(
            buyer, {"listingId": listing, "targetSystem": "whs"}, idempotency_key=f"i{n}"
        ).value
        issued = fp.installs.issue_token(
            buyer, intent.install_intent_id, idempotency_key=f"t{n}"
        ).value
        tokens.append(issued.install_token)
    return tokens


def scratch_postgres(postgres_url: str, prefix: str) -> tuple[str, Any]:
    """A new empty PostgreSQL database named ``<prefix>_<random>`` beside ``postgres_url``:
    its URL and a function that drops it."""
    import sqlalchemy as sa  # noqa: PLC0415

    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    url = sa.make_url(postgres_url).set(database=name)
    return url.render_as_string(hide_password=False), drop


def worker(database_url: str, count: int) -> dict[str, Any]:
    """Seed, then redeem ``count`` tokens one by one; the timings and statement count."""
    import sqlalchemy as sa  # noqa: PLC0415 - the worker imports the tree under test
    from sqlalchemy import event  # noqa: PLC0415

    from fleetprompt_adapters import sql  # noqa: PLC0415

    engine = sql.create_engine(database_url)
    sql.upgrade(engine)
    fp = sql.bootstrap(engine)
    tokens = seed_tokens(fp, count)
    statements = 0

    def counted(*_args: object) -> None:
        nonlocal statements
        statements += 1

    timings = []
    cpu = []
    warmup = min(50, count // 10)
    for n, raw in enumerate(tokens):
        if n == warmup:
            event.listen(engine, "before_cursor_execute", counted)
        started, started_cpu = time.perf_counter(), time.thread_time()
        fp.redemption.redeem("whs", {"installToken": raw, "targetSystem": "whs"})
        elapsed, used = time.perf_counter() - started, time.thread_time() - started_cpu
        if n >= warmup:
            timings.append(elapsed)
            cpu.append(used)
    with engine.connect() as connection:
        redeemed = connection.execute(
            sa.text("SELECT count(*) FROM install_tokens WHERE status = 'redeemed'")
        ).scalar_one()
    engine.dispose()
    assert redeemed == count, redeemed
    return {"timings": timings, "cpu": cpu, "statements": statements / len(timings)}


def _database(kind: str, postgres_url: str, directory: Path) -> tuple[str, Any]:
    """A new empty database URL and a function that drops it."""
    if kind == "sqlite":
        path = directory / f"redeem-{secrets.token_hex(4)}.sqlite"
        return f"sqlite:///{path}", lambda: path.unlink(missing_ok=True)
    return scratch_postgres(postgres_url, "fleetprompt_redeem")


def _run_worker(source: Path, database_url: str, count: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--worker", database_url, "--count", str(count)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(f"worker failed ({source}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _summary(timings: list[float], cpu: list[float], statements: float) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "cpu_ms": statistics.median(cpu) * 1000,
        "per_s": len(ordered) / sum(ordered),
        "median_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "statements": statements,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--count", type=int, default=2000, help="redemptions per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, help="src/ of the tree to compare with")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(worker(options.worker, options.count)))
        return
    trees = [("this tree", SOURCE)]
    if options.baseline_src:
        trees.insert(0, ("baseline", options.baseline_src.resolve()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in options.databases.split(","):
            collected: dict[str, tuple[list[float], list[float], list[float]]] = {
                label: ([], [], []) for label, _ in trees
            }
            for _round in range(options.rounds):
                for label, source in trees:  # alternate: noise hits both trees alike
                    url, drop = _database(kind, options.postgres_url, Path(tmp))
                    try:
                        result = _run_worker(source, url, options.count)
                    finally:
                        drop()
                    collected[label][0].extend(result["timings"])
                    collected[label][1].extend(result["cpu"])
                    collected[label][2].append(result["statements"])
            for label, (timings, cpu, statements) in collected.items():
                rows.append((kind, label, _summary(timings, cpu, statistics.mean(statements))))
    if options.markdown:
        print(
            "| database | tree | redemptions/s (1 thread) | median ms | p99 ms "
            "| CPU ms (median) | statements |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
    for kind, label, s in rows:
        if options.markdown:
            print(
                f"| {kind} | {label} | {s['per_s']:,.0f} | {s['median_ms']:.3f} | "
                f"{s['p99_ms']:.3f} | {s['cpu_ms']:.3f} | {s['statements']:.1f} |"
            )
        else:
            print(
                f"{kind:10} {label:10} {s['per_s']:8,.0f}/s  median {s['median_ms']:.3f} ms  "
                f"p99 {s['p99_ms']:.3f} ms  CPU {s['cpu_ms']:.3f} ms  "
                f"{s['statements']:.1f} statements"
            )


if __name__ == "__main__":
    main()

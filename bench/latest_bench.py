"""Cost of choosing the latest release by SemVer precedence (ADR 0023), per release count.

For each database (memory, SQLite, PostgreSQL) and each release count R, one
published listing gets R releases (semantic versions in shuffled order, a few
pre-releases and non-semver versions among them), published through the use
cases. Then, timed in the same run:

* ``baseline: newest by time`` — what ``latest_published`` did before: the
  first row of ``list_for_listing`` (publish time descending, limit 1);
* ``latest by precedence`` — ``catalog.latest_release``: the published
  versions of the listing, the choice in the core, one ``get``;
* ``P2 detail`` — the whole public detail use case (which now includes it).

Usage::

    python bench/latest_bench.py [--releases 1,20,200,1000] [--databases memory,sqlite,postgresql]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] [--repeat 300]
        [--write-docs]

Prints medians and p99s in milliseconds. ``--write-docs`` rewrites the
``## Latest release by precedence`` section of ``docs/benchmarks.md``. Numbers
compare within one run on one machine; they are never asserted in tests.
"""

from __future__ import annotations

import argparse
import platform
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from fleetprompt_adapters import sql
from fleetprompt_adapters.memory import ManualClock, MemoryStore, bootstrap
from fleetprompt_core import Call, CoreSettings, FleetPrompt, Role
from fleetprompt_core.services.catalog import latest_release

SECTION = "## Latest release by precedence"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CURSOR_KEY = b"b" * 32


@dataclass
class Result:
    database: str
    releases: int
    operation: str
    median: float
    p99: float
    runs: int


def _versions(count: int, rng: random.Random) -> list[str]:
    versions = [f"{i // 100}.{(i // 10) % 10}.{i % 10}" for i in range(count)]
    for i in range(0, count, 17):
        versions[i] = f"{versions[i]}-rc.{i}"
    for i in range(5, count, 41):
        versions[i] = f"build-{i}"
    rng.shuffle(versions)
    return versions


def _populate(fp: FleetPrompt, clock: ManualClock, count: int) -> str:
    fp.operator.ensure_user("bench-pub", display_name="Bench", roles=[Role.PUBLISHER])
    publisher = Call.as_user("bench-pub")
    listing = fp.publishing.create_listing(
        publisher,
        {"assetKind": "whs_agent", "name": "Bench agent", "summary": "s"},
        idempotency_key=secrets.token_hex(8),
    ).value.listing
    for version in _versions(count, random.Random(count)):
        clock.advance(1)
        fp.publishing.publish_release(
            publisher,
            listing.listing_id,
            {"version": version, "refs": {"whsAgentId": "agent-1"}},
            idempotency_key=secrets.token_hex(8),
        )
    fp.publishing.change_status(
        publisher,
        listing.listing_id,
        {"status": "published"},
        idempotency_key=secrets.token_hex(8),
    )
    return listing.listing_id


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    for _ in range(10):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def _measure(name: str, fp: FleetPrompt, listing_id: str, count: int, repeat: int) -> list[Result]:
    rt = fp.runtime

    def baseline() -> object:
        with rt.reader() as uow:
            return uow.releases.list_for_listing(listing_id, False, None, 1)

    def by_precedence() -> object:
        with rt.reader() as uow:
            return latest_release(uow, listing_id)

    operations: list[tuple[str, Callable[[], object]]] = [
        ("baseline: newest by time", baseline),
        ("latest by precedence", by_precedence),
        ("P2 detail", lambda: fp.catalog.listing(listing_id)),
    ]
    results = []
    # Interleave the operations round-robin in slices so drift hits them alike.
    slices = 3
    collected: dict[str, list[tuple[float, float]]] = {op: [] for op, _ in operations}
    for _ in range(slices):
        for op, fn in operations:
            collected[op].append(_time(fn, max(1, repeat // slices)))
    for op, _ in operations:
        medians = [m for m, _ in collected[op]]
        p99s = [p for _, p in collected[op]]
        runs = repeat // slices * slices
        results.append(Result(name, count, op, statistics.median(medians), max(p99s), runs))
        print(
            f"{name:10} R={count:>5} {op:26} median {results[-1].median:7.3f} ms"
            f"  p99 {results[-1].p99:7.3f} ms",
            flush=True,
        )
    return results


@contextmanager
def _database(name: str, postgres_url: str, workdir: Path) -> Iterator[FleetPrompt | None]:
    clock = ManualClock()
    settings = CoreSettings()
    if name == "memory":
        yield bootstrap(store=MemoryStore(), clock=clock, settings=settings, cursor_key=CURSOR_KEY)
        return
    if name == "sqlite":
        engine = sql.create_engine(f"sqlite:///{workdir / secrets.token_hex(4)}.db")
        sql.upgrade(engine)
        try:
            yield sql.bootstrap(engine, clock=clock, settings=settings, cursor_key=CURSOR_KEY)
        finally:
            engine.dispose()
        return
    server = sql.normalize_url(postgres_url)
    database = f"fleetprompt_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
        engine = sql.create_engine(server.set(database=database))
        try:
            sql.upgrade(engine)
            yield sql.bootstrap(engine, clock=clock, settings=settings, cursor_key=CURSOR_KEY)
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        admin.dispose()


def section(results: list[Result], args: argparse.Namespace) -> str:
    lines = [
        SECTION,
        "",
        "`python bench/latest_bench.py"
        f" --releases {args.releases} --databases {args.databases} --repeat {args.repeat}`"
        f" on {platform.machine()}, Python {platform.python_version()}, a shared 2-core"
        " machine under other load (compare rows within one release count only). One"
        " published listing with R releases; the baseline is the previous rule (newest by"
        " publish time, one indexed row) measured in the same run, interleaved with the"
        " others. Milliseconds per call.",
        "",
        "| database | releases | operation | median ms | p99 ms | runs |",
        "|---|---:|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.database} | {r.releases:,} | {r.operation} | {r.median:.3f} | {r.p99:.3f}"
        f" | {r.runs} |"
        for r in results
    ]
    lines += ["", "Median cost of the precedence rule over the baseline, per database:", ""]
    for database in dict.fromkeys(r.database for r in results):
        costs = []
        for count in sorted({r.releases for r in results if r.database == database}):
            row = {
                r.operation: r.median
                for r in results
                if (r.database, r.releases) == (database, count)
            }
            extra = row["latest by precedence"] - row["baseline: newest by time"]
            costs.append(f"{extra:+.3f} ms at {count:,}")
        lines.append(f"- {database}: " + ", ".join(costs) + " releases.")
    lines += [
        "",
        "Parsing is memoised per version string, so what grows with the release count is"
        " reading every published version of the listing; the public response cache"
        " (ADR 0028) answers repeated anonymous detail views without it. A stored precedence"
        " key (ADR 0023, alternatives) is the remedy if listings with thousands of releases"
        " appear.",
    ]
    return "\n".join(lines) + "\n"


def write_docs(text: str) -> None:
    lines = DOCS.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        DOCS.write_text("".join(lines).rstrip("\n") + "\n\n" + text, encoding="utf-8")
        return
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    rest = "".join(lines[end:])
    DOCS.write_text("".join(lines[:start]) + text + ("\n" + rest if rest else ""), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--releases", default="1,20,200,1000")
    parser.add_argument("--databases", default="memory,sqlite,postgresql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite {SECTION!r}")
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.databases.split(","):
            for count in (int(c) for c in args.releases.split(",")):
                with _database(name, args.postgres_url, Path(workdir)) as fp:
                    assert fp is not None
                    clock = fp.runtime.clock
                    assert isinstance(clock, ManualClock)
                    listing_id = _populate(fp, clock, count)
                    results += _measure(name, fp, listing_id, count, args.repeat)
    if args.write_docs:
        write_docs(section(results, args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

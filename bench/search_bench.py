"""Search engines side by side on one corpus (issue 12, ADR 0027).

For each catalogue size N the corpus of ``sql_bench.Catalogue`` (Zipf words:
the commonest in about a third of the listings) is bulk-loaded once into
SQLite and once into PostgreSQL, and indexed once in tantivy. Then every case
is timed, in process, at the port level (a page of 10 ``SearchHit``-like
results, ids and scores, no HTTP):

* ``sql`` — the current SQL plans (``fleetprompt_adapters.sql.search``,
  ADR 0012: our own inverted index, Σ field weights) on SQLite and PostgreSQL;
* ``pg-gin`` — PostgreSQL's own full text search: a ``tsvector`` column
  (``simple`` configuration, name A / labels B / summary C) with a GIN index,
  ``@@ to_tsquery('w:*')`` ranked by ``ts_rank`` (every match is scored);
* ``tantivy`` — ``fleetprompt_adapters.search.tantivy_index.ListingIndex.ranked``
  (BM25, prefix terms, keyset over ``(score, updated, id)``), the engine
  behind the port: what the adapter pays before fetching the page's rows;
* ``tantivy-floor`` — the bare ``Searcher.search(query, 10)`` of the same
  query, without our paging or document reads: the engine's own floor.

Cases: one common word; two common words; the prefixes a person types on the
way to the common word (``a``, ``ag``, ``age``, ``agen``); a common word with
a common tag; a common word with an asset kind; a rare word; and page 500 of
the common word (reached by walking keyset cursors once, then timed).
Usage::

    python bench/search_bench.py [--sizes 10000,100000] [--databases sqlite,postgresql]
        [--repeat 100] [--budget 5] [--slow-budget 20] [--data-dir DIR] [--write-docs]

``--engine-only`` times the engine alone, without any SQL database (ADR 0035): the
corpus is indexed straight from ``sql_bench.Catalogue`` by the current
``ListingIndex`` (``tantivy``) and by the previous design's (``previous``: the
module as it stood at ``--baseline-rev``, read from git), and every case is
timed on both in one run, with each one's bare engine call (``…-floor``)::

    python bench/search_bench.py --engine-only --sizes 10000,100000,1000000 \
        [--baseline-rev b65a5b1] [--data-dir DIR] [--prepare]

``--data-dir`` keeps every loaded corpus (a SQLite file, a PostgreSQL database
``searchperf_<size>``, the tantivy indexes) and reuses it on the next run, so
a 1 000 000-listing load is paid once; without it everything is temporary.
The SQL plans get a per-case budget (``--slow-budget`` seconds, at least three
timed calls): at 1 000 000 listings one of their calls takes seconds.

Numbers are medians and p99s in milliseconds of one run on one machine (shared
with other work: noisy); compare within a run only. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sql_bench as sb

from fleetprompt_adapters import sql
from fleetprompt_adapters.search.follower import INDEX_FORMAT, SearchFollower
from fleetprompt_adapters.search.tantivy_index import (
    IndexedListing,
    ListingIndex,
)
from fleetprompt_adapters.sql.search import search_published
from fleetprompt_core.base.enums import AssetKind, SearchSort, VerificationStatus
from fleetprompt_core.domain.search import ListingSearch, SearchHit, search_terms

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## Search engines (issue 12)"
LIMIT = 10
DEEP_PAGE = 500


@dataclass
class Row:
    size: int
    case: str
    engine: str
    median: float
    p99: float
    hits: int | None = None
    runs: int = 0


def cases(rare: str) -> dict[str, ListingSearch]:
    common = sb.COMMON_TERM
    relevance = SearchSort.RELEVANCE

    def q(text: str, **extra: Any) -> ListingSearch:
        return ListingSearch(terms=search_terms(text), sort=relevance, limit=LIMIT, **extra)

    return {
        "one common word": q(common),
        "two common words": q(sb.TWO_TERMS),
        **{f"prefix '{common[:n]}'": q(common[:n]) for n in (1, 2, 3, 4)},
        "common word + common tag": q(common, tags=(sb.COMMON_TAG,)),
        "common word + asset kind": q(common, asset_kind=AssetKind.SPEC_ASSET),
        "rare word": q(rare),
    }


def _walk_sql(conn: sa.Connection, search: ListingSearch, depth: int) -> ListingSearch:
    """The search positioned after ``depth`` hits (one call of ``depth`` hits: at 1 000 000
    listings every call of the SQL plans scores every match, whatever its limit)."""
    hits = search_published(conn, sa_evolve(search, depth))
    if not hits:
        return search
    last = hits[-1]
    return sa_evolve(
        search, LIMIT, after=(last.score, last.listing.updated_at_ms, last.listing.listing_id)
    )


def sa_evolve(search: ListingSearch, limit: int, **changes: Any) -> ListingSearch:
    return attrs.evolve(search, limit=limit, **changes)


def _walk_tantivy(index: ListingIndex, search: ListingSearch, depth: int) -> ListingSearch:
    position, page = 0, search
    while position < depth:
        step = min(200, depth - position)
        hits = index.ranked(sa_evolve(page, step))
        if not hits:
            break
        position += len(hits)
        page = sa_evolve(search, LIMIT, after=hits[-1].key)
    return page


@dataclass
class Timing:
    median: float
    p99: float
    runs: int


def timed(fn: Callable[[], object], repeat: int, budget: float) -> Timing:
    stats = sb.measure(fn, repeat=repeat, budget_s=budget, warmup=5)
    return Timing(stats.median, stats.p99, stats.runs)


def timed_slow(fn: Callable[[], object], options: argparse.Namespace) -> Timing:
    """The SQL plans: one warm-up, then timed calls until ``--slow-budget`` (at least 3)."""
    stats = sb.measure(
        fn, repeat=options.repeat, budget_s=options.slow_budget, warmup=1, min_runs=3
    )
    return Timing(stats.median, stats.p99, stats.runs)


def row(size: int, case: str, engine: str, timing: Timing, hits: int | None = None) -> Row:
    return Row(size, case, engine, timing.median, timing.p99, hits, timing.runs)


GIN_DDL = (
    "ALTER TABLE listings ADD COLUMN IF NOT EXISTS tsv tsvector",
    """UPDATE listings SET tsv =
        setweight(to_tsvector('simple', name), 'A') ||
        setweight(to_tsvector('simple', array_to_string(
            ARRAY(SELECT jsonb_array_elements_text(tags::jsonb)) ||
            ARRAY(SELECT jsonb_array_elements_text(categories::jsonb)), ' ')), 'B') ||
        setweight(to_tsvector('simple', summary), 'C')""",
    "CREATE INDEX IF NOT EXISTS listings_tsv_gin ON listings USING gin (tsv)",
    "ANALYZE listings",
)


def gin_query(search: ListingSearch) -> tuple[str, dict[str, Any]]:
    tsquery = " & ".join(f"{term}:*" for term in search.terms)
    where = ["status = 'published'", "tsv @@ to_tsquery('simple', :q)"]
    params: dict[str, Any] = {"q": tsquery, "limit": search.limit}
    for n, tag in enumerate(search.tags):
        where.append(f"tags::jsonb ? :tag{n}")
        params[f"tag{n}"] = tag
    if search.asset_kind is not None:
        where.append("asset_kind = :kind")
        params["kind"] = search.asset_kind.value
    # Fixed SQL with bound parameters; only the list of fixed clauses varies.
    text = (
        "SELECT listing_id, ts_rank(tsv, to_tsquery('simple', :q)) AS rank FROM listings "  # noqa: S608
        f"WHERE {' AND '.join(where)} ORDER BY rank DESC, updated_at_ms DESC, listing_id DESC "
        "LIMIT :limit"
    )
    return text, params


LABELS = {10_000: "10k", 100_000: "100k", 1_000_000: "1m"}


def label(size: int) -> str:
    return LABELS.get(size, str(size))


def loaded(url: sa.URL, catalogue: sb.Catalogue, marker: Path | None) -> None:
    """Migrate and bulk-load ``url`` unless ``marker`` says it already holds the corpus."""
    engine = sql.create_engine(url)
    sql.upgrade(engine)  # a kept corpus is brought to the current schema too
    engine.dispose()
    if marker is not None and marker.exists():
        print(f"  reusing the corpus loaded in {url.database} ({marker.name})", flush=True)
        return
    print(f"  loading {catalogue.size:,} listings…", flush=True)
    load = sb.load_sql(url, catalogue)
    print(f"  loaded in {load.total_s:.1f} s", flush=True)
    if marker is not None:
        marker.write_text(
            json.dumps({"listings": load.listings, "seconds": load.total_s}), encoding="utf-8"
        )


@contextlib.contextmanager
def database(
    kind: str, size: int, options: argparse.Namespace, catalogue: sb.Catalogue
) -> Iterator[sa.URL]:
    """A database holding the corpus: kept in ``--data-dir`` (and reused), else temporary."""
    keep: Path | None = options.data_dir
    marker = None if keep is None else keep / f"{kind}_{size}.loaded.json"
    if kind == "sqlite":
        if keep is not None:
            path = keep / f"searchperf_{label(size)}.db"
            if not marker or not marker.exists():
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
            url = sa.make_url(f"sqlite:///{path}")
            loaded(url, catalogue, marker)
            yield url
            return
        path = options.workdir / f"search_bench_{size}_{secrets.token_hex(4)}.db"
        try:
            url = sa.make_url(f"sqlite:///{path}")
            loaded(url, catalogue, None)
            yield url
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    server = sql.normalize_url(options.postgres_url)
    if keep is not None:
        name = f"searchperf_{label(size)}"
    else:
        name = f"fleetprompt_search_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        if marker is None or not marker.exists():
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = server.set(database=name)
            loaded(url, catalogue, marker)
            yield url
        finally:
            if keep is None:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def built_index(
    size: int, catalogue: sb.Catalogue, options: argparse.Namespace
) -> tuple[ListingIndex, str]:
    """The corpus in tantivy (kept in ``--data-dir`` and reused), and the rare word."""
    verified = {
        p.publisher_id
        for p in catalogue.profiles
        if p.verification.status is VerificationStatus.VERIFIED
    }
    keep: Path | None = options.data_dir
    marker = None if keep is None else keep / f"tantivy_{size}.built.json"
    if keep is not None and marker is not None and _current(marker):
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        index = ListingIndex(keep / f"tantivy_{label(size)}")
        print(f"tantivy: reusing {index.size:,} listings ({index.segments} segments)", flush=True)
        return index, str(recorded["rare"])
    if keep is not None:
        shutil.rmtree(keep / f"tantivy_{label(size)}", ignore_errors=True)
    index = ListingIndex(None if keep is None else keep / f"tantivy_{label(size)}")
    start = time.perf_counter()
    indexed = index.rebuild(
        IndexedListing(item, item.publisher_user_id in verified)
        for listings, _ in catalogue.batches()
        for item in listings
    )
    seconds = time.perf_counter() - start
    print(
        f"tantivy: indexed {indexed:,} listings in {seconds:.1f} s ({index.segments} segments)",
        flush=True,
    )
    rare = catalogue.rare_term()
    if marker is not None:
        _index_built(marker, size, indexed, rare, seconds)
    return index, rare


def _current(marker: Path) -> bool:
    """Whether ``marker`` records an index built in today's format (another is rebuilt)."""
    if not marker.exists():
        return False
    return bool(json.loads(marker.read_text(encoding="utf-8")).get("format") == INDEX_FORMAT)


def _index_built(marker: Path, size: int, indexed: int, rare: str, seconds: float) -> None:
    """Record a built index; the followers seeded from an older one are dropped."""
    for slot in marker.parent.glob(f"follower_*_{label(size)}"):
        shutil.rmtree(slot, ignore_errors=True)
    record = {"listings": indexed, "rare": rare, "seconds": seconds, "format": INDEX_FORMAT}
    marker.write_text(json.dumps(record), encoding="utf-8")


def run_size(size: int, options: argparse.Namespace, rows: list[Row]) -> None:
    catalogue = sb.Catalogue(size)
    if options.prepare:
        prepare(size, options, catalogue)
        return
    index, rare = built_index(size, catalogue, options)
    searches = cases(rare)
    if options.store_only:
        run_store_only(size, options, catalogue, (index, searches), rows)
        return
    common = searches["one common word"]
    deep_tantivy = _walk_tantivy(index, common, (DEEP_PAGE - 1) * LIMIT)
    for case, search in searches.items():
        hits = index.count(search)
        timing = timed(lambda s=search: index.ranked(s), options.repeat, options.budget)
        rows.append(row(size, case, "tantivy", timing, hits))
        query = index.query(search)
        searcher = index._view.searcher
        timing = timed(
            lambda q=query, s=searcher: s.search(q, limit=LIMIT, count=False),
            options.repeat,
            options.budget,
        )
        rows.append(row(size, case, "tantivy-floor", timing, hits))
    timing = timed(lambda: index.ranked(deep_tantivy), options.repeat, options.budget)
    rows.append(row(size, f"one common word, page {DEEP_PAGE}", "tantivy", timing))
    index.close()
    for kind in options.databases:
        with database(kind, size, options, catalogue) as url:
            engine = sql.create_engine(url)
            try:
                with engine.connect() as conn:
                    for case, search in searches.items():
                        timing = timed_slow(lambda s=search: search_published(conn, s), options)
                        rows.append(row(size, case, f"sql ({kind})", timing))
                        print(f"  {case}: {timing.median:.2f} ms ({timing.runs})", flush=True)
                    deep = _walk_sql(conn, common, (DEEP_PAGE - 1) * LIMIT)
                    timing = timed_slow(lambda d=deep: search_published(conn, d), options)
                    deep_case = f"one common word, page {DEEP_PAGE}"
                    rows.append(row(size, deep_case, f"sql ({kind})", timing))
                    if kind == "postgresql" and options.gin:
                        print("  building tsvector + GIN…", flush=True)
                        built = conn.exec_driver_sql(
                            "SELECT 1 FROM pg_indexes WHERE indexname = 'listings_tsv_gin'"
                        ).first()
                        for statement in () if built else GIN_DDL:
                            conn.exec_driver_sql(statement)
                        conn.commit()
                        for case, search in searches.items():
                            text, params = gin_query(search)
                            statement = sa.text(text)
                            timing = timed_slow(
                                lambda st=statement, p=params: conn.execute(st, p).all(), options
                            )
                            rows.append(row(size, case, "pg-gin ts_rank", timing))
                rows += run_store(engine, kind, searches, options, size)
            finally:
                engine.dispose()


def run_store_only(
    size: int,
    options: argparse.Namespace,
    catalogue: sb.Catalogue,
    built: tuple[ListingIndex, dict[str, ListingSearch]],
    rows: list[Row],
) -> None:
    """``--store-only``: the whole adapter path with the engine on each kept database."""
    index, searches = built
    counts = {case: index.count(search) for case, search in searches.items()}
    index.close()
    for kind in options.databases:
        with database(kind, size, options, catalogue) as url:
            engine = sql.create_engine(url)
            try:
                found = run_store(engine, kind, searches, options, size)
            finally:
                engine.dispose()
        rows += [dataclasses.replace(r, hits=counts.get(r.case)) for r in found]


def seed_follower(slot: Path, built: Path) -> None:
    """Start a follower's directory from the corpus's own index (the same listings and
    verified publishers as the database holds), at the log position of a bulk load
    (no log): the follower then only checks the log instead of reading every row
    again, which at 1 000 000 listings takes longer than the session on this machine."""
    if slot.exists() or not (built / "meta.json").exists():
        return
    shutil.copytree(built, slot / "tantivy")
    state = {"format": INDEX_FORMAT, "epoch": None, "applied": 0}
    (slot / "fleetprompt-index.json").write_text(json.dumps(state), encoding="utf-8")


def _fresh_sqlite(keep: Path, size: int) -> sa.URL:
    path = keep / f"searchperf_{label(size)}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return sa.make_url(f"sqlite:///{path}")


def _fresh_postgres(options: argparse.Namespace, size: int) -> sa.URL:
    server = sql.normalize_url(options.postgres_url)
    name = f"searchperf_{label(size)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return server.set(database=name)


def load_once(size: int, options: argparse.Namespace, catalogue: sb.Catalogue) -> None:
    """Load every database of ``--databases`` whose kept corpus is missing, and build the
    tantivy index if it is missing or of another format, in **one pass** over the
    catalogue: each batch is generated and mapped to rows once, written to each database
    (secondary indexes dropped during the load and built after it, see
    ``sql_bench.bulk_load``) and added to the index."""
    keep: Path = options.data_dir
    urls: list[sa.URL] = []
    markers: list[Path] = []
    for kind in options.databases:
        marker = keep / f"{kind}_{size}.loaded.json"
        if marker.exists():
            print(f"{kind}: reusing the corpus of {size:,} listings ({marker.name})", flush=True)
            continue
        url = _fresh_sqlite(keep, size) if kind == "sqlite" else _fresh_postgres(options, size)
        engine = sql.create_engine(url)
        sql.upgrade(engine)
        engine.dispose()
        urls.append(url)
        markers.append(marker)
        # A follower seeded from another load of this database is stale.
        shutil.rmtree(keep / f"follower_{kind}_{label(size)}", ignore_errors=True)
    index_marker = keep / f"tantivy_{size}.built.json"
    build = not _current(index_marker)
    if not urls and not build:
        return
    what = [*(url.get_backend_name() for url in urls), *(["tantivy"] if build else [])]
    print(f"{size:,} listings: one pass into {', '.join(what)}…", flush=True)
    verified = {
        p.publisher_id
        for p in catalogue.profiles
        if p.verification.status is VerificationStatus.VERIFIED
    }
    start = time.perf_counter()
    batches: Iterator[list[Any]] = (
        sb.bulk_load(urls, catalogue) if urls else (b for b, _ in catalogue.batches())
    )
    if build:
        directory = keep / f"tantivy_{label(size)}"
        shutil.rmtree(directory, ignore_errors=True)
        index = ListingIndex(directory)
        indexed = index.rebuild(
            IndexedListing(item, item.publisher_user_id in verified)
            for listings in batches
            for item in listings
        )
        index_s = time.perf_counter() - start
        print(f"  tantivy: {indexed:,} listings ({index.segments} segments)", flush=True)
        index.close()
        _index_built(index_marker, size, indexed, catalogue.rare_term(), index_s)
    else:
        for _ in batches:
            pass
    total = time.perf_counter() - start
    for url, marker, load in zip(urls, markers, catalogue.loads, strict=True):
        print(
            f"  {url.get_backend_name()}: {load.rows:,} rows, written in {load.insert_s:.1f} s "
            f"(indexes included), analyzed in {load.analyze_s:.1f} s",
            flush=True,
        )
        marker.write_text(
            json.dumps({"listings": load.listings, "rows": load.rows, "seconds": total}),
            encoding="utf-8",
        )
    print(f"  the pass took {total:.1f} s", flush=True)


def prepare(size: int, options: argparse.Namespace, catalogue: sb.Catalogue) -> None:
    """``--prepare``: load and index everything a measured run reuses, time nothing (run
    it niced; the measured run then starts from the kept corpora)."""
    load_once(size, options, catalogue)
    for kind in options.databases:
        with database(kind, size, options, catalogue) as url:
            engine = sql.create_engine(url)
            try:
                if kind == "postgresql" and options.gin:
                    with engine.connect() as conn:
                        built = conn.exec_driver_sql(
                            "SELECT 1 FROM pg_indexes WHERE indexname = 'listings_tsv_gin'"
                        ).first()
                        print("  building tsvector + GIN…", flush=True)
                        for statement in () if built else GIN_DDL:
                            conn.exec_driver_sql(statement)
                        conn.commit()
                keep: Path = options.data_dir
                slot = keep / f"follower_{kind}_{label(size)}"
                seed_follower(slot, keep / f"tantivy_{label(size)}")
                follower = SearchFollower(slot)
                start = time.perf_counter()
                with sql.SqlStore(engine).read_unit_of_work() as uow:
                    follower.catch_up(uow.connection)
                print(
                    f"  follower of {kind}: {follower.index.size:,} listings, "
                    f"{follower.index.segments} segments, {time.perf_counter() - start:.1f} s",
                    flush=True,
                )
                follower.close()
            finally:
                engine.dispose()


def run_store(
    engine: sa.Engine,
    kind: str,
    searches: dict[str, ListingSearch],
    options: argparse.Namespace,
    size: int,
) -> list[Row]:
    """The whole adapter path with the engine: a read unit of work per search (connection,
    log head, ranking, the page's rows), beside the same path on the SQL plans."""
    keep: Path | None = options.data_dir
    follower = SearchFollower(None if keep is None else keep / f"follower_{kind}_{label(size)}")
    store = sql.SqlStore(engine, search_engine=follower)
    start = time.perf_counter()
    with store.read_unit_of_work() as uow:
        follower.catch_up(uow.connection)
    print(
        f"  follower of {kind} ready in {time.perf_counter() - start:.1f} s "
        f"({follower.index.size:,} listings, {follower.index.segments} segments)",
        flush=True,
    )
    plain = sql.SqlStore(engine)

    def page(on: sql.SqlStore, search: ListingSearch) -> list[SearchHit]:
        with on.read_unit_of_work() as uow:
            return list(uow.listings.search_published(search))

    found: list[Row] = []
    column = f"store+tantivy ({kind}){options.tag}"
    for case, search in searches.items():
        timing = timed(lambda s=search: page(store, s), options.repeat, options.budget)
        found.append(row(size, case, column, timing))
        print(f"  {column} | {case}: {timing.median:.2f} / {timing.p99:.2f} ms", flush=True)
        if not options.store_only:
            timing = timed_slow(lambda s=search: page(plain, s), options)
            found.append(row(size, case, f"store+sql ({kind})", timing))
    position, search = 0, searches["one common word"]
    while position < (DEEP_PAGE - 1) * LIMIT:
        hits = page(store, attrs.evolve(search, limit=200))
        if not hits:
            break
        position += len(hits)
        last = hits[-1]
        search = attrs.evolve(
            search, after=(last.score, last.listing.updated_at_ms, last.listing.listing_id)
        )
    timing = timed(lambda: page(store, search), options.repeat, options.budget)
    found.append(row(size, f"one common word, page {DEEP_PAGE}", column, timing))
    follower.close()
    return found


def table(rows: list[Row]) -> list[str]:
    engines = list(dict.fromkeys(row.engine for row in rows))
    lines = [
        "| N | case | matches | " + " | ".join(engines) + " |",
        "|---|---|---:|" + "---:|" * len(engines),
    ]
    keyed: dict[tuple[int, str], dict[str, Row]] = {}
    for row in rows:
        keyed.setdefault((row.size, row.case), {})[row.engine] = row
    for (size, case), by_engine in keyed.items():
        hits = next((r.hits for r in by_engine.values() if r.hits is not None), None)
        cells = [cell(by_engine[e]) if e in by_engine else "–" for e in engines]
        lines.append(
            f"| {size:,} | {case} | {'' if hits is None else f'{hits:,}'} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def cell(found: Row) -> str:
    """``median / p99``, with the number of timed calls when it was cut short (``(n=3)``)."""
    text = f"{found.median:.2f} / {found.p99:.2f}"
    return text if found.runs >= 20 or not found.runs else f"{text} (n={found.runs})"


#: The last commit with the previous query shape (three boosted fields per word, filters
#: as constant-score clauses): ``--engine-only`` measures it beside the current one.
BASELINE_REV = "b65a5b1"


def previous_design(rev: str) -> Any:
    """The ``tantivy_index`` module as it stood at ``rev`` (read from git, imported apart)."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(  # noqa: S603 - a fixed git command; rev names a revision
        ["git", "show", f"{rev}:src/fleetprompt_adapters/search/tantivy_index.py"],  # noqa: S607
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="search_bench_")) / f"tantivy_index_{rev}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"tantivy_index_{rev}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def engine_index(
    name: str, factory: Callable[[Path | None], Any], size: int, options: argparse.Namespace
) -> tuple[Any, str]:
    """The corpus indexed by ``factory`` straight from the catalogue (no database), kept
    in ``--data-dir`` as ``engine_<name>_<size>`` and reused; and the rare word."""
    keep: Path | None = options.data_dir
    where = None if keep is None else keep / f"engine_{name}_{label(size)}"
    marker = None if keep is None else keep / f"engine_{name}_{size}.built.json"
    if where is not None and marker is not None and marker.exists():
        index = factory(where)
        print(f"{name}: reusing {index.size:,} listings ({index.segments} segments)", flush=True)
        return index, str(json.loads(marker.read_text(encoding="utf-8"))["rare"])
    if where is not None:
        shutil.rmtree(where, ignore_errors=True)
    catalogue = sb.Catalogue(size)
    verified = {
        p.publisher_id
        for p in catalogue.profiles
        if p.verification.status is VerificationStatus.VERIFIED
    }
    index = factory(where)
    start = time.perf_counter()
    indexed = index.rebuild(
        IndexedListing(item, item.publisher_user_id in verified)
        for listings, _ in catalogue.batches()
        for item in listings
    )
    seconds = time.perf_counter() - start
    print(f"{name}: indexed {indexed:,} listings in {seconds:.1f} s", flush=True)
    rare = catalogue.rare_term()
    if marker is not None:
        marker.write_text(json.dumps({"listings": indexed, "rare": rare, "seconds": seconds}))
    return index, rare


def run_engine_only(size: int, options: argparse.Namespace, rows: list[Row]) -> None:
    """``--engine-only``: every case on the previous design's index and on the current one,
    from the same catalogue, in one run (each index's own paging, and its bare engine call)."""
    previous = previous_design(options.baseline_rev)
    built = [
        (
            f"previous ({options.baseline_rev})",
            engine_index(f"previous-{options.baseline_rev}", previous.ListingIndex, size, options),
        ),
        ("tantivy", engine_index(INDEX_FORMAT, ListingIndex, size, options)),
    ]
    if options.prepare:
        for _, (index, _) in built:
            index.close()
        return
    for engine, (index, rare) in built:
        searches = cases(rare)
        for case, search in searches.items():
            hits = index.count(search)
            timing = timed(lambda s=search, i=index: i.ranked(s), options.repeat, options.budget)
            rows.append(row(size, case, engine, timing, hits))
            query, searcher = index.query(search), index._view.searcher
            timing = timed(
                lambda q=query, s=searcher: s.search(q, limit=LIMIT, count=False),
                options.repeat,
                options.budget,
            )
            rows.append(row(size, case, f"{engine} floor", timing, hits))
            print(f"  {engine} | {case}: {rows[-2].median:.2f} / {rows[-2].p99:.2f} ms", flush=True)
        deep = _walk_tantivy(index, searches["one common word"], (DEEP_PAGE - 1) * LIMIT)
        timing = timed(lambda d=deep, i=index: i.ranked(d), options.repeat, options.budget)
        rows.append(row(size, f"one common word, page {DEEP_PAGE}", engine, timing))
        index.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=sb.DEFAULT_POSTGRES_URL)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--budget", type=float, default=5.0)
    parser.add_argument(
        "--slow-budget",
        type=float,
        default=20.0,
        help="Seconds of timed calls per case for the SQL plans (at least 3 calls).",
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Keep the loaded corpora (SQLite file, PostgreSQL database searchperf_<size>, "
        "tantivy indexes) here and reuse them on the next run.",
    )
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="With --data-dir: load and index every corpus, measure nothing (run it niced).",
    )
    parser.add_argument(
        "--no-gin", dest="gin", action="store_false", help="Skip the PostgreSQL GIN column."
    )
    parser.add_argument(
        "--engine-only",
        action="store_true",
        help="Time the engine alone (no database): the previous design's index beside the "
        "current one, both built straight from the catalogue.",
    )
    parser.add_argument(
        "--baseline-rev",
        default=BASELINE_REV,
        help="With --engine-only: the git revision whose tantivy_index is the previous design.",
    )
    parser.add_argument(
        "--store-only",
        action="store_true",
        help="Time only the whole adapter path with the engine (store+tantivy) on the kept "
        "corpora: for a change measured against a baseline tree run back to back (the "
        "tree under test is the one on PYTHONPATH).",
    )
    parser.add_argument(
        "--tag",
        default="",
        help="Appended to the store+tantivy column's name (e.g. ' before b912ae0'), so "
        "runs of two trees land side by side in one --results table.",
    )
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="Add this run's rows to a JSON file (replacing rows of the same size, case and "
        "column) and write the docs from every row in it: one table from several shorter "
        "runs (e.g. one per size and database).",
    )
    parser.add_argument(
        "--section",
        default=SECTION,
        help="The docs/benchmarks.md heading to (re)write (a run of other sizes or engines "
        "can keep its own section).",
    )
    options = parser.parse_args()
    options.databases = [d for d in options.databases.split(",") if d]
    if options.data_dir is not None:
        options.data_dir.mkdir(parents=True, exist_ok=True)
    elif options.prepare:
        parser.error("--prepare needs --data-dir")
    rows: list[Row] = []
    run = {
        "command": "python bench/search_bench.py "
        + " ".join(a for a in sys.argv[1:] if a != "--write-docs"),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": ", ".join(f"{v:.1f}" for v in os.getloadavg()),
    }
    for size in (int(s) for s in options.sizes.split(",")):
        (run_engine_only if options.engine_only else run_size)(size, options, rows)
        if options.prepare:
            continue
        print("\n".join(table([r for r in rows if r.size == size])), flush=True)
        run["load_after"] = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        shown, runs = rows, [run]
        if options.results is not None:
            shown, runs = recorded(options.results, rows, run)
        if options.write_docs:  # after every size: a long run keeps what it measured
            sb_write(section(shown, options.section, runs), options.section)
    if not options.prepare:
        print("\n".join(table(rows)))


def recorded(
    path: Path, rows: list[Row], run: dict[str, str]
) -> tuple[list[Row], list[dict[str, str]]]:
    """Merge ``rows`` into the results file at ``path``; every row and run it now holds."""
    kept: dict[str, Any] = {"rows": [], "runs": []}
    if path.exists():
        kept = json.loads(path.read_text(encoding="utf-8"))
    fresh = {(r.size, r.case, r.engine) for r in rows}
    merged = [Row(**r) for r in kept["rows"] if (r["size"], r["case"], r["engine"]) not in fresh]
    merged += rows
    merged.sort(key=lambda r: r.size)  # stable: each size's cases stay in their order
    runs = [
        r for r in kept["runs"] if r["started"] != run["started"] or r["command"] != run["command"]
    ]
    runs.append(run)
    path.write_text(
        json.dumps({"rows": [vars(r) for r in merged], "runs": runs}, indent=1), encoding="utf-8"
    )
    return merged, runs


def section(rows: list[Row], heading: str, runs: list[dict[str, str]]) -> str:
    commands = "; ".join(
        f"`{r['command']}` ({r['started']}, load average {r['load_before']} before, "
        f"{r.get('load_after', '?')} after)"
        for r in runs
    )
    return "\n".join(
        [
            heading,
            "",
            f"Runs: {commands}. In process, top 10; each cell is median / p99 in ms; the "
            "columns of one database at one size come from one run on one corpus (the "
            "baseline is the previous design: `sql (…)` the SQL plans called on an open "
            "connection, `store+sql (…)` the same through a read unit of work). "
            "`tantivy` is the index's own paging (ids and scores), `tantivy-floor` the bare "
            "engine call, `store+tantivy (…)` the whole adapter path with the engine (a read "
            "unit of work: connection, log head, ranking, the page's rows). "
            f"Python {platform.python_version()}, {platform.machine()}, 2 cores shared with "
            "four other engineers' work: noisy, p99s especially. The corpora are loaded "
            "beforehand, niced: `python bench/search_bench.py --sizes 10000,100000,1000000 "
            "--data-dir DIR --prepare` (one pass per size into both databases and tantivy).",
            "",
            *table(rows),
            "",
        ]
    )


def sb_write(text: str, heading: str) -> None:
    lines = DOCS.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        DOCS.write_text("".join(lines).rstrip("\n") + "\n\n" + text, encoding="utf-8")
        return
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    rest = "".join(lines[end:])
    DOCS.write_text("".join(lines[:start]) + text + ("\n" + rest if rest else ""), encoding="utf-8")


if __name__ == "__main__":
    main()

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
        [--repeat 100] [--budget 5] [--write-docs]

Numbers are medians and p99s in milliseconds of one run on one machine (shared
with other work: noisy); compare within a run only. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import secrets
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
from fleetprompt_adapters.search.follower import SearchFollower
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
    """The search positioned after ``depth`` hits (walked in pages of 200)."""
    position, page = 0, search
    while position < depth:
        step = min(200, depth - position)
        hits = search_published(conn, sa_evolve(page, step))
        if not hits:
            break
        position += len(hits)
        last = hits[-1]
        page = sa_evolve(
            search, LIMIT, after=(last.score, last.listing.updated_at_ms, last.listing.listing_id)
        )
    return page


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


def timed(fn: Callable[[], object], repeat: int, budget: float) -> tuple[float, float]:
    stats = sb.measure(fn, repeat=repeat, budget_s=budget, warmup=5)
    return stats.median, stats.p99


GIN_DDL = (
    "ALTER TABLE listings ADD COLUMN tsv tsvector",
    """UPDATE listings SET tsv =
        setweight(to_tsvector('simple', name), 'A') ||
        setweight(to_tsvector('simple', array_to_string(
            ARRAY(SELECT jsonb_array_elements_text(tags::jsonb)) ||
            ARRAY(SELECT jsonb_array_elements_text(categories::jsonb)), ' ')), 'B') ||
        setweight(to_tsvector('simple', summary), 'C')""",
    "CREATE INDEX listings_tsv_gin ON listings USING gin (tsv)",
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


@contextlib.contextmanager
def database(kind: str, size: int, workdir: Path, postgres_url: str) -> Iterator[sa.URL]:
    if kind == "sqlite":
        path = workdir / f"search_bench_{size}_{secrets.token_hex(4)}.db"
        try:
            yield sa.make_url(f"sqlite:///{path}")
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    server = sql.normalize_url(postgres_url)
    name = f"fleetprompt_search_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def run_size(size: int, options: argparse.Namespace, rows: list[Row]) -> None:
    catalogue = sb.Catalogue(size)
    verified = {
        p.publisher_id
        for p in catalogue.profiles
        if p.verification.status is VerificationStatus.VERIFIED
    }
    index = ListingIndex()
    start = time.perf_counter()
    indexed = index.rebuild(
        IndexedListing(item, item.publisher_user_id in verified)
        for listings, _ in catalogue.batches()
        for item in listings
    )
    print(f"tantivy: indexed {indexed:,} listings in {time.perf_counter() - start:.1f} s")
    searches = cases(catalogue.rare_term())
    common = searches["one common word"]
    deep_tantivy = _walk_tantivy(index, common, (DEEP_PAGE - 1) * LIMIT)
    for case, search in searches.items():
        hits = index.count(search)
        median, p99 = timed(lambda s=search: index.ranked(s), options.repeat, options.budget)
        rows.append(Row(size, case, "tantivy", median, p99, hits))
        query = index.query(search)
        searcher = index._index.searcher()
        median, p99 = timed(
            lambda q=query, s=searcher: s.search(q, limit=LIMIT, count=False),
            options.repeat,
            options.budget,
        )
        rows.append(Row(size, case, "tantivy-floor", median, p99, hits))
    median, p99 = timed(lambda: index.ranked(deep_tantivy), options.repeat, options.budget)
    rows.append(Row(size, f"one common word, page {DEEP_PAGE}", "tantivy", median, p99))
    for kind in options.databases:
        with database(kind, size, options.workdir, options.postgres_url) as url:
            engine = sql.create_engine(url)
            sql.upgrade(engine)
            engine.dispose()
            print(f"{kind}: loading {size:,} listings…", flush=True)
            load = sb.load_sql(url, catalogue)
            print(f"  loaded in {load.total_s:.1f} s", flush=True)
            engine = sql.create_engine(url)
            try:
                with engine.connect() as conn:
                    for case, search in searches.items():
                        median, p99 = timed(
                            lambda s=search: search_published(conn, s),
                            options.repeat,
                            options.budget,
                        )
                        rows.append(Row(size, case, f"sql ({kind})", median, p99))
                        print(f"  {case}: {median:.2f} ms", flush=True)
                    deep = _walk_sql(conn, common, (DEEP_PAGE - 1) * LIMIT)
                    median, p99 = timed(
                        lambda d=deep: search_published(conn, d), options.repeat, options.budget
                    )
                    deep_case = f"one common word, page {DEEP_PAGE}"
                    rows.append(Row(size, deep_case, f"sql ({kind})", median, p99))
                    if kind == "postgresql":
                        print("  building tsvector + GIN…", flush=True)
                        for statement in GIN_DDL:
                            conn.exec_driver_sql(statement)
                        conn.commit()
                        for case, search in searches.items():
                            text, params = gin_query(search)
                            statement = sa.text(text)
                            median, p99 = timed(
                                lambda st=statement, p=params: conn.execute(st, p).all(),
                                options.repeat,
                                options.budget,
                            )
                            rows.append(Row(size, case, "pg-gin ts_rank", median, p99))
                rows += run_store(engine, kind, searches, options, size)
            finally:
                engine.dispose()
    index.close()


def run_store(
    engine: sa.Engine,
    kind: str,
    searches: dict[str, ListingSearch],
    options: argparse.Namespace,
    size: int,
) -> list[Row]:
    """The whole adapter path with the engine: a read unit of work per search (connection,
    log head, ranking, the page's rows), beside the same path on the SQL plans."""
    follower = SearchFollower()
    store = sql.SqlStore(engine, search_engine=follower)
    start = time.perf_counter()
    with store.read_unit_of_work() as uow:
        follower.catch_up(uow.connection)
    print(f"  follower built from {kind} in {time.perf_counter() - start:.1f} s", flush=True)
    plain = sql.SqlStore(engine)

    def page(on: sql.SqlStore, search: ListingSearch) -> list[SearchHit]:
        with on.read_unit_of_work() as uow:
            return list(uow.listings.search_published(search))

    found: list[Row] = []
    for case, search in searches.items():
        for name, on in ((f"store+tantivy ({kind})", store), (f"store+sql ({kind})", plain)):
            median, p99 = timed(lambda o=on, s=search: page(o, s), options.repeat, options.budget)
            found.append(Row(size, case, name, median, p99))
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
    median, p99 = timed(lambda: page(store, search), options.repeat, options.budget)
    found.append(
        Row(size, f"one common word, page {DEEP_PAGE}", f"store+tantivy ({kind})", median, p99)
    )
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
        cells = [
            f"{by_engine[e].median:.2f} / {by_engine[e].p99:.2f}" if e in by_engine else "–"
            for e in engines
        ]
        lines.append(
            f"| {size:,} | {case} | {'' if hits is None else f'{hits:,}'} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=sb.DEFAULT_POSTGRES_URL)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--budget", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--section",
        default=SECTION,
        help="The docs/benchmarks.md heading to (re)write (a run of other sizes or engines "
        "can keep its own section).",
    )
    options = parser.parse_args()
    options.databases = [d for d in options.databases.split(",") if d]
    rows: list[Row] = []
    for size in (int(s) for s in options.sizes.split(",")):
        run_size(size, options, rows)
        print("\n".join(table([r for r in rows if r.size == size])), flush=True)
        if options.write_docs:  # after every size: a long run keeps what it measured
            sb_write(section(rows, options.section), options.section)
    print("\n".join(table(rows)))


def section(rows: list[Row], heading: str) -> str:
    arguments = " ".join(a for a in sys.argv[1:] if a != "--write-docs")
    return "\n".join(
        [
            heading,
            "",
            f"`python bench/search_bench.py {arguments}`, in process, top 10; each cell is "
            "median / p99 in ms, every column from the same run on the same corpus (the "
            "baseline is the current design: `sql (…)` the SQL plans called on an open "
            "connection, `store+sql (…)` the same through a read unit of work). "
            "`tantivy` is the index's own paging (ids and scores), `tantivy-floor` the bare "
            "engine call, `store+tantivy (…)` the whole adapter path with the engine (a read "
            "unit of work: connection, log head, ranking, the page's rows). "
            f"Python {platform.python_version()}, {platform.machine()}, 2 cores shared with "
            "seven other engineers' work: noisy, p99s especially.",
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

"""Latency of the use cases over the SQL adapter (SQLite and PostgreSQL), large catalogues.

For each database and each catalogue size N: bulk-load N published listings
(a few publishers with profiles, releases for some listings) straight into the
tables, with the rows the repository itself writes (``mapping.listing_row``,
``label_rows``, ``term_rows``, ``release_row``), ANALYZE, then time the use
cases through the application: searches (first page and page 500), listing
detail and three write paths. The in-memory adapter, loaded with the same
listings for the smallest N only (its search is a linear scan), gives a
baseline. Usage::

    python bench/sql_bench.py [--sizes 10000,100000] [--databases sqlite,postgresql]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] [--workdir DIR]
        [--repeat 200] [--budget 10] [--write-seconds 2] [--explain] [--write-docs]

The catalogue is generated from a seeded ``random.Random``: names of 2–4 and
summaries of 8–16 words from a 20 000-word vocabulary with a Zipf–Mandelbrot
frequency (the commonest word is in about a third of the listings, most words
in a handful), 1–5 tags and 1–2 categories (also Zipf-like), the three asset
kinds, distinct creation and update times. PostgreSQL gets its own database
``fleetprompt_bench_<random>`` per size, dropped at the end even on error;
SQLite a file under ``--workdir`` (a temporary directory by default).

A page deeper than the first is reached once by walking the cursor (in pages
of 200, the largest allowed, which lands on the same keyset position as 499
pages of 50); then that page is fetched repeatedly. When a query has fewer
than 500 pages, its last page is used and the table says which.

``--explain`` prints the plan of every SELECT each search runs
(``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN`` on PostgreSQL), captured with a
``before_cursor_execute`` listener. ``--write-docs`` rewrites the
``## SQL adapter`` section of ``docs/benchmarks.md``.

Numbers are for comparison within one run on one machine; they are never
asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import itertools
import json
import operator
import os
import platform
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from fleetprompt_adapters import memory, sql
from fleetprompt_adapters.sql import mapping as m
from fleetprompt_adapters.sql import tables as t
from fleetprompt_adapters.sql.engine import is_sqlite
from fleetprompt_core import Call, FleetPrompt
from fleetprompt_core.base.enums import (
    ArtifactKind,
    AssetKind,
    ListingStatus,
    ReleaseStatus,
    Role,
    VerificationStatus,
)
from fleetprompt_core.domain.model import (
    Artifact,
    ArtifactDownload,
    Compat,
    Image,
    Links,
    Listing,
    Moderation,
    PublisherProfile,
    Release,
    ReleaseRefs,
    User,
    Verification,
)
from fleetprompt_core.policies.markdown import rendered

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## SQL adapter"
CURSOR_KEY = b"bench-cursor-key-0123456789abcdef"
SEED = 20_240_601
PAGE = 50
DEEP_PAGE = 500
BATCH = 5_000  # listings per insert transaction
MEMORY_MAX = 100_000  # the in-memory baseline scans every listing per search

T0_MS = 1_672_531_200_000  # 2023-01-01: every loaded timestamp lies in the past
STEP_MS = 10_000  # one listing created per 10 s window
DAY_MS = 86_400_000

# --------------------------------------------------------------------------- vocabulary


def _words(text: str) -> list[str]:
    return text.split()


HEAD_WORDS = _words(
    "agent data support workflow email customer sales report automation ticket slack summary "
    "lead invoice calendar meeting research document crm triage router billing onboarding "
    "compliance audit scraper notes pipeline deploy monitor alert incident contract review "
    "hiring payroll expense inventory order shipping refund chat voice translation knowledge "
    "search code security privacy schedule forecast dashboard survey feedback content social "
    "campaign analytics insights assistant"
)
TAG_HEAD = _words(
    "support sales productivity automation email crm analytics finance marketing devops "
    "security hr legal research writing slack gmail notion github jira salesforce hubspot "
    "zendesk shopify stripe openai llm rag summarization classification extraction translation "
    "scheduling reporting monitoring compliance onboarding recruiting customer-success data-entry"
)
CATEGORIES = _words(
    "operations sales marketing engineering customer-service finance human-resources legal it "
    "data product design research education healthcare real-estate ecommerce security personal "
    "other"
)
VOCABULARY_SIZE = 20_000
TAG_VOCABULARY_SIZE = 400
PUBLISHERS = 25
PROFILES = 20  # the last publishers have no profile (the default profile is shown)
IMAGE_HOST = "img.example.com"

DESCRIPTION_SOURCES = (
    "# Overview\n\nThis agent **automates** the boring part of the job.\n\n"
    "- reads the inbox\n- files tickets\n- reports daily\n\n"
    "See [the docs](https://docs.example.com/agent) for setup.",
    "## What it does\n\nTriage, routing and a *weekly* summary.\n\n"
    "1. Connect your workspace\n2. Pick a queue\n3. Done\n\n> Works with every plan.",
    "A workflow that keeps your CRM clean: deduplicates leads, enriches contacts and "
    "flags stale deals.\n\n```\nschedule: hourly\n```",
    "# Spec\n\nA specification asset describing inputs, outputs and limits.\n\n"
    "| field | type |\n|---|---|\n| id | string |\n\nVersioned and immutable.",
    "Short description with a link to https://example.com and `inline code`.",
    "## Setup\n\nInstall, authorise, run. Questions: open an issue on "
    "[GitHub](https://github.com/example/agent).\n\n---\n\nMIT licensed.",
)


def _synthetic_words(count: int, avoid: Sequence[str], seed: int) -> list[str]:
    """Pronounceable 3-syllable words: all of one length, so none prefixes another."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    rng = random.Random(seed)
    words: dict[str, None] = {}
    while len(words) < count:
        word = "".join(rng.choice(syllables) for _ in range(3))
        if any(word.startswith(a) or a.startswith(word) for a in avoid):
            continue
        words.setdefault(word, None)
    return list(words)


def _zipf(count: int, offset: float, exponent: float = 1.0) -> list[float]:
    """Cumulative Zipf–Mandelbrot weights ``1 / (rank + offset) ** exponent``."""
    return list(
        itertools.accumulate(1 / (rank + offset) ** exponent for rank in range(1, count + 1))
    )


_TAIL = _synthetic_words(
    VOCABULARY_SIZE - len(HEAD_WORDS) + TAG_VOCABULARY_SIZE - len(TAG_HEAD),
    [*HEAD_WORDS, *TAG_HEAD],
    seed=99,
)
VOCABULARY = [*HEAD_WORDS, *_TAIL[: VOCABULARY_SIZE - len(HEAD_WORDS)]]
TAGS = [*TAG_HEAD, *_TAIL[VOCABULARY_SIZE - len(HEAD_WORDS) :]]
_WORD_CW = _zipf(len(VOCABULARY), offset=3.0)
_TAG_CW = _zipf(len(TAGS), offset=1.5)
_CATEGORY_CW = _zipf(len(CATEGORIES), offset=1.0)
_PUBLISHER_CW = _zipf(PUBLISHERS, offset=1.0)
_KINDS = (AssetKind.WHS_AGENT, AssetKind.AGENTROMATIC_WORKFLOW, AssetKind.SPEC_ASSET)
_KIND_CW = (5, 8, 10)  # 50 % agents, 30 % workflows, 20 % spec assets
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

#: The queries (the rare term is picked from the data, see ``Catalogue.rare_term``).
COMMON_TERM = HEAD_WORDS[0]
TWO_TERMS = f"{HEAD_WORDS[1]} {HEAD_WORDS[2]}"
COMMON_TAG = TAG_HEAD[0]


def _ulid(prefix: str, ms: int, rng: random.Random) -> str:
    value = (ms << 80) | rng.getrandbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def _distinct(
    rng: random.Random, population: Sequence[str], cum: Sequence[float], k: int
) -> tuple[str, ...]:
    chosen: dict[str, None] = {}
    while len(chosen) < k:
        chosen.setdefault(rng.choices(population, cum_weights=cum)[0], None)
    return tuple(chosen)


# --------------------------------------------------------------------------- the catalogue


class Catalogue:
    """N published listings, generated deterministically: the same for every database.

    :meth:`batches` generates the listings and their releases; while it runs it
    fills the samples the operations use (ids for detail, installable
    listings, listings of the benchmark's publisher) and the word counts from
    which :meth:`rare_term` is picked.
    """

    def __init__(self, size: int, seed: int = SEED) -> None:
        self.size = size
        self.seed = seed
        rng = random.Random(seed)
        self.descriptions = [rendered(source) for source in DESCRIPTION_SOURCES]
        self.notes = [rendered("First release."), rendered("Fixes and **faster** routing.")]
        self.bio = rendered("We build *agents* for operations teams. https://example.com")
        self.users: list[User] = []
        self.profiles: list[PublisherProfile] = []
        for k in range(PUBLISHERS):
            created = T0_MS - DAY_MS + k * 1000
            user = User(
                user_id=_ulid("usr", created, rng),
                external_id=f"bench-pub-{k}",
                display_name=f"Publisher {k}",
                email=None,
                roles=frozenset({Role.PUBLISHER}),
                created_at_ms=created,
                updated_at_ms=created,
            )
            self.users.append(user)
            if k < PROFILES:
                verified = k % 3 == 0
                self.profiles.append(
                    PublisherProfile(
                        publisher_id=user.user_id,
                        display_name=f"Publisher {k} Labs",
                        bio=self.bio,
                        verification=Verification(
                            status=VerificationStatus.VERIFIED
                            if verified
                            else VerificationStatus.UNVERIFIED,
                            checked_at_ms=created if verified else None,
                        ),
                        created_at_ms=created,
                        updated_at_ms=created,
                    )
                )
        self.detail_ids: list[str] = []
        self.installable_ids: list[str] = []
        self.own_ids: list[str] = []  # publisher 0's whs_agent listings: release publishing
        self.word_df: Counter[str] = Counter()
        self.loads: list[Load] = []  # one per database of the last ``bulk_load``

    def batches(self, size: int = BATCH) -> Iterator[tuple[list[Listing], list[Release]]]:
        rng = random.Random(self.seed + 1)
        self.detail_ids, self.installable_ids, self.own_ids = [], [], []
        self.word_df = Counter()
        stride = max(1, self.size // 4000)
        used_updated: set[int] = set()
        publisher_ids = [user.user_id for user in self.users]
        listings: list[Listing] = []
        releases: list[Release] = []
        for i in range(self.size):
            created = T0_MS + i * STEP_MS + rng.randrange(STEP_MS)
            updated = created + rng.randrange(1, 60 * DAY_MS)
            while updated in used_updated:
                updated += 1
            used_updated.add(updated)
            kind = rng.choices(_KINDS, cum_weights=_KIND_CW)[0]
            publisher = rng.choices(publisher_ids, cum_weights=_PUBLISHER_CW)[0]
            name_words = rng.choices(VOCABULARY, cum_weights=_WORD_CW, k=rng.randint(2, 4))
            summary_words = rng.choices(VOCABULARY, cum_weights=_WORD_CW, k=rng.randint(8, 16))
            tags = _distinct(rng, TAGS, _TAG_CW, rng.randint(1, 5))
            categories = _distinct(rng, CATEGORIES, _CATEGORY_CW, rng.randint(1, 2))
            self.word_df.update({*name_words, *summary_words})
            listing_id = _ulid("lst", created, rng)
            listing = Listing(
                listing_id=listing_id,
                publisher_user_id=publisher,
                asset_kind=kind,
                status=ListingStatus.PUBLISHED,
                name=" ".join(word.capitalize() for word in name_words),
                summary=" ".join(summary_words).capitalize() + ".",
                description=self.descriptions[i % len(self.descriptions)],
                tags=tags,
                categories=categories,
                images=(Image(f"https://{IMAGE_HOST}/{listing_id}.png", "screenshot"),)
                if i % 2 == 0
                else (),
                links=Links(docs_url=f"https://docs.example.com/{listing_id}")
                if i % 3 == 0
                else Links(),
                moderation=Moderation(),
                created_at_ms=created,
                updated_at_ms=updated,
            )
            listings.append(listing)
            count = rng.choice((0, 0, 0, 0, 0, 0, 0, 1, 2, 3))  # 30 % have 1–3 releases
            for n in range(count):
                published = created + (updated - created) * (n + 1) // (count + 1)
                releases.append(self._release(rng, listing, n, published))
            if i % stride == 0:
                self.detail_ids.append(listing_id)
                if count:
                    self.installable_ids.append(listing_id)
            own = publisher == publisher_ids[0] and kind is AssetKind.WHS_AGENT
            if own and len(self.own_ids) < 2000:
                self.own_ids.append(listing_id)
            if len(listings) == size:
                yield listings, releases
                listings, releases = [], []
        if listings:
            yield listings, releases

    def _release(self, rng: random.Random, listing: Listing, n: int, published: int) -> Release:
        suffix = listing.listing_id[-8:]
        refs = {
            AssetKind.WHS_AGENT: ReleaseRefs(whs_agent_id=f"agent-{suffix}"),
            AssetKind.AGENTROMATIC_WORKFLOW: ReleaseRefs(agentromatic_workflow_id=f"wf-{suffix}"),
            AssetKind.SPEC_ASSET: ReleaseRefs(spec_asset_id=f"spec-{suffix}"),
        }[listing.asset_kind]
        return Release(
            release_id=_ulid("rel", published, rng),
            listing_id=listing.listing_id,
            publisher_user_id=listing.publisher_user_id,
            version=f"1.{n}.0",
            status=ReleaseStatus.PUBLISHED,
            refs=refs,
            compat=Compat(min_whs_version="2.1.0")
            if listing.asset_kind is AssetKind.WHS_AGENT
            else Compat(),
            artifacts=(Artifact(ArtifactKind.MANIFEST, f"{n:064x}", 1024 + n, ArtifactDownload()),),
            notes=self.notes[n % len(self.notes)],
            published_at_ms=published,
        )

    def rare_term(self) -> str:
        """A tail word (prefixes no other word) in about 20 listings (fewer for small N)."""
        tail = set(_TAIL)
        counted = [(word, df) for word, df in self.word_df.items() if word in tail]
        return min(counted, key=lambda item: (abs(item[1] - 20), item[0]))[0]


# --------------------------------------------------------------------------- loading


@dataclass
class Load:
    listings: int = 0
    rows: int = 0
    generate_s: float = 0.0
    insert_s: float = 0.0
    analyze_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.generate_s + self.insert_s + self.analyze_s


def _copy_spec(table: sa.Table) -> tuple[list[str], Callable[[dict[str, Any]], Sequence[Any]]]:
    """Column names and a row → tuple converter for PostgreSQL's text COPY."""
    names = [column.name for column in table.columns]
    converters: list[Callable[[Any], Any] | None] = []
    for column in table.columns:
        if isinstance(column.type, sa.JSON):
            converters.append(json.dumps)
        elif isinstance(column.type, sa.Enum):
            converters.append(lambda value: None if value is None else str(value))
        else:
            converters.append(None)
    if not any(converters):
        getter = operator.itemgetter(*names)
        return names, getter
    pairs = list(zip(names, converters, strict=True))

    def convert(row: dict[str, Any]) -> Sequence[Any]:
        return [f(row[name]) if f else row[name] for name, f in pairs]

    return names, convert


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], copy: bool) -> int:
    if not rows:
        return 0
    if not copy:
        conn.execute(sa.insert(table), rows)
        return len(rows)
    names, convert = _copy_spec(table)
    statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    with (
        conn.connection.dbapi_connection.cursor() as cursor,  # type: ignore[union-attr]
        cursor.copy(statement) as copier,
    ):
        for row in rows:
            copier.write_row(convert(row))
    return len(rows)


def _analyze(engine: sa.Engine) -> None:
    if is_sqlite(engine):
        # Outside any transaction (the engine's own connections always BEGIN IMMEDIATE).
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("ANALYZE")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.close()
        finally:
            raw.close()
    else:
        # VACUUM also sets the visibility map (index-only scans), as autovacuum would.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


#: The tables a bulk load fills, in foreign-key order.
BULK_TABLES = (t.listings, t.listing_labels, t.listing_terms, t.releases)
PROGRESS_EVERY = 50_000  # listings between two progress lines


class _BulkTarget:
    """One database a bulk load writes: its secondary indexes dropped before the load and
    created again (from their own recorded definitions) after it, so every row lands in
    the tables and their primary keys only; then ANALYZE (and VACUUM on PostgreSQL)."""

    def __init__(self, url: sa.URL) -> None:
        self.url = url
        self.engine = sql.create_engine(url, pool_size=1, max_overflow=0)
        self.sqlite = is_sqlite(self.engine)
        self.kind = "sqlite" if self.sqlite else "postgresql"
        self.load = Load()
        self.indexes: list[str] = []
        names = [table.name for table in BULK_TABLES]
        raw = self.raw = self.engine.raw_connection()
        cursor = raw.cursor()
        if self.sqlite:
            # The file is private to this load until its marker is written: no journal,
            # no fsync, no foreign-key probes (the catalogue is consistent by
            # construction), a large page cache, sorts in memory.
            for pragma in (
                "journal_mode = OFF",
                "synchronous = OFF",
                "foreign_keys = OFF",
                "cache_size = -524288",  # 512 MiB for the load only
                "temp_store = MEMORY",
            ):
                cursor.execute(f"PRAGMA {pragma}")
            marks = ", ".join("?" for _ in names)
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "  # noqa: S608
                f"AND tbl_name IN ({marks})",
                names,
            )
            found = cursor.fetchall()
            for name, _definition in found:
                cursor.execute(f'DROP INDEX "{name}"')
            self.indexes = [definition for _, definition in found]
        else:
            # Foreign keys are triggers: replica mode skips them for this session only
            # (no other trigger exists in the schema). Indexes that back a constraint
            # (primary keys, uniques) stay.
            cursor.execute("SET synchronous_commit = off")
            cursor.execute("SET session_replication_role = replica")
            cursor.execute("SET maintenance_work_mem = '512MB'")
            cursor.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s) "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                "WHERE c.conindid = (quote_ident(i.schemaname) || '.' || "
                "quote_ident(i.indexname))::regclass)",
                (names,),
            )
            found = cursor.fetchall()
            for name, _ in found:
                cursor.execute(f'DROP INDEX "{name}"')
            self.indexes = [definition for _, definition in found]
            raw.commit()
        cursor.close()
        dialect = self.engine.dialect
        self.statements: dict[str, str] = {}
        self.converters: dict[str, Callable[[dict[str, Any]], Sequence[Any]]] = {}
        for table in (*BULK_TABLES, t.users, t.publisher_profiles):
            names_, convert = _copy_spec(table) if not self.sqlite else _bind_spec(table, dialect)
            columns = ", ".join(names_)
            if self.sqlite:
                marks = ", ".join("?" for _ in names_)
                self.statements[table.name] = (
                    f"INSERT INTO {table.name} ({columns}) VALUES ({marks})"  # noqa: S608
                )
            else:
                self.statements[table.name] = f"COPY {table.name} ({columns}) FROM STDIN"
            self.converters[table.name] = convert

    def write(self, batch: Sequence[tuple[sa.Table, list[dict[str, Any]]]]) -> None:
        """Every table's rows of one batch, in one transaction."""
        start = time.perf_counter()
        cursor = self.raw.cursor()
        try:
            if self.sqlite:
                cursor.execute("BEGIN")
            for table, rows in batch:
                if not rows:
                    continue
                convert = self.converters[table.name]
                if self.sqlite:
                    cursor.executemany(self.statements[table.name], map(convert, rows))
                else:
                    with cursor.copy(self.statements[table.name]) as copier:  # type: ignore[attr-defined]
                        for row in rows:
                            copier.write_row(convert(row))
                self.load.rows += len(rows)
            if self.sqlite:
                cursor.execute("COMMIT")
            else:
                self.raw.commit()
        finally:
            cursor.close()
        self.load.insert_s += time.perf_counter() - start

    def finish(self) -> None:
        """Create the dropped indexes again, then ANALYZE (VACUUM ANALYZE on PostgreSQL)."""
        start = time.perf_counter()
        cursor = self.raw.cursor()
        try:
            for definition in self.indexes:
                cursor.execute(definition)
            if self.sqlite:
                cursor.execute("PRAGMA journal_mode = WAL")  # the engine's mode, for good
            else:
                self.raw.commit()
        finally:
            cursor.close()
        index_s = time.perf_counter() - start
        print(f"  {self.kind}: {len(self.indexes)} indexes built in {index_s:.1f} s", flush=True)
        self.load.insert_s += index_s
        start = time.perf_counter()
        self.close()
        _analyze(self.engine)
        self.load.analyze_s = time.perf_counter() - start
        self.engine.dispose()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()


def _bind_spec(
    table: sa.Table, dialect: sa.Dialect
) -> tuple[list[str], Callable[[dict[str, Any]], Sequence[Any]]]:
    """Column names and a row → tuple converter through the dialect's own bind processors:
    the values SQLAlchemy's ``insert`` would store, without its per-statement work."""
    names = [column.name for column in table.columns]
    getter = operator.itemgetter(*names)
    processed = [
        (position, processor)
        for position, column in enumerate(table.columns)
        if (processor := column.type._cached_bind_processor(dialect)) is not None
    ]
    if not processed:  # listing_terms: plain values, converted at C speed
        return names, getter

    def convert(row: dict[str, Any]) -> Sequence[Any]:
        values = list(getter(row))
        for position, processor in processed:
            values[position] = processor(values[position])
        return values

    return names, convert


def bulk_load(
    urls: Sequence[sa.URL], catalogue: Catalogue, *, progress: bool = True
) -> Iterator[list[Listing]]:
    r"""Bulk-load the catalogue into every (migrated, empty) database of ``urls`` in one
    pass: each batch is generated and mapped to rows once and written to each database in
    one transaction; yields each batch's listings after it is written (a caller can index
    them too). The databases' :class:`Load`\s are in ``catalogue.loads`` at the end."""
    targets = [_BulkTarget(url) for url in urls]
    catalogue.loads = [target.load for target in targets]
    kinds = (t.LABEL_TAG, t.LABEL_CATEGORY)
    began = time.perf_counter()
    generate_s = 0.0
    try:
        people = [
            (t.users, [m.user_row(u) for u in catalogue.users]),
            (t.publisher_profiles, [m.profile_row(p) for p in catalogue.profiles]),
        ]
        for target in targets:
            target.write(people)
        loaded = 0
        for listings, releases in catalogue.batches():
            start = time.perf_counter()
            terms = [row for item in listings for row in m.term_rows(item)]
            terms.sort(key=operator.itemgetter("token", "listing_id"))  # primary-key order
            batch = [
                (t.listings, [m.listing_row(item) for item in listings]),
                (t.listing_labels, [row for item in listings for row in m.label_rows(item, kinds)]),
                (t.listing_terms, terms),
                (t.releases, [m.release_row(item) for item in releases]),
            ]
            generate_s += time.perf_counter() - start
            for target in targets:
                target.write(batch)
                target.load.listings += len(listings)
            yield listings
            before, loaded = loaded, loaded + len(listings)
            if progress and (loaded // PROGRESS_EVERY > before // PROGRESS_EVERY):
                elapsed = time.perf_counter() - began
                eta = elapsed / loaded * (catalogue.size - loaded)
                writes = ", ".join(f"{x.kind} {x.load.insert_s:.0f} s" for x in targets)
                print(
                    f"  {loaded:,} / {catalogue.size:,} listings in {elapsed:.0f} s "
                    f"({writes}), about {eta:.0f} s to go",
                    flush=True,
                )
        for target in targets:
            target.load.generate_s = (
                time.perf_counter() - began - sum(x.load.insert_s for x in targets)
            )
            target.finish()
    finally:
        for target in targets:
            target.close()


def load_sql(url: sa.URL, catalogue: Catalogue) -> Load:
    """Bulk-load the catalogue into a migrated database (its own engine, disposed after)."""
    for _ in bulk_load([url], catalogue, progress=catalogue.size >= 5 * PROGRESS_EVERY):
        pass
    return catalogue.loads[0]


def load_memory(catalogue: Catalogue) -> tuple[memory.MemoryStore, Load]:
    store = memory.MemoryStore()
    load = Load()
    start = time.perf_counter()
    with store.unit_of_work() as uow:
        for user in catalogue.users:
            uow.users.add(user)
        for profile in catalogue.profiles:
            uow.profiles.save(profile)
        for listings, releases in catalogue.batches():
            for listing in listings:
                uow.listings.add(listing)
            for release in releases:
                uow.releases.add(release)
            load.listings += len(listings)
            load.rows += len(listings) + len(releases)
        uow.commit()
    load.insert_s = time.perf_counter() - start
    return store, load


# --------------------------------------------------------------------------- measuring


@dataclass
class Result:
    database: str
    size: int
    key: str
    operation: str
    median: float
    p99: float
    runs: int
    ops: float | None = None


@dataclass
class Stats:
    median: float
    p99: float
    runs: int
    ops: float


def measure(
    fn: Callable[[], object], *, repeat: int, budget_s: float, warmup: int, min_runs: int = 10
) -> Stats:
    """``repeat`` timed calls after a warm-up, fewer (at least ``min_runs``) past ``budget_s``."""
    warm_until = time.perf_counter() + 2.0
    for done in range(warmup):
        if done >= 2 and time.perf_counter() > warm_until:
            break
        fn()
    gc.collect()
    samples: list[float] = []
    begin = time.perf_counter()
    deadline = begin + budget_s
    while len(samples) < repeat and (len(samples) < min_runs or time.perf_counter() < deadline):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    elapsed = time.perf_counter() - begin
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return Stats(statistics.median(samples), p99, len(samples), len(samples) / elapsed)


def measure_for(fn: Callable[[], object], *, seconds: float, warmup: int) -> Stats:
    """Calls for ``seconds`` after a warm-up: latencies and throughput."""
    for _ in range(warmup):
        fn()
    gc.collect()
    samples: list[float] = []
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds or len(samples) < 10:
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    elapsed = time.perf_counter() - begin
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return Stats(statistics.median(samples), p99, len(samples), len(samples) / elapsed)


def deep_cursor(
    app: FleetPrompt, params: dict[str, Any], page: int, limit: int = PAGE
) -> tuple[str | None, int]:
    """The cursor of page ``page`` (pages of ``limit``), or of the last page; and its number.

    Walks in pages of 200 (the largest allowed): the cursor after the first
    ``(page - 1) * limit`` results is the same keyset position whatever the
    page size, and the cursor's scope does not include the limit.
    """
    target = (page - 1) * limit
    position, cursor = 0, None
    while position < target:
        step = min(200, target - position)
        result = app.catalog.search({**params, "limit": step, **_cursor(cursor)})
        position += len(result.items)
        if result.next_cursor is None:  # fewer than ``page`` pages: use the last one
            last = (position - 1) // limit + 1 if position else 1
            return (deep_cursor(app, params, last, limit)[0] if last > 1 else None), last
        cursor = result.next_cursor
    return cursor, page


def _cursor(cursor: str | None) -> dict[str, str]:
    return {"cursor": cursor} if cursor else {}


def _search(params: dict[str, Any], cursor: str | None = None) -> dict[str, Any]:
    return {**params, "limit": PAGE, **_cursor(cursor)}


@dataclass
class Queries:
    rare: str
    hits: dict[str, int] = field(default_factory=dict)


def read_operations(
    app: FleetPrompt, catalogue: Catalogue, queries: Queries
) -> list[tuple[str, str, dict[str, Any] | None, Callable[[], object]]]:
    """``(key, label, search params or None, call)`` for every read operation."""
    rng = random.Random(11)
    common: dict[str, Any] = {"q": COMMON_TERM}
    tag: dict[str, Any] = {"tags": COMMON_TAG}
    browse: dict[str, Any] = {}
    deep = {
        key: deep_cursor(app, params, DEEP_PAGE)
        for key, params in (("q-common", common), ("tag", tag), ("browse", browse))
    }

    def deep_op(key: str, what: str, params: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        cursor, page = deep[key]
        label = f"{what}, page {page}" + ("" if page == DEEP_PAGE else " (last)")
        return f"{key}-deep", label, _search(params, cursor)

    searches = [
        ("q-common-p1", "search q common (relevance), page 1", _search(common)),
        deep_op("q-common", "search q common (relevance)", common),
        ("q-rare", "search q rare (relevance)", _search({"q": queries.rare})),
        ("q-two", "search q two common terms (relevance)", _search({"q": TWO_TERMS})),
        ("q-updated", "search q common, sort=updated", _search({**common, "sort": "updated"})),
        ("tag-p1", "search tag common, page 1", _search(tag)),
        deep_op("tag", "search tag common", tag),
        ("browse-p1", "browse (no filter), page 1", _search(browse)),
        deep_op("browse", "browse (no filter)", browse),
    ]
    operations: list[tuple[str, str, dict[str, Any] | None, Callable[[], object]]] = [
        (key, label, params, functools.partial(app.catalog.search, params))
        for key, label, params in searches
    ]
    ids = catalogue.detail_ids
    operations.append(
        ("detail", "listing detail", None, lambda: app.catalog.listing(rng.choice(ids)))
    )
    return operations


def write_operations(
    app: FleetPrompt, catalogue: Catalogue
) -> list[tuple[str, str, Callable[[], object]]]:
    publisher = Call.as_user(catalogue.users[0].external_id, request_id="bench")
    buyer = Call.as_user("bench-buyer", request_id="bench")
    counter = itertools.count()
    markdown = "# Bench\n\nA listing created by the **benchmark**."

    def create() -> None:
        n = next(counter)
        app.publishing.create_listing(
            publisher,
            {
                "assetKind": "whs_agent",
                "name": f"Bench Agent {n}",
                "summary": "Created by the SQL benchmark to time the write path.",
                "description": {"format": "markdown", "markdown": markdown},
                "tags": ["bench", "support"],
                "categories": ["operations"],
            },
            idempotency_key=f"c{n}",
        )

    own = catalogue.own_ids

    def release() -> None:
        n = next(counter)
        app.publishing.publish_release(
            publisher,
            own[n % len(own)],
            {
                "version": f"9.{n}.0",
                "refs": {"whsAgentId": f"agent-b{n}"},
                "artifacts": [
                    {
                        "kind": "manifest",
                        "sha256": "a" * 64,
                        "sizeBytes": 1024,
                        "download": {"mode": "none"},
                    }
                ],
                "notes": {"markdown": "Benchmark release."},
            },
            idempotency_key=f"r{n}",
        )

    installable = catalogue.installable_ids

    def install_flow() -> None:
        n = next(counter)
        intent = app.installs.create_intent(
            buyer,
            {"listingId": installable[n % len(installable)], "targetSystem": "whs"},
            idempotency_key=f"i{n}",
        ).value
        issued = app.installs.issue_token(
            buyer, intent.install_intent_id, idempotency_key=f"t{n}"
        ).value
        assert issued.install_token is not None
        app.redemption.redeem("whs", {"installToken": issued.install_token, "targetSystem": "whs"})

    return [
        ("create", "listing create (idempotent, audited)", create),
        ("release", "release publish (idempotent, audited)", release),
        ("redeem", "intent + token + redeem", install_flow),
    ]


# --------------------------------------------------------------------------- explain


def explain(engine: sa.Engine, label: str, fn: Callable[[], object], seen: set[str]) -> None:
    """Print the plan of every SELECT ``fn`` runs (once per distinct statement)."""
    captured: list[tuple[str, Any]] = []

    def capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    sqlite = is_sqlite(engine)
    print(f"\n=== {engine.dialect.name}: {label}")
    with engine.connect() as conn:
        for statement, parameters in captured:
            compact = " ".join(statement.split())
            if compact in seen:
                print(f"--- (plan shown above) {compact[:100]}…")
                continue
            seen.add(compact)
            print(f"--- {compact}")
            print(f"    params: {parameters}")
            if sqlite:
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
                depth = {0: 0}
                for node, parent, _unused, detail in rows:
                    depth[node] = depth.get(parent, 0) + 1
                    print("    " + "  " * (depth[node] - 1) + detail)
            else:
                for (line,) in conn.exec_driver_sql("EXPLAIN " + statement, parameters):
                    print("    " + line)
        conn.rollback()


# --------------------------------------------------------------------------- running


@dataclass
class Options:
    repeat: int
    budget: float
    warmup: int
    write_seconds: float
    explain: bool


def report(result: Result) -> Result:
    ops = f"  {result.ops:8.0f} ops/s" if result.ops is not None else ""
    print(
        f"  {result.database:<10} {result.size:>9,}  {result.operation:<46}"
        f" median {result.median:9.3f} ms  p99 {result.p99:9.3f} ms  n={result.runs}{ops}",
        flush=True,
    )
    return result


def run_app(
    database: str,
    app: FleetPrompt,
    catalogue: Catalogue,
    queries: Queries,
    options: Options,
    *,
    engine: sa.Engine | None,
    writes: bool,
) -> list[Result]:
    start = time.perf_counter()
    reads = read_operations(app, catalogue, queries)
    print(f"  {database}: deep cursors walked in {time.perf_counter() - start:.1f} s", flush=True)
    if options.explain and engine is not None:
        seen: set[str] = set()
        for _key, label, _params, fn in reads:
            if _params is not None:
                explain(engine, f"N={catalogue.size:,} {label} {_params}", fn, seen)
        print()
    results = []
    for key, label, _params, fn in reads:
        stats = measure(fn, repeat=options.repeat, budget_s=options.budget, warmup=options.warmup)
        results.append(
            report(
                Result(database, catalogue.size, key, label, stats.median, stats.p99, stats.runs)
            )
        )
    if writes:
        for key, label, fn in write_operations(app, catalogue):
            stats = measure_for(fn, seconds=options.write_seconds, warmup=10)
            results.append(
                report(
                    Result(
                        database,
                        catalogue.size,
                        key,
                        label,
                        stats.median,
                        stats.p99,
                        stats.runs,
                        stats.ops,
                    )
                )
            )
    return results


def count_hits(engine: sa.Engine, catalogue: Catalogue, queries: Queries) -> None:
    """How many listings each query matches (from the index; informative only)."""
    top = "\U0010ffff"
    lt = t.listing_terms

    def matching(term: str) -> sa.Select[Any]:
        return sa.select(lt.c.listing_id).where(lt.c.token >= term, lt.c.token < term + top)

    first, second = TWO_TERMS.split()
    with engine.connect() as conn:
        for name, term in (("common", COMMON_TERM), ("rare", queries.rare)):
            sub = matching(term).distinct().subquery()
            queries.hits[name] = conn.execute(
                sa.select(sa.func.count()).select_from(sub)
            ).scalar_one()
        both = sa.intersect(matching(first), matching(second)).subquery()
        queries.hits["two"] = conn.execute(
            sa.select(sa.func.count()).select_from(both)
        ).scalar_one()
        lb = t.listing_labels
        queries.hits["tag"] = conn.execute(
            sa.select(sa.func.count()).where(lb.c.kind == t.LABEL_TAG, lb.c.value == COMMON_TAG)
        ).scalar_one()
        conn.rollback()


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    loads: list[tuple[str, int, Load]] = field(default_factory=list)
    queries: dict[int, Queries] = field(default_factory=dict)
    postgres_version: str | None = None


def run_database(
    database: str, url: sa.URL, catalogue: Catalogue, options: Options, run: Run
) -> None:
    engine = sql.create_engine(url)
    try:
        sql.upgrade(engine)
    finally:
        engine.dispose()
    print(f"{database}: loading {catalogue.size:,} listings…", flush=True)
    load = load_sql(url, catalogue)
    run.loads.append((database, catalogue.size, load))
    print(
        f"  loaded {load.listings:,} listings, {load.rows:,} rows in {load.total_s:.1f} s "
        f"(generate {load.generate_s:.1f} s, insert {load.insert_s:.1f} s, "
        f"analyze {load.analyze_s:.1f} s): {load.rows / load.insert_s:,.0f} rows/s inserted, "
        f"{load.listings / load.total_s:,.0f} listings/s overall",
        flush=True,
    )
    engine = sql.create_engine(url)
    try:
        queries = run.queries.setdefault(catalogue.size, Queries(catalogue.rare_term()))
        if not queries.hits:
            count_hits(engine, catalogue, queries)
            print(f"  queries: {describe_queries(catalogue.size, queries)}", flush=True)
        app = sql.bootstrap(engine, cursor_key=CURSOR_KEY)
        run.results += run_app(
            database, app, catalogue, queries, options, engine=engine, writes=True
        )
    finally:
        engine.dispose()


def run_sqlite(directory: Path, size: int, options: Options, run: Run) -> None:
    path = directory / f"fleetprompt_bench_{size}_{secrets.token_hex(4)}.db"
    try:
        run_database("sqlite", sa.make_url(f"sqlite:///{path}"), Catalogue(size), options, run)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def run_postgres(server_url: str, size: int, options: Options, run: Run) -> None:
    server = sql.normalize_url(server_url)
    name = f"fleetprompt_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            run.postgres_version = conn.exec_driver_sql("SHOW server_version").scalar_one()
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            run_database("postgresql", server.set(database=name), Catalogue(size), options, run)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def run_memory(size: int, options: Options, run: Run) -> None:
    catalogue = Catalogue(size)
    print(f"memory: loading {size:,} listings…", flush=True)
    store, load = load_memory(catalogue)
    print(f"  loaded in {load.total_s:.1f} s", flush=True)
    queries = run.queries.setdefault(size, Queries(catalogue.rare_term()))
    app = memory.bootstrap(store=store, cursor_key=CURSOR_KEY)
    run.results += run_app("memory", app, catalogue, queries, options, engine=None, writes=False)


# --------------------------------------------------------------------------- reporting


def describe_queries(size: int, queries: Queries) -> str:
    hits = queries.hits

    def share(name: str) -> str:
        if name not in hits:
            return ""
        return f" ({hits[name]:,} listings, {100 * hits[name] / size:.2g} %)"

    return (
        f"common q=`{COMMON_TERM}`{share('common')}, rare q=`{queries.rare}`{share('rare')}, "
        f"two terms q=`{TWO_TERMS}`{share('two')}, tag `{COMMON_TAG}`{share('tag')}"
    )


def machine(run: Run) -> str:
    ram = "unknown RAM"
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        pass
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    parts = [
        f"{os.cpu_count()} cores",
        ram,
        f"{platform.python_implementation()} {platform.python_version()} ({platform.machine()})",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    if run.postgres_version:
        parts.append(f"PostgreSQL {run.postgres_version} (local, default configuration)")
    return ", ".join(parts) + f"; load average at the end {load}"


def command() -> str:
    args = list(sys.argv[1:])
    for index, arg in enumerate(args):
        if arg.startswith("--postgres-url="):
            url = sa.make_url(arg.split("=", 1)[1])
            args[index] = "--postgres-url=" + url.render_as_string(hide_password=True)
        elif index and args[index - 1] == "--postgres-url":
            args[index] = sa.make_url(arg).render_as_string(hide_password=True)
    return " ".join(["python bench/sql_bench.py", *args])


FIRST_PAGES = ("q-common-p1", "q-rare", "q-two", "q-updated", "tag-p1", "browse-p1")
DEEP_PAIRS = (
    ("q-common-p1", "q-common-deep"),
    ("tag-p1", "tag-deep"),
    ("browse-p1", "browse-deep"),
)
FIRST_PAGE_TARGETS = {100_000: 20.0, 1_000_000: 40.0}


def targets(results: Sequence[Result]) -> list[tuple[str, str, int, str, bool]]:
    """``(target, database, size, measured, met)`` for every target measured in this run."""
    by = {(r.database, r.size, r.key): r for r in results}
    groups = list(dict.fromkeys((r.database, r.size) for r in results if r.database != "memory"))
    rows = []
    for database, size in groups:
        if size in FIRST_PAGE_TARGETS:
            limit = FIRST_PAGE_TARGETS[size]
            measured = [by[(database, size, key)] for key in FIRST_PAGES]
            worst = max(measured, key=lambda r: r.p99)
            over = [r.operation for r in measured if r.p99 >= limit]
            text = f"worst p99 {worst.p99:.1f} ms ({worst.operation}); {len(over)}/6 over"
            rows.append((f"search first page p99 < {limit:.0f} ms", database, size, text, not over))
        ratios = []
        for first, deep in DEEP_PAIRS:
            a, b = by[(database, size, first)], by[(database, size, deep)]
            page = b.operation.split("page ")[-1]
            ratios.append((b.median / a.median, f"{a.operation.split(',')[0]} p{page}"))
        text = "; ".join(f"{what}: {ratio:.2f}×" for ratio, what in ratios)
        met = all(ratio <= 1.5 for ratio, _ in ratios)
        rows.append(("deep page ≤ 1.5× page 1 (medians)", database, size, text, met))
        detail = by[(database, size, "detail")]
        rows.append(("detail p99 < 5 ms", database, size, f"{detail.p99:.2f} ms", detail.p99 < 5.0))
        if database == "sqlite":
            create = by[(database, size, "create")]
            assert create.ops is not None
            rows.append(
                (
                    "≥ 500 listing creations/s (SQLite)",
                    database,
                    size,
                    f"{create.ops:,.0f}/s",
                    create.ops >= 500,
                )
            )
    return rows


def section(run: Run, options: Options) -> str:
    intro = (
        "Generated by `bench/sql_bench.py --write-docs`; do not edit by hand. Each database "
        "is bulk-loaded with N published listings (Zipf-distributed words, tags and "
        "categories; 30 % of the listings with 1–3 releases; 25 publishers), analysed, then "
        "every operation goes through the application (`app.catalog.search`, "
        "`app.catalog.listing`, the publishing and install use cases). A read repeats the same "
        f"call up to {options.repeat} times after a warm-up, for at most about "
        f"{options.budget:g} s (slow queries have fewer *runs*); a deep page is reached once "
        "by walking the cursor, then fetched repeatedly; each write runs for "
        f"{options.write_seconds:g} s. The in-memory adapter (whose search is a linear scan) "
        "is measured at the smallest N only, as a baseline."
    )
    lines = [
        SECTION,
        "",
        f"`{command()}`",
        "",
        textwrap.fill(intro, width=78),
        "",
        textwrap.fill(f"Machine: {machine(run)}.", width=78),
        "",
        "Queries:",
        "",
    ]
    for size, queries in sorted(run.queries.items()):
        lines.append(f"- N = {size:,}: {describe_queries(size, queries)}.")
    lines += [
        "",
        "Bulk load (rows built in Python, then inserted; rows/s counts the insert time only):",
        "",
    ]
    lines += [
        "| database | listings | rows | generate s | insert s | analyze s | rows/s inserted |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for database, size, load in run.loads:
        lines.append(
            f"| {database} | {size:,} | {load.rows:,} | {load.generate_s:.1f} | "
            f"{load.insert_s:.1f} | {load.analyze_s:.1f} | {load.rows / load.insert_s:,.0f} |"
        )
    lines += ["", *table(run.results), "", "Targets:", ""]
    lines += ["| target | database | listings | measured | result |", "|---|---|---:|---|---|"]
    for target, database, size, measured, met in targets(run.results):
        lines.append(
            f"| {target} | {database} | {size:,} | {measured} | {'met' if met else '**missed**'} |"
        )
    return "\n".join(lines) + "\n"


def table(results: Sequence[Result]) -> list[str]:
    lines = [
        "| database | listings | operation | median ms | p99 ms | runs | ops/s |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        ops = f"{r.ops:,.0f}" if r.ops is not None else ""
        lines.append(
            f"| {r.database} | {r.size:,} | {r.operation} | {r.median:.3f} | {r.p99:.3f} "
            f"| {r.runs} | {ops} |"
        )
    return lines


def write_docs(text: str) -> None:
    lines = DOCS.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        body = "".join(lines).rstrip("\n")
        DOCS.write_text(body + "\n\n" + text, encoding="utf-8")
        return
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    rest = "".join(lines[end:])
    DOCS.write_text("".join(lines[:start]) + text + ("\n" + rest if rest else ""), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated listing counts")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--workdir", type=Path, help="directory for the SQLite files")
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per read operation")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per read operation")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--write-seconds", type=float, default=2.0)
    parser.add_argument("--no-memory", action="store_true", help="skip the in-memory baseline")
    parser.add_argument("--explain", action="store_true", help="print the plan of each search")
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite {SECTION!r}")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    databases = [name.strip() for name in args.databases.split(",")]
    unknown = set(databases) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown databases: {sorted(unknown)}")
    options = Options(args.repeat, args.budget, args.warmup, args.write_seconds, args.explain)
    run = Run()
    with tempfile.TemporaryDirectory(prefix="fleetprompt_bench_") as temporary:
        directory = args.workdir or Path(temporary)
        directory.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            if "sqlite" in databases:
                run_sqlite(directory, size, options, run)
            if "postgresql" in databases:
                run_postgres(args.postgres_url, size, options, run)
            if size == sizes[0] and not args.no_memory:
                if size <= MEMORY_MAX:
                    run_memory(size, options, run)
                else:
                    print(f"memory: skipped (linear-scan search; only up to {MEMORY_MAX:,})")
    print()
    print(f"Machine: {machine(run)}")
    for size, queries in sorted(run.queries.items()):
        print(f"N = {size:,}: {describe_queries(size, queries)}")
    print()
    print("\n".join(table(run.results)))
    print()
    for target, database, size, measured, met in targets(run.results):
        verdict = "met" if met else "MISSED"
        print(f"{verdict:<7} {target} — {database} {size:,}: {measured}")
    if args.write_docs:
        write_docs(section(run, options))
        print(f"\nrewrote {SECTION!r} in {DOCS}")


if __name__ == "__main__":
    main()

"""The search engine behind the SQL adapter follows the database (ADR 0027).

On SQLite and PostgreSQL: relevance searches with words are ranked by the
tantivy index (BM25), everything else by the SQL plans; the index reflects
every change committed before a search began, in this process and in another
one (the lag bound is zero); a crash between the database commit and the
index update converges; a missing, corrupt or foreign index directory is
rebuilt from the database, never served; a rebuild gives what following gave.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("tantivy", reason="the search extra (tantivy) is not installed")

import databases
from contract import entities
from contract.entities import T0
from fleetprompt_adapters import sql
from fleetprompt_adapters.memory import MemoryStore
from fleetprompt_adapters.search.follower import SearchFollower
from fleetprompt_adapters.sql import search_log
from fleetprompt_core.base.enums import (
    AssetKind,
    ListingStatus,
    SearchSort,
    VerificationStatus,
)
from fleetprompt_core.domain.model import Listing, User, Verification
from fleetprompt_core.domain.search import (
    IndexedListing,
    ListingSearch,
    SearchHit,
    descending,
    matches,
    search_terms,
    sort_key,
)
from fleetprompt_core.ports import UnitOfWork

PUBLISHED = ListingStatus.PUBLISHED


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    fixture = (
        "_sqlite_contract_engine" if request.param == "sqlite" else "_postgres_contract_engine"
    )
    engine: sa.Engine = request.getfixturevalue(fixture)
    databases.empty(engine)
    return engine


@attrs.define
class Shop:
    """A store with a search engine, and the store without one (another writer)."""

    engine: sa.Engine
    follower: SearchFollower
    owner: User

    @property
    def store(self) -> sql.SqlStore:
        return sql.SqlStore(self.engine, search_engine=self.follower)

    def write(self, *listings: Listing, store: sql.SqlStore | None = None) -> None:
        with (store or sql.SqlStore(self.engine)).unit_of_work() as uow:
            for listing in listings:
                current = uow.listings.get(listing.listing_id)
                if current is None:
                    uow.listings.add(listing)
                else:
                    assert uow.listings.update(listing, current)
            uow.commit()

    def search(self, text: str, **overrides: object) -> list[SearchHit]:
        fields: dict[str, object] = {"limit": 50, **overrides}
        search = ListingSearch(terms=search_terms(text), sort=SearchSort.RELEVANCE, **fields)  # type: ignore[arg-type]
        with self.store.read_unit_of_work() as uow:
            return list(uow.listings.search_published(search))

    def ids(self, text: str, **overrides: object) -> list[str]:
        return [hit.listing.listing_id for hit in self.search(text, **overrides)]


@pytest.fixture
def shop(engine: sa.Engine) -> Shop:
    owner = entities.user()
    with sql.SqlStore(engine).unit_of_work() as uow:
        uow.users.add(owner)
        uow.commit()
    return Shop(engine, SearchFollower(), owner)


def _listing(shop: Shop, **overrides: object) -> Listing:
    fields: dict[str, object] = {
        "status": PUBLISHED,
        "publisher_user_id": shop.owner.user_id,
        "summary": "",
        "tags": (),
        "categories": (),
    }
    fields.update(overrides)
    return entities.listing(**fields)


def test_relevance_with_words_is_ranked_by_the_engine(shop: Shop) -> None:
    """BM25 through the store: the listing named after the word outranks the one that
    mentions it once in its summary, whose Σ-of-weights scores (ADR 0009) would tie the
    other way round; other sorts keep the SQL plans."""
    named = _listing(shop, name="Triage", summary="", updated_at_ms=T0)
    mention = _listing(
        shop, name="Router", summary="triage triage routes", tags=("triage",), updated_at_ms=T0 + 1
    )
    shop.write(named, mention, *(_listing(shop, name=f"Other {n}") for n in range(5)))
    assert shop.ids("triage") == [named.listing_id, mention.listing_id]
    with shop.store.read_unit_of_work() as uow:
        by_update = uow.listings.search_published(
            ListingSearch(terms=("triage",), sort=SearchSort.UPDATED)
        )
    assert [h.listing.listing_id for h in by_update] == [mention.listing_id, named.listing_id]


def test_the_index_follows_every_committed_change_before_a_search(shop: Shop) -> None:
    """Lag bound zero: a write committed (by any store) is searched by the next search —
    new, renamed, unpublished, and a publisher's verification for the verified filter."""
    listing = _listing(shop, name="Alpha Agent")
    shop.write(listing)
    assert shop.ids("alpha") == [listing.listing_id]
    renamed = attrs.evolve(listing, name="Beta Agent", updated_at_ms=T0 + 1)
    shop.write(renamed)
    assert shop.ids("alpha") == []
    assert shop.ids("beta") == [listing.listing_id]
    assert shop.ids("beta", verified_only=True) == []
    profile = entities.profile(
        publisher_id=shop.owner.user_id, verification=Verification(VerificationStatus.VERIFIED)
    )
    with sql.SqlStore(shop.engine).unit_of_work() as uow:
        uow.profiles.save(profile)
        uow.commit()
    assert shop.ids("beta", verified_only=True) == [listing.listing_id]
    shop.write(renamed.moved_by_publisher(ListingStatus.UNLISTED, T0 + 2))
    assert shop.ids("beta") == []


def test_a_search_on_a_current_index_reads_the_page_and_the_head_in_one_statement(
    shop: Shop,
) -> None:
    """The page's rows carry the log's head (ADR 0042): when the index holds that head, a
    search sends one statement, cards or listings; an empty page reads the head alone.
    When the head is past the index, the search catches up first and sees the write."""
    listing = _listing(shop, name="Alpha Agent")
    shop.write(listing)
    assert shop.ids("alpha") == [listing.listing_id]  # caught up
    sent: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.lstrip().upper().startswith("BEGIN"):
            return  # SQLite's reader opening its snapshot
        sent.append(statement)

    sa.event.listen(shop.engine, "before_cursor_execute", count)
    try:
        search = ListingSearch(terms=("alpha",), sort=SearchSort.RELEVANCE, limit=10)
        with shop.store.read_unit_of_work() as uow:
            hits = list(uow.listings.search_published(search))
            cards = list(uow.listings.search_cards(search))
        assert [h.listing.listing_id for h in hits] == [listing.listing_id]
        assert [h.listing.listing_id for h in cards] == [listing.listing_id]
        assert len(sent) == 2, sent
        sent.clear()
        assert shop.ids("nothing") == []
        assert len(sent) == 1, sent
        other = _listing(shop, name="Alpha Beta")
        shop.write(other)
        sent.clear()
        assert set(shop.ids("alpha")) == {listing.listing_id, other.listing_id}
        assert len(sent) > 1  # the head was past the index: it caught up, then read again
    finally:
        sa.event.remove(shop.engine, "before_cursor_execute", count)


def test_a_rolled_back_write_leaves_the_index_alone(shop: Shop) -> None:
    """The log row goes with the transaction: nothing to apply after a rollback."""
    listing = _listing(shop, name="Ghost")
    with sql.SqlStore(shop.engine).unit_of_work() as uow:
        uow.listings.add(listing)  # no commit
    assert shop.ids("ghost") == []
    assert shop.follower.applied == 0


def test_a_crash_between_the_commit_and_the_index_update_converges(
    shop: Shop, tmp_path: Path
) -> None:
    """A process that dies after the database committed (its index never saw the change),
    or after the index committed but before it recorded how far it got, leaves a state
    that the next process applies: the searches converge on the database."""
    directory = tmp_path / "index"
    first = SearchFollower(directory)
    shop.follower = first
    before = _listing(shop, name="Before Crash")
    shop.write(before)
    assert shop.ids("crash") == [before.listing_id]
    applied = first.applied
    after = _listing(shop, name="After Crash")
    shop.write(after)  # committed; the process dies before any search applies it
    first.close()
    second = SearchFollower(directory)
    assert second.applied == applied
    shop.follower = second
    assert set(shop.ids("crash")) == {before.listing_id, after.listing_id}

    # Index committed, position not recorded: the change is applied again, harmlessly.
    third_listing = _listing(shop, name="Third Crash")
    shop.write(third_listing)

    def crash(*_position: object) -> None:
        raise RuntimeError("killed")

    recorded = second.applied
    second._record = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        shop.ids("crash")
    second.close()
    third = SearchFollower(directory)
    assert third.applied == recorded
    shop.follower = third
    assert len(shop.ids("crash")) == 3
    assert third.index.size == 3


def test_an_emptied_or_restored_database_is_noticed_and_the_index_rebuilt(shop: Shop) -> None:
    """The log's epoch changes when its head row is written anew: a follower ahead of, or
    beside, the database it now sees rebuilds instead of serving what it held."""
    old = _listing(shop, name="Old Agent")
    shop.write(old, _listing(shop, name="Old Helper"), _listing(shop, name="Old Tool"))
    assert shop.ids("old")
    databases.empty(shop.engine)
    with sql.SqlStore(shop.engine).unit_of_work() as uow:
        uow.users.add(shop.owner)
        uow.commit()
    new = _listing(shop, name="New Agent")
    shop.write(new)  # seq 1 of a new epoch, behind the follower's position
    assert shop.ids("old") == []
    assert shop.ids("agent") == [new.listing_id]


@pytest.mark.parametrize(
    "damage",
    [
        "missing state",
        "corrupt index",
        "foreign format",
        "previous format",
        "missing directory",
        "damaged segment",
    ],
)
def test_a_missing_or_corrupt_index_is_rebuilt_never_served(
    shop: Shop, tmp_path: Path, damage: str
) -> None:
    """An index directory that cannot be trusted is wiped and rebuilt from the database."""
    directory = tmp_path / "index"
    listing = _listing(shop, name="Sturdy Agent")
    shop.write(listing)
    shop.follower = SearchFollower(directory)
    assert shop.ids("sturdy") == [listing.listing_id]
    shop.follower.close()
    state = directory / "fleetprompt-index.json"
    if damage == "missing state":
        state.unlink()
    elif damage == "corrupt index":
        (directory / "tantivy" / "meta.json").write_text("{not json", encoding="utf-8")
    elif damage == "foreign format":
        state.write_text(json.dumps({"format": "other", "applied": 10**9}), encoding="utf-8")
    elif damage == "previous format":
        _previous_format(directory, listing.listing_id)
    elif damage == "missing directory":
        shutil.rmtree(directory)
    else:  # a segment's term dictionary cut short (a disk or copy that lost its tail)
        terms = next((directory / "tantivy").glob("*.term"))
        terms.write_bytes(terms.read_bytes()[: terms.stat().st_size // 2])
    # A stale index holding a listing the database no longer has must not survive either.
    with shop.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE listings SET name = 'Renamed' WHERE listing_id = :id"),
            {"id": listing.listing_id},
        )
    reopened = SearchFollower(directory)
    assert reopened.applied is None
    shop.follower = reopened
    assert shop.ids("sturdy") == []
    assert shop.ids("renamed") == [listing.listing_id]


def _previous_format(directory: Path, listing_id: str) -> None:
    """``directory`` as the previous index format left it (``fleetprompt-tantivy-1``: three
    scored fields, unscored filters), holding the listing under its old name, at the
    position the follower recorded: the schema changed, so it must be rebuilt."""
    import tantivy  # noqa: PLC0415 - imported only past the importorskip above

    state = directory / "fleetprompt-index.json"
    recorded = json.loads(state.read_text(encoding="utf-8"))
    shutil.rmtree(directory / "tantivy")
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    for field in ("name", "labels", "summary"):
        builder.add_text_field(field, tokenizer_name="whitespace", index_option="freq")
    for field in ("tag", "category", "kind", "verified"):
        builder.add_text_field(field, tokenizer_name="raw", index_option="basic")
    builder.add_integer_field("updated", stored=True, fast=True)
    (directory / "tantivy").mkdir()
    old = tantivy.Index(builder.build(), path=str(directory / "tantivy"))
    writer = old.writer(heap_size=15_000_000, num_threads=1)
    writer.add_document(
        tantivy.Document(id=listing_id, name="s st stu stur sturd sturdy", updated=T0)
    )
    writer.commit()
    writer.wait_merging_threads()
    recorded["format"] = "fleetprompt-tantivy-1"
    state.write_text(json.dumps(recorded), encoding="utf-8")


def _log_rows(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("SELECT seq FROM search_log ORDER BY seq"))]


def _prune(engine: sa.Engine, before_ms: int) -> tuple[int, int]:
    with engine.begin() as conn:
        return search_log.prune(conn, before_ms=before_ms)


def test_pruning_deletes_whole_seqs_older_than_the_horizon_and_records_them(shop: Shop) -> None:
    """``prune`` deletes the log entries of every ``seq`` up to the last one with a row
    older than the horizon, keeps the later ones, and raises ``pruned_seq`` (never lowers
    it)."""
    for n in range(3):
        shop.write(_listing(shop, name=f"Logged {n}"))
    seqs = _log_rows(shop.engine)
    assert len(seqs) == 3
    with shop.engine.begin() as conn:  # the first two changes are a fortnight old
        conn.execute(
            sa.text("UPDATE search_log SET changed_at_ms = 1000 WHERE seq <= :seq"),
            {"seq": seqs[1]},
        )
    assert _prune(shop.engine, before_ms=2000) == (2, seqs[1])
    assert _log_rows(shop.engine) == [seqs[2]]
    assert _prune(shop.engine, before_ms=2000) == (0, seqs[1])
    with shop.engine.connect() as conn:
        assert search_log.head(conn)[1] == seqs[2]  # the head is untouched


def test_an_index_behind_the_pruned_log_is_rebuilt_never_served_stale(
    shop: Shop, tmp_path: Path
) -> None:
    """A slot left offline while the changes it missed were pruned cannot follow the log
    (it no longer lists them): it is rebuilt from the database at its next search."""
    directory = tmp_path / "index"
    shop.follower = SearchFollower(directory)
    gone, kept = _listing(shop, name="Gone Agent"), _listing(shop, name="Kept Agent")
    shop.write(gone, kept)
    assert set(shop.ids("agent")) == {gone.listing_id, kept.listing_id}
    shop.follower.close()  # offline while it changes and the change is pruned
    shop.write(gone.moved_by_publisher(ListingStatus.UNLISTED, T0 + 5))
    renamed = attrs.evolve(kept, name="Kept Helper", updated_at_ms=T0 + 6)
    shop.write(renamed)
    deleted, pruned = _prune(shop.engine, before_ms=2**62)
    assert deleted == 4  # two listings under the first seq, one under each later one
    assert _log_rows(shop.engine) == []
    reopened = SearchFollower(directory)
    assert reopened.applied is not None
    assert reopened.applied < pruned
    shop.follower = reopened
    shop.write(_listing(shop, name="Fresh Helper"))  # a change after the pruning
    assert shop.ids("agent") == []
    assert len(shop.ids("helper")) == 2
    assert reopened.applied == pruned + 1


def test_an_index_that_applied_the_pruned_changes_keeps_following(shop: Shop) -> None:
    """Pruning what an index already holds changes nothing for it: no rebuild."""
    first = _listing(shop, name="First Agent")
    shop.write(first)
    assert shop.ids("agent") == [first.listing_id]
    _prune(shop.engine, before_ms=2**62)
    rebuilds: list[object] = []
    original = shop.follower._rebuild

    def counted(*args: object, **kwargs: object) -> int:
        rebuilds.append(args)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    shop.follower._rebuild = counted  # type: ignore[method-assign]
    second = _listing(shop, name="Second Agent")
    shop.write(second)
    assert set(shop.ids("agent")) == {first.listing_id, second.listing_id}
    assert rebuilds == []


def test_a_rebuild_finds_what_following_found(shop: Shop) -> None:
    """After many writes, a follower built from scratch finds exactly the listings the one
    that followed the log finds, in a strict order. (Scores may differ: a followed index
    still counts deleted documents in its statistics until their segment merges.)"""
    listings = [
        _listing(shop, name=f"Agent {n}", summary="agent " * (n % 3), updated_at_ms=T0 + n)
        for n in range(12)
    ]
    shop.write(*listings)
    shop.ids("agent")
    shop.write(
        *(
            attrs.evolve(x, name=f"Agent Renamed {n}", updated_at_ms=T0 + 50 + n)
            for n, x in enumerate(listings[:4])
        )
    )
    shop.write(listings[5].moved_by_publisher(ListingStatus.UNLISTED, T0 + 99))
    followed = shop.search("agent")
    fresh = SearchFollower()
    with shop.engine.connect() as conn:
        assert fresh.rebuild(conn) == 11
    shop.follower = fresh
    rebuilt = shop.search("agent")
    assert {h.listing.listing_id for h in rebuilt} == {h.listing.listing_id for h in followed}
    assert len(rebuilt) == 11
    keys = [(h.score, h.listing.updated_at_ms, h.listing.listing_id) for h in rebuilt]
    assert keys == sorted(keys, reverse=True)
    # One scored field (ADR 0035): a longer summary lowers the name's word a little, so the
    # renamed listings rank by summary length (n % 3 words), then by the newest update.
    renamed = [listings[n].listing_id for n in (3, 0, 1, 2)]
    assert shop.ids("renamed") == renamed


def test_a_cursor_continues_from_its_listing_when_scores_move(shop: Shop) -> None:
    """Inserts move every BM25 score; the next page still starts right after the cursor's
    listing, so a walk returns each listing that existed at its start exactly once."""
    listings = [
        _listing(shop, name=f"Agent {n}", summary="agent " * (n % 4), updated_at_ms=T0 + n)
        for n in range(10)
    ]
    shop.write(*listings)
    base = ListingSearch(terms=("agent",), sort=SearchSort.RELEVANCE, limit=3)
    seen: list[str] = []
    search = base
    for round_ in range(20):
        with shop.store.read_unit_of_work() as uow:
            page = list(uow.listings.search_published(search))
        seen += [h.listing.listing_id for h in page]
        if len(page) < base.limit:
            break
        last = page[-1]
        search = attrs.evolve(
            base, after=(last.score, last.listing.updated_at_ms, last.listing.listing_id)
        )
        # Concurrent inserts between pages (new listings may or may not be seen).
        shop.write(*(_listing(shop, name=f"Agent Newcomer {round_} {n}") for n in range(4)))
    originals = {x.listing_id for x in listings}
    assert sorted(i for i in seen if i in originals) == sorted(originals)
    assert len(seen) == len(set(seen))


def test_a_hit_the_database_does_not_publish_leaves_the_page_full(shop: Shop) -> None:
    """The index may name a listing the store's transaction does not read as published
    (an index a moment ahead of, or behind, it): the page leaves it out and is refilled
    from the hits after it, so a full page stays full and a cursor walk, which takes
    ``limit + 1`` hits to know there is a next page, does not end early."""
    listings = [
        _listing(shop, name=f"Agent {n}", summary="agent " * n, updated_at_ms=T0 + n)
        for n in range(1, 9)
    ]
    shop.write(*listings)
    everything = shop.ids("agent")
    assert len(everything) == 8
    # Ghosts the database never stored, ranked among the first hits by the index alone.
    ghosts = [
        _listing(shop, name="Agent Agent Agent", summary="agent " * 9, updated_at_ms=T0 + n)
        for n in range(3)
    ]
    shop.follower.index.apply(IndexedListing(ghost, False) for ghost in ghosts)
    ghost_ids = {ghost.listing_id for ghost in ghosts}
    assert ghost_ids <= {
        hit.listing_id
        for hit in shop.follower.index.ranked(
            ListingSearch(terms=("agent",), sort=SearchSort.RELEVANCE, limit=5)
        )
    }
    page = shop.search("agent", limit=5)
    assert [hit.listing.listing_id for hit in page] == everything[:5]
    with shop.store.read_unit_of_work() as uow:
        cards = uow.listings.search_cards(
            ListingSearch(terms=("agent",), sort=SearchSort.RELEVANCE, limit=5)
        )
    assert [hit.listing.listing_id for hit in cards] == everything[:5]
    # A walk by cursor, 3 a page (4 asked, as the core asks), sees each listing once.
    seen: list[str] = []
    search = ListingSearch(terms=("agent",), sort=SearchSort.RELEVANCE, limit=4)
    while True:
        with shop.store.read_unit_of_work() as uow:
            hits = list(uow.listings.search_published(search))
        seen += [hit.listing.listing_id for hit in hits[:3]]
        if len(hits) <= 3:
            break
        last = hits[2]
        search = attrs.evolve(
            search, after=(last.score, last.listing.updated_at_ms, last.listing.listing_id)
        )
    assert seen == everything


_OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from fleetprompt_adapters import sql
    from fleetprompt_adapters.search.follower import SearchFollower
    from fleetprompt_core.base.enums import SearchSort
    from fleetprompt_core.domain.search import ListingSearch

    engine = sql.create_engine(sys.argv[1])
    store = sql.SqlStore(engine, search_engine=SearchFollower())
    search = ListingSearch(terms=(sys.argv[2],), sort=SearchSort.RELEVANCE, limit=50)
    with store.read_unit_of_work() as uow:
        print(" ".join(h.listing.listing_id for h in uow.listings.search_published(search)))
    with store.unit_of_work() as uow:
        listing = uow.listings.get(sys.argv[3])
        moved = listing.moved_by_publisher(listing.status.UNLISTED, listing.updated_at_ms + 1)
        assert uow.listings.update(moved, listing)
        uow.commit()
    engine.dispose()
    """
)


def test_two_processes_follow_one_database(shop: Shop) -> None:
    """Another process, with its own index, searches what this one committed a moment
    before, and this one searches at once what the other then committed."""
    first = _listing(shop, name="Shared Agent")
    second = _listing(shop, name="Shared Helper")
    shop.write(first)
    assert shop.ids("shared") == [first.listing_id]
    shop.write(second)  # this process's index has not seen it yet
    url = shop.engine.url.render_as_string(hide_password=False)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, url, "shared", first.listing_id],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == {first.listing_id, second.listing_id}
    assert shop.ids("shared") == [second.listing_id]


# --------------------------------------------------------------------------- property

WORDS = ["agent", "Agents", "agenda", "support", "TRIAGE", "data", "Straße", "éclair", "x1"]
TERMS = ["a", "ag", "agen", "agents", "sup", "tri", "d", "data", "stras", "écl", "x1", "zzz"]
TAGS = ["support", "ops", "data"]


PUBLISHERS = ("usr_engine", "usr_verified")


@st.composite
def catalogues(draw: st.DrawFn) -> list[Listing]:
    count = draw(st.integers(0, 12))
    return [
        entities.listing(
            listing_id=f"lst_{n:02d}",
            publisher_user_id=draw(st.sampled_from(PUBLISHERS)),
            status=draw(st.sampled_from([PUBLISHED, PUBLISHED, ListingStatus.DRAFT])),
            asset_kind=draw(st.sampled_from(list(AssetKind))),
            name=" ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))),
            summary=" ".join(draw(st.lists(st.sampled_from(WORDS), max_size=5))),
            tags=tuple(draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=2))),
            categories=tuple(draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=1))),
            created_at_ms=T0 + draw(st.integers(0, 2)),
            updated_at_ms=T0 + draw(st.integers(2, 4)),
        )
        for n in range(count)
    ]


def _fill(uow: UnitOfWork, listings: list[Listing]) -> None:
    for publisher_id in PUBLISHERS:
        uow.users.add(entities.user(user_id=publisher_id))
    verified = Verification(VerificationStatus.VERIFIED)
    uow.profiles.save(entities.profile(publisher_id="usr_verified", verification=verified))
    for listing in listings:
        uow.listings.add(listing)
    uow.commit()


def _pages(read: Callable[[], UnitOfWork], search: ListingSearch) -> list[list[SearchHit]]:
    pages: list[list[SearchHit]] = []
    page = search
    for _ in range(100):
        with read() as uow:
            hits = list(uow.listings.search_published(page))
        pages.append(hits)
        if len(hits) < search.limit:
            return pages
        page = attrs.evolve(search, after=sort_key(hits[-1], search.sort))
    raise AssertionError("pagination did not terminate")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_catalogues_give_the_same_pages_on_every_adapter(
    request: pytest.FixtureRequest, data: st.DataObject
) -> None:
    """Random catalogues and queries, on the in-memory adapter, SQLite and PostgreSQL, each
    composed with its search engine (ADR 0034): the same pages, page by page (the same
    listings, scores and order, for relevance with words too: each index holds the same
    documents); every hit published and matching every word and filter; the walk covers
    the core's matches once, in strictly monotonic key order."""
    listings = data.draw(catalogues(), label="catalogue")
    memory = MemoryStore()
    with memory.unit_of_work() as uow:
        _fill(uow, listings)
    readers: dict[str, Callable[[], UnitOfWork]] = {"memory": memory.unit_of_work}
    for name, fixture in (
        ("sqlite", "_sqlite_contract_engine"),
        ("postgres", "_postgres_contract_engine"),
    ):
        engine: sa.Engine = request.getfixturevalue(fixture)
        databases.empty(engine)
        with sql.SqlStore(engine).unit_of_work() as uow:
            _fill(uow, listings)
        readers[name] = sql.SqlStore(engine, search_engine=SearchFollower()).read_unit_of_work
    verified = {"usr_verified"}
    for _ in range(4):
        sort = data.draw(
            st.sampled_from([SearchSort.RELEVANCE, SearchSort.RELEVANCE, *SearchSort]),
            label="sort",
        )
        search = ListingSearch(
            terms=search_terms(
                " ".join(data.draw(st.lists(st.sampled_from(TERMS), min_size=1, max_size=3)))
            ),
            tags=tuple(data.draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=1))),
            categories=tuple(data.draw(st.lists(st.sampled_from(TAGS), max_size=1))),
            asset_kind=data.draw(st.none() | st.sampled_from(list(AssetKind))),
            verified_only=data.draw(st.booleans()),
            sort=sort,
            installs_since_ms=T0,
            limit=data.draw(st.integers(1, 4)),
        )
        pages = {name: _pages(read, search) for name, read in readers.items()}
        summaries = {
            name: [[(h.listing.listing_id, h.score, h.installs) for h in page] for page in walked]
            for name, walked in pages.items()
        }
        assert summaries["sqlite"] == summaries["memory"], search
        assert summaries["postgres"] == summaries["memory"], search
        walked = [hit for page in pages["memory"] for hit in page]
        want = {
            x.listing_id
            for x in listings
            if x.status is PUBLISHED
            and matches(x, search, publisher_verified=x.publisher_user_id in verified) is not None
        }
        assert sorted(hit.listing.listing_id for hit in walked) == sorted(want)
        keys = [sort_key(hit, sort) for hit in walked]
        assert keys == sorted(keys, reverse=descending(sort))
        assert len(set(keys)) == len(keys)

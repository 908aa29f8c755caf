"""The tantivy index behind the search port (ADR 0027): relevance and the invariants.

The ranking is BM25, so no oracle can restate its scores; what the core's
semantics fix holds whatever the engine, and is checked against
``domain.search``: only published listings (the index holds those alone),
every filter exact, every word matched (as a prefix of a token), a strict
order ``(score, updatedAtMs, listingId)`` descending, and a keyset walk that
returns every match exactly once, in the order of one big page.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("tantivy", reason="the search extra (tantivy) is not installed")

from contract import entities
from contract.entities import T0
from fleetprompt_adapters.search.tantivy_index import (
    IndexedListing,
    ListingIndex,
    RankedHit,
    prefix_terms,
)
from fleetprompt_core.base.enums import AssetKind, ListingStatus, SearchSort
from fleetprompt_core.domain.model import Listing
from fleetprompt_core.domain.search import (
    ListingSearch,
    matches,
    search_terms,
)

RELEVANCE = SearchSort.RELEVANCE


def _listing(**overrides: object) -> Listing:
    fields: dict[str, object] = {
        "status": ListingStatus.PUBLISHED,
        "summary": "",
        "tags": (),
        "categories": (),
    }
    fields.update(overrides)
    return entities.listing(**fields)


def _index(*listings: Listing, verified: frozenset[str] = frozenset()) -> ListingIndex:
    index = ListingIndex()
    index.rebuild(IndexedListing(x, x.publisher_user_id in verified) for x in listings)
    return index


def _q(text: str, **overrides: object) -> ListingSearch:
    fields: dict[str, object] = {"terms": search_terms(text), "sort": RELEVANCE, "limit": 50}
    fields.update(overrides)
    return ListingSearch(**fields)  # type: ignore[arg-type]


def _ids(hits: list[RankedHit]) -> list[str]:
    return [hit.listing_id for hit in hits]


def _filler(count: int, text: str) -> list[Listing]:
    """Listings mentioning ``text`` in their name and summary among other words (term
    statistics are per field)."""
    return [
        _listing(name=f"Filler {text} {n}", summary=f"{text} and other words number {n}")
        for n in range(count)
    ]


def test_prefix_terms_are_every_prefix_of_every_token() -> None:
    """The indexed terms of a field: each token's prefixes, shortest first."""
    assert prefix_terms(["bot", "ai"]) == "b bo bot a ai"
    assert prefix_terms([]) == ""


def test_relevance_a_listing_named_after_the_word_outranks_one_mentioning_it_in_its_summary() -> (
    None
):
    """BM25 with field weights: the word in the name beats the word once in a long summary."""
    named = _listing(name="Triage", summary="Routes tickets to queues.")
    mention = _listing(
        name="Ticket Router", summary="Routes tickets with triage rules to the right queues."
    )
    index = _index(named, mention, *_filler(20, "queues"))
    assert _ids(index.ranked(_q("triage"))) == [named.listing_id, mention.listing_id]
    assert _ids(index.ranked(_q("tri"))) == [named.listing_id, mention.listing_id]


def test_relevance_a_summary_about_the_word_outranks_one_mentioning_it_once() -> None:
    """Term frequency counts (the old Σ-of-weights scoring ranked these two the same)."""
    about = _listing(name="One", summary="agent agent agent")
    once = _listing(name="Two", summary="agent for many different kinds of work")
    index = _index(once, about)
    hits = index.ranked(_q("agent"))
    assert _ids(hits) == [about.listing_id, once.listing_id]
    assert hits[0].score > hits[1].score


def test_relevance_a_rare_word_outranks_a_common_one() -> None:
    """Two listings match both words, each with one word in its name: the one whose name
    holds the rare word ranks first (inverse document frequency)."""
    rare_named = _listing(name="Zebra", summary="agent")
    common_named = _listing(name="Agent", summary="zebra")
    index = _index(common_named, rare_named, *_filler(30, "agent"))
    assert _ids(index.ranked(_q("agent zebra"))) == [
        rare_named.listing_id,
        common_named.listing_id,
    ]


def test_relevance_the_name_outranks_tags_and_categories_which_outrank_the_summary() -> None:
    """The field weights (name 3, labels 2, summary 1) count in the one scored field: the
    same word once in the name, once in a tag, once in a category and once in the
    summary ranks the listings in that order (the tag and the category tie on score)."""
    named = _listing(name="Zeta agent", summary="alpha beta")
    tagged = _listing(name="Zeta other", tags=("agent",), summary="alpha beta")
    filed = _listing(name="Zeta other", categories=("agent",), summary="alpha beta")
    told = _listing(name="Zeta other", summary="alpha beta agent")
    index = _index(told, filed, tagged, named, *_filler(10, "other"))
    hits = index.ranked(_q("agent"))
    assert _ids(hits)[0] == named.listing_id
    assert set(_ids(hits)[1:3]) == {tagged.listing_id, filed.listing_id}
    assert _ids(hits)[3] == told.listing_id
    assert hits[0].score > hits[1].score == hits[2].score > hits[3].score


def test_a_cursor_s_listing_scores_again_exactly_as_on_its_page() -> None:
    """The cursor's listing is scored again (its query and its id): the score must be the
    page's own to the last unit, for any number of words and filters (tantivy sums an
    intersection's scores in an order of its own; a float sum in another grouping can
    differ in the last bit, and a walk would then skip or repeat a tie)."""
    words = ["agent", "zebra", "yak", "ops", "tool", "wren", "kiwi"]
    listings = [
        _listing(
            name=" ".join(words[(n + k) % 7] for k in range(1 + n % 3)) + f" {n}",
            summary=" ".join(words[(n * k) % 7] for k in range(2 + n % 9)),
            tags=("ops",) if n % 2 else ("dev",),
        )
        for n in range(300)
    ]
    index = _index(*listings)
    searches = [
        _q(" ".join(words[k] for k in range(first, first + count)))
        for count in (1, 2, 3, 4)
        for first in range(3)
    ]
    searches += [_q("ag ze yak", tags=("ops",)), _q("zebra yak kiwi", tags=("dev",))]
    checked = 0
    for search in searches:
        searcher = index._view.searcher
        query = index.query(search)
        for hit in index.ranked(attrs.evolve(search, limit=300)):
            assert index._score_of(searcher, query, hit.listing_id) == hit.score
            checked += 1
    assert checked > 1000


def test_filters_are_exact_and_add_nothing_to_the_score() -> None:
    """Tags, categories, kind and verified filter exactly; the score stays the words' own."""
    owner = entities.user()
    a = _listing(
        name="Agent",
        tags=("ops",),
        categories=("dev",),
        asset_kind=AssetKind.SPEC_ASSET,
        publisher_user_id=owner.user_id,
    )
    b = _listing(name="Agent", tags=("opsx",), categories=())
    index = _index(a, b, verified=frozenset({owner.user_id}))
    plain = {hit.listing_id: hit.score for hit in index.ranked(_q("agent"))}
    for search in (
        _q("agent", tags=("ops",)),
        _q("agent", categories=("dev",)),
        _q("agent", asset_kind=AssetKind.SPEC_ASSET),
        _q("agent", verified_only=True),
    ):
        hits = index.ranked(search)
        assert [(h.listing_id, h.score) for h in hits] == [(a.listing_id, plain[a.listing_id])]


def test_updates_and_deletes_are_seen_after_apply() -> None:
    """apply() replaces a listing's document and drops deleted ones, in one commit."""
    listing = _listing(name="Old Name")
    other = _listing(name="Other")
    index = _index(listing, other)
    renamed = attrs.evolve(listing, name="Fresh Name", updated_at_ms=T0 + 5)
    index.apply([IndexedListing(renamed, False)], deletes=[other.listing_id])
    assert index.ranked(_q("old")) == []
    assert index.ranked(_q("other")) == []
    assert _ids(index.ranked(_q("fresh"))) == [listing.listing_id]
    assert index.size == 1


def test_an_index_on_disk_reopens_with_its_documents(tmp_path: Path) -> None:
    """A directory index survives its process: reopened, it answers the same."""
    listing = _listing(name="Durable Agent")
    first = ListingIndex(tmp_path / "index")
    first.rebuild([IndexedListing(listing, False)])
    first.close()
    again = ListingIndex(tmp_path / "index")
    assert _ids(again.ranked(_q("durable"))) == [listing.listing_id]


def test_ties_are_broken_by_update_time_then_id_across_pages() -> None:
    """Identical documents tie on the score: (updatedAtMs, id) descending orders them,
    and a walk in pages of one returns them all once."""
    listings = [
        _listing(listing_id=f"lst_{n:02d}", name="Same Agent", updated_at_ms=T0 + n % 3)
        for n in range(12)
    ]
    index = _index(*listings)
    everything = index.ranked(_q("agent"))
    assert len({hit.score for hit in everything}) == 1
    assert [h.key for h in everything] == sorted((h.key for h in everything), reverse=True)
    assert _walk(index, _q("agent", limit=1)) == everything


def _walk(index: ListingIndex, search: ListingSearch) -> list[RankedHit]:
    walked: list[RankedHit] = []
    page = search
    for _ in range(1_000):
        hits = index.ranked(page)
        walked += hits
        if len(hits) < search.limit:
            return walked
        page = attrs.evolve(search, after=hits[-1].key)
    raise AssertionError("pagination did not terminate")


# --------------------------------------------------------------------------- property

WORDS = ["agent", "Agents", "agenda", "support", "TRIAGE", "data", "Straße", "éclair", "x1"]
TERMS = ["a", "ag", "agen", "agents", "sup", "tri", "d", "data", "stras", "écl", "x1", "zzz"]
TAGS = ["support", "ops", "data"]


@st.composite
def catalogues(draw: st.DrawFn) -> tuple[list[Listing], frozenset[str]]:
    count = draw(st.integers(0, 14))
    owners = ["usr_a", "usr_b"]
    listings = [
        entities.listing(
            listing_id=f"lst_{n:02d}",
            publisher_user_id=draw(st.sampled_from(owners)),
            status=ListingStatus.PUBLISHED,
            asset_kind=draw(st.sampled_from(list(AssetKind))),
            name=" ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))),
            summary=" ".join(draw(st.lists(st.sampled_from(WORDS), max_size=5))),
            tags=tuple(draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=2))),
            categories=(),
            updated_at_ms=T0 + draw(st.integers(0, 2)),
        )
        for n in range(count)
    ]
    verified = frozenset(draw(st.sets(st.sampled_from(owners))))
    return listings, verified


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_index_keeps_the_core_semantics_on_random_catalogues(data: st.DataObject) -> None:
    """Random catalogues and queries: the hits are exactly the core's matches (every word,
    every filter), in strictly descending key order, and page walks of any size return
    that list once."""
    listings, verified = data.draw(catalogues(), label="catalogue")
    index = _index(*listings, verified=verified)
    for _ in range(3):
        search = ListingSearch(
            terms=search_terms(" ".join(data.draw(st.lists(st.sampled_from(TERMS), max_size=3)))),
            tags=tuple(data.draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=1))),
            asset_kind=data.draw(st.none() | st.sampled_from(list(AssetKind))),
            verified_only=data.draw(st.booleans()),
            sort=RELEVANCE,
            limit=1_000,
        )
        if not search.terms:
            continue
        everything = index.ranked(search)
        want = {
            x.listing_id
            for x in listings
            if matches(x, search, publisher_verified=x.publisher_user_id in verified) is not None
        }
        assert {hit.listing_id for hit in everything} == want
        assert len(everything) == len(want)
        keys = [hit.key for hit in everything]
        assert keys == sorted(keys, reverse=True)
        assert len(set(keys)) == len(keys)
        limit = data.draw(st.integers(1, 4), label="limit")
        assert _walk(index, attrs.evolve(search, limit=limit)) == everything


def test_a_cursor_walk_in_one_process_equals_a_walk_from_cold_cursors() -> None:
    """Deep pages read the window after the remembered position of the cursor's group;
    the pages are the same as when every cursor comes from elsewhere (no memory), through
    groups of equal score and ties on the update time; a commit forgets the positions."""
    listings = [
        _listing(
            listing_id=f"lst_{n:03d}",
            name="Agent" if n % 4 else "Agent agent",
            summary=" ".join(["agent"] * (n % 3)) + f" words {n % 5}",
            updated_at_ms=T0 + n % 7,
        )
        for n in range(240)
    ]
    warm, cold = _index(*listings), _index(*listings)
    everything = warm.ranked(_q("agent", limit=1_000))
    assert len(everything) == len(listings)
    for limit in (1, 7, 50):
        search = _q("agent", limit=limit)
        walked = _walk(warm, search)
        assert walked == everything
        assert warm._view.positions  # the walk remembered where its pages ended
        page, cold_walk = search, []
        while True:
            cold._view.positions.clear()  # every cursor as if from another process
            hits = cold.ranked(page)
            cold_walk += hits
            if len(hits) < limit:
                break
            page = attrs.evolve(search, after=hits[-1].key)
        assert cold_walk == walked
    warm.apply([IndexedListing(_listing(name="Agent newcomer"), False)])
    assert not warm._view.positions


# --------------------------------------------------------------------------- a core-only install

_WITHOUT_TANTIVY = textwrap.dedent(
    """
    import sys
    sys.modules["tantivy"] = None  # a core-only install: no search engine
    from fleetprompt_adapters import MissingExtra
    from fleetprompt_adapters.memory import MemoryStore
    from fleetprompt_core.base.enums import ListingStatus, SearchSort
    from fleetprompt_core.domain.search import ListingSearch
    from contract import entities

    store = MemoryStore()
    with store.unit_of_work() as uow:
        owner = entities.user()
        uow.users.add(owner)
        uow.listings.add(
            entities.listing(publisher_user_id=owner.user_id, status=ListingStatus.PUBLISHED)
        )
        uow.commit()
    with store.unit_of_work() as uow:
        for sort in SearchSort:
            print(sort.value, len(uow.listings.search_published(ListingSearch(sort=sort))))
        print("updated", len(uow.listings.search_published(ListingSearch(terms=("a",)))))
        try:
            uow.listings.search_published(ListingSearch(terms=("a",), sort=SearchSort.RELEVANCE))
        except MissingExtra as missing:
            print("relevance |", missing.extra, "|", missing)
    """
)


def test_a_core_only_install_answers_every_search_but_relevance_with_words() -> None:
    """Without tantivy the in-memory adapter browses, filters and sorts; a relevance search
    with words (the engine's alone, ADR 0034) says which extra it needs, rather than
    ranking some other way."""
    tests = Path(__file__).resolve().parents[1]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tests), *sys.path]),
    }
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TANTIVY],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[: len(SearchSort)] == [f"{sort.value} 1" for sort in SearchSort]
    assert lines[len(SearchSort)] == "updated 1"
    assert lines[-1].startswith("relevance | search | ")
    assert "pip install 'fleetprompt[search]'" in lines[-1]


def test_a_bulk_build_is_one_segment_and_applied_changes_are_merged(tmp_path: Path) -> None:
    """A rebuild leaves one segment; forty commits of one change each (the log applied
    one search at a time) do not leave forty: the writer's merge policy folds them."""
    index = ListingIndex(tmp_path / "index")
    index.rebuild(IndexedListing(x, False) for x in _filler(300, "agent"))
    assert index.segments == 1
    for n in range(40):
        index.apply([IndexedListing(_listing(name=f"Applied agent {n}"), False)])
    index.close()  # waits for the merges under way
    reopened = ListingIndex(tmp_path / "index")
    assert reopened.size == 340
    assert reopened.segments <= 12
    assert len(reopened.ranked(_q("applied", limit=100))) == 40

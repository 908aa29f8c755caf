"""ListingRepository.search_published against one oracle built from ``domain.search``.

Every search, on every adapter, must return exactly the matches the core defines:
``matches`` applied to every stored listing with status ``published`` (given
which publishers are verified); each hit the stored listing itself. For every
order but one the oracle also fixes the list: it gives each hit its install
intents in the window for the ``installs`` sort, orders the hits by
``sort_key`` in the direction of ``descending`` and keeps those strictly after
``after`` in that direction; adapters may index however they like, they must
return exactly this list.

A **relevance search with words** is ranked by the adapter's search engine
(ADR 0034: BM25 with field weights), whose scores no oracle restates. The
oracle then checks what holds whatever the engine (:func:`engine_page`): the
same matches, each once; a strictly descending ``(score, updatedAtMs,
listingId)`` order; the same answer when asked twice; and the page after any
position is the adapter's own whole answer cut strictly after that position
(a position naming a matching listing is first moved to that listing's current
score, the engine's cursor rule), so walking the pages covers every match
exactly once, in that order. The relevance tests below say what the ranking
must get right.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import entities
from contract.conftest import ADAPTERS, SEARCH_PLAN_VARIANTS, open_adapter
from contract.entities import T0
from contract.harness import Adapter, assert_identical
from fleetprompt_core.base.enums import (
    AssetKind,
    ListingStatus,
    ReleaseStatus,
    Role,
    SearchSort,
    VerificationStatus,
)
from fleetprompt_core.domain.model import (
    InstallIntent,
    Listing,
    Release,
    User,
    Verification,
)
from fleetprompt_core.domain.search import (
    CardHit,
    ListingCard,
    ListingDetail,
    ListingSearch,
    PublisherNames,
    SearchHit,
    SortKey,
    descending,
    matches,
    ranked_by_engine,
    search_terms,
    sort_key,
)
from fleetprompt_core.ports import UnitOfWork


@pytest.fixture(params=[*ADAPTERS, *SEARCH_PLAN_VARIANTS])
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    """Every adapter, plus the SQL adapter forced onto each of its search plans."""
    yield from open_adapter(request, {**ADAPTERS, **SEARCH_PLAN_VARIANTS})


PUBLISHED = ListingStatus.PUBLISHED


def oracle(
    listings: Iterable[Listing],
    search: ListingSearch,
    *,
    verified: Collection[str] = frozenset(),
    installs: Mapping[str, int] | None = None,
) -> list[SearchHit]:
    """The reference result of ``search`` over ``listings`` (see the module doc).

    ``verified`` holds the verified publishers' ids, ``installs`` the install
    intents in the window per listing (absent ⇒ 0).
    """
    counts = installs or {}
    hits = []
    for listing in listings:
        if listing.status is not PUBLISHED:
            continue
        score = matches(listing, search, publisher_verified=listing.publisher_user_id in verified)
        if score is not None:
            count = counts.get(listing.listing_id, 0) if search.sort is SearchSort.INSTALLS else 0
            hits.append(SearchHit(listing, score, count))
    desc = descending(search.sort)
    hits.sort(key=lambda hit: sort_key(hit, search.sort), reverse=desc)
    if search.after is not None:
        after = search.after
        hits = [
            hit
            for hit in hits
            if (sort_key(hit, search.sort) < after if desc else sort_key(hit, search.sort) > after)
        ]
    return hits[: search.limit]


def card_of(uow: UnitOfWork, listing: Listing, installs_since_ms: int) -> ListingCard:
    """The card of ``listing`` from the other ports (ADR 0040): its publisher's user and
    profile, its install intents counted by ``count_created_since``."""
    owner = listing.publisher_user_id
    user = uow.users.get(owner)
    names = PublisherNames(None if user is None else user.display_name)
    profile = uow.profiles.get(owner)
    if profile is not None:
        names = PublisherNames(
            names.user_display_name,
            profile.display_name,
            profile.verification.status,
            profile.verification.checked_at_ms,
            profile.verification.reason,
        )
    counts = uow.intents.count_created_since([listing.listing_id], installs_since_ms)
    return ListingCard.of(listing, names, counts.get(listing.listing_id, 0))


def _search(adapter: Adapter, search: ListingSearch) -> list[SearchHit]:
    """``search_published``'s answer, after checking that ``search_cards`` answers the same
    hits as cards (every search of this suite checks both, on every adapter and plan)."""

    def read(uow: UnitOfWork) -> tuple[list[SearchHit], list[CardHit], list[CardHit]]:
        hits = list(uow.listings.search_published(search))
        cards = list(uow.listings.search_cards(search))
        since = search.installs_since_ms
        want = [CardHit(card_of(uow, hit.listing, since), hit.score) for hit in hits]
        return hits, cards, want

    hits, cards, want = adapter.read(read)
    assert [(c.listing.listing_id, c.score) for c in cards] == [
        (c.listing.listing_id, c.score) for c in want
    ]
    for card, wanted in zip(cards, want, strict=True):
        assert type(card.score) is int
        assert_identical(card.listing, wanted.listing)
    return hits


#: More than any test catalogue holds: one page is the whole answer.
EVERYTHING = 10_000


def engine_page(
    adapter: Adapter, matched: Sequence[SearchHit], search: ListingSearch
) -> list[SearchHit]:
    """The page the adapter must give for a relevance search with words, after checking
    the invariants of its whole answer against ``matched`` (the oracle's matches)."""
    whole = attrs.evolve(search, after=None, limit=EVERYTHING)
    everything = _search(adapter, whole)
    assert _summary(_search(adapter, whole)) == _summary(everything), "not deterministic"
    want = {hit.listing.listing_id: hit.listing for hit in matched}
    got = [hit.listing.listing_id for hit in everything]
    assert len(got) == len(set(got)), "a listing twice"
    assert set(got) == set(want), "not exactly the matches"
    for hit in everything:
        assert type(hit.score) is int
        assert_identical(hit.listing, want[hit.listing.listing_id])
    keys = [sort_key(hit, SearchSort.RELEVANCE) for hit in everything]
    assert all(a > b for a, b in itertools.pairwise(keys)), "not in strict key order"
    after = search.after
    if after is None:
        return everything[: search.limit]
    now = {key[-1]: key[0] for key in keys}
    # The engine's cursor rule: a position naming a matching listing takes its score now.
    bound = (now[after[-1]], *after[1:]) if after[-1] in now else tuple(after)
    return [hit for hit, key in zip(everything, keys, strict=True) if key < bound][: search.limit]


def expected(
    adapter: Adapter,
    listings: Iterable[Listing],
    search: ListingSearch,
    *,
    verified: Collection[str] = frozenset(),
    installs: Mapping[str, int] | None = None,
) -> list[SearchHit]:
    """The page ``adapter`` must answer ``search`` with (see the module doc)."""
    if not ranked_by_engine(search):
        return oracle(listings, search, verified=verified, installs=installs)
    everything = attrs.evolve(search, after=None, limit=EVERYTHING)
    matched = oracle(listings, everything, verified=verified, installs=installs)
    return engine_page(adapter, matched, search)


def _summary(hits: Sequence[SearchHit]) -> list[tuple[str, int, int]]:
    return [(hit.listing.listing_id, hit.score, hit.installs) for hit in hits]


def assert_same_hits(got: Sequence[SearchHit], want: Sequence[SearchHit]) -> None:
    """Same listings (identical values), same scores, same order."""
    assert _summary(got) == _summary(want)
    for hit, expected in zip(got, want, strict=True):
        assert type(hit.score) is int
        assert_identical(hit.listing, expected.listing)


def _walk(adapter: Adapter, search: ListingSearch) -> list[SearchHit]:
    """Every page of ``search``, feeding the sort key of the last hit back as ``after``."""
    walked: list[SearchHit] = []
    page_search = search
    for _ in range(1_000):
        page = _search(adapter, page_search)
        assert len(page) <= search.limit
        walked.extend(page)
        if len(page) < search.limit:
            return walked
        page_search = attrs.evolve(search, after=sort_key(page[-1], search.sort))
    raise AssertionError("pagination did not terminate")


def _publisher(adapter: Adapter) -> User:
    owner = entities.user()
    adapter.add(owner)
    return owner


def _listing(owner: User, **overrides: object) -> Listing:
    fields: dict[str, object] = {"status": PUBLISHED, "publisher_user_id": owner.user_id}
    fields.update(overrides)
    return entities.listing(**fields)


def _q(text: str, **overrides: object) -> ListingSearch:
    return ListingSearch(terms=search_terms(text), **overrides)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- semantics


def test_search_returns_published_listings_only(adapter: Adapter) -> None:
    """Draft, unlisted and suspended listings never appear, whatever matches."""
    owner = _publisher(adapter)
    listings = [_listing(owner, status=status, name="Common Name") for status in ListingStatus]
    adapter.add(*listings)
    for search in (ListingSearch(), _q("common"), ListingSearch(tags=("support",))):
        got = _search(adapter, search)
        assert [h.listing.listing_id for h in got] == [
            x.listing_id for x in listings if x.status is PUBLISHED
        ]


def test_search_terms_match_token_prefixes(adapter: Adapter) -> None:
    """A term matches a token it is a prefix of (case-folded), never a token's middle."""
    owner = _publisher(adapter)
    triage = _listing(owner, name="Support Triage-Bot", summary="", tags=(), categories=())
    adapter.add(triage)
    for text in ("tri", "TRIAGE", "bot", "sup triage", "Support"):
        assert [h.listing.listing_id for h in _search(adapter, _q(text))] == [triage.listing_id], (
            text
        )
    for text in ("riage", "triages", "port", "ot", "zz"):
        assert _search(adapter, _q(text)) == [], text


def test_search_every_term_must_match(adapter: Adapter) -> None:
    """A listing matches only when every term matches some field."""
    owner = _publisher(adapter)
    both = _listing(owner, name="Alpha", summary="beta", tags=(), categories=())
    only = _listing(owner, name="Alpha", summary="gamma", tags=(), categories=())
    adapter.add(both, only)
    assert {h.listing.listing_id for h in _search(adapter, _q("alpha beta"))} == {both.listing_id}
    assert {h.listing.listing_id for h in _search(adapter, _q("alpha"))} == {
        both.listing_id,
        only.listing_id,
    }


def test_search_sorts_other_than_relevance_report_the_field_score(adapter: Adapter) -> None:
    """A hit of a non-relevance sort reports Σ over terms of the weights of the fields the
    term matched (name 3, labels 2, summary 1); it orders nothing; without words it is 0."""
    owner = _publisher(adapter)
    everywhere = _listing(
        owner, name="Alpha", summary="alpha beta", tags=("alpha",), categories=("beta",)
    )
    label_only = _listing(owner, name="Other", summary="", tags=(), categories=("alphabet",))
    adapter.add(everywhere, label_only)
    got = _search(adapter, _q("alpha beta", sort=SearchSort.NAME))
    assert _summary(got) == [(everywhere.listing_id, 3 + 2 + 1 + 2 + 1, 0)]
    got = _search(adapter, _q("alpha", sort=SearchSort.NAME))
    assert _summary(got) == [(everywhere.listing_id, 6, 0), (label_only.listing_id, 2, 0)]
    assert [h.score for h in _search(adapter, ListingSearch())] == [0, 0]
    assert [h.score for h in _search(adapter, ListingSearch(sort=SearchSort.RELEVANCE))] == [0, 0]


# --------------------------------------------------------------------------- relevance


def _relevance(adapter: Adapter, text: str, **overrides: object) -> list[str]:
    search = _q(text, sort=SearchSort.RELEVANCE, limit=50, **overrides)
    return [hit.listing.listing_id for hit in _search(adapter, search)]


def _others(owner: User, count: int, text: str = "") -> list[Listing]:
    """Listings that share the catalogue's other words (so every word has statistics)."""
    return [
        _listing(
            owner,
            name=f"Helper {n} {text}".strip(),
            summary=f"routes tickets and other work number {n} {text}".strip(),
            tags=("misc",),
            categories=(),
        )
        for n in range(count)
    ]


def test_relevance_a_listing_named_after_the_word_outranks_one_mentioning_it_in_its_summary(
    adapter: Adapter,
) -> None:
    """BM25 with field weights: the word as the name beats the word once in a summary,
    although the summary's listing was updated later (the Σ-of-weights tie-break would
    not decide that way round on relevance alone)."""
    owner = _publisher(adapter)
    named = _listing(owner, name="Triage", summary="Routes tickets to queues.", tags=())
    mention = _listing(
        owner,
        name="Ticket Router",
        summary="Routes tickets with triage rules to the right queues.",
        tags=(),
        updated_at_ms=named.updated_at_ms + 1,
    )
    adapter.add(named, mention, *_others(owner, 8))
    assert _relevance(adapter, "triage") == [named.listing_id, mention.listing_id]
    assert _relevance(adapter, "tri") == [named.listing_id, mention.listing_id]


def test_relevance_a_summary_about_the_word_outranks_one_mentioning_it_once(
    adapter: Adapter,
) -> None:
    """Term frequency counts: a short summary about the word beats a long one that says it
    once (ADR 0009's scores tied these two)."""
    owner = _publisher(adapter)
    about = _listing(owner, name="One", summary="agent agent agent", tags=())
    once = _listing(
        owner,
        name="Two",
        summary="agent for many different kinds of work",
        tags=(),
        updated_at_ms=about.updated_at_ms + 1,
    )
    adapter.add(once, about, *_others(owner, 4))
    assert _relevance(adapter, "agent") == [about.listing_id, once.listing_id]


def test_relevance_a_rare_word_outranks_a_common_one(adapter: Adapter) -> None:
    """Two listings match both words, each with one of them in its name: the one whose
    name holds the rare word ranks first (inverse document frequency), whichever was
    updated last."""
    owner = _publisher(adapter)
    rare_named = _listing(owner, name="Zebra", summary="agent", tags=())
    common_named = _listing(
        owner, name="Agent", summary="zebra", tags=(), updated_at_ms=rare_named.updated_at_ms + 1
    )
    adapter.add(common_named, rare_named, *_others(owner, 12, "agent"))
    assert _relevance(adapter, "agent zebra") == [rare_named.listing_id, common_named.listing_id]
    assert _relevance(adapter, "zebra agent") == [rare_named.listing_id, common_named.listing_id]


def test_relevance_weighs_the_name_above_tags_and_categories_above_the_summary(
    adapter: Adapter,
) -> None:
    """The same word once, in fields of one length (one five-letter word each, in every
    listing): name > tag, category > summary, although each later update would have won a
    tie."""
    owner = _publisher(adapter)

    def shaped(name: str, label: str, summary: str, at: int, *, category: bool = False) -> Listing:
        labels = {"categories": (label,), "tags": ()} if category else {"tags": (label,)}
        return _listing(owner, name=name, summary=summary, updated_at_ms=T0 + at, **labels)

    in_name = shaped("zebra", "mango", "lemon", 0)
    in_tag = shaped("mango", "zebra", "lemon", 1)
    in_category = shaped("mango", "zebra", "lemon", 2, category=True)
    in_summary = shaped("mango", "lemon", "zebra", 3)
    fillers = [shaped("mango", "lemon", "peach", 4 + n) for n in range(6)]
    adapter.add(in_name, in_tag, in_category, in_summary, *fillers)
    got = _relevance(adapter, "zebra")
    assert got[0] == in_name.listing_id
    assert set(got[1:3]) == {in_tag.listing_id, in_category.listing_id}
    assert got[3:] == [in_summary.listing_id]
    assert _relevance(adapter, "zeb") == got


def test_relevance_pages_are_deterministic_and_cover_each_match_once(adapter: Adapter) -> None:
    """Many listings tie on the score: the same query twice gives the same pages, and
    walking them in pages of 1, 2 and 5 returns the whole answer once, in its order."""
    owner = _publisher(adapter)
    listings = [
        _listing(
            owner,
            listing_id=f"lst_{n:02d}",
            name="Same Agent" if n % 3 else "Agent",
            summary="agent " * (n % 2),
            tags=(),
            updated_at_ms=T0 + n % 4,
        )
        for n in range(15)
    ]
    adapter.add(*listings)
    search = _q("agent", sort=SearchSort.RELEVANCE)
    want = expected(adapter, listings, attrs.evolve(search, limit=EVERYTHING))
    assert len(want) == 15
    for limit in (1, 2, 5):
        first = _walk(adapter, attrs.evolve(search, limit=limit))
        assert _summary(first) == _summary(_walk(adapter, attrs.evolve(search, limit=limit)))
        assert_same_hits(first, want)


def test_search_tag_and_category_filters_require_every_value(adapter: Adapter) -> None:
    """tags and categories filters keep listings carrying all the given values."""
    owner = _publisher(adapter)
    a = _listing(owner, tags=("ops", "data"), categories=("analytics",))
    b = _listing(owner, tags=("ops",), categories=("analytics", "dev"))
    c = _listing(owner, tags=("data",), categories=())
    adapter.add(a, b, c)

    def ids(search: ListingSearch) -> set[str]:
        return {h.listing.listing_id for h in _search(adapter, search)}

    assert ids(ListingSearch(tags=("ops",))) == {a.listing_id, b.listing_id}
    assert ids(ListingSearch(tags=("ops", "data"))) == {a.listing_id}
    assert ids(ListingSearch(tags=("data", "ops"))) == {a.listing_id}
    assert ids(ListingSearch(tags=("op",))) == set()  # filters are exact, not prefixes
    assert ids(ListingSearch(categories=("analytics",))) == {a.listing_id, b.listing_id}
    assert ids(ListingSearch(categories=("analytics", "dev"))) == {b.listing_id}
    assert ids(ListingSearch(tags=("data",), categories=("analytics",))) == {a.listing_id}
    assert ids(ListingSearch(tags=("ops",), categories=("analytics",))) == {
        a.listing_id,
        b.listing_id,
    }


def test_search_asset_kind_filter_is_equality(adapter: Adapter) -> None:
    """asset_kind keeps only listings of that kind; None keeps every kind."""
    owner = _publisher(adapter)
    listings = {kind: _listing(owner, asset_kind=kind) for kind in AssetKind}
    adapter.add(*listings.values())
    for kind, listing in listings.items():
        got = _search(adapter, ListingSearch(asset_kind=kind))
        assert [h.listing.listing_id for h in got] == [listing.listing_id]
    assert len(_search(adapter, ListingSearch())) == len(AssetKind)


def _catalogue(adapter: Adapter) -> list[Listing]:
    """Published listings with ties on every sort key component, plus hidden ones."""
    owner = _publisher(adapter)
    rows = [
        # id, name, summary, tags, created, updated, status
        ("lst_e", "Agent Smith", "support agent", ("support",), 1, 5, PUBLISHED),
        ("lst_b", "agent smith", "", ("ops",), 1, 5, PUBLISHED),
        ("lst_h", "Straße Agent", "data", (), 2, 2, PUBLISHED),
        ("lst_a", "strasse", "agent of data", ("data",), 2, 7, PUBLISHED),
        ("lst_g", "Éclair", "agent", ("support", "data"), 0, 7, PUBLISHED),
        ("lst_c", "Zed Agent", "agent agent", (), 3, 3, PUBLISHED),
        ("lst_f", "ßeta", "x", ("agent",), 3, 5, PUBLISHED),
        ("lst_d", "Agent Draft", "agent", ("support",), 4, 9, ListingStatus.DRAFT),
        ("lst_i", "Agent Hidden", "agent", (), 4, 9, ListingStatus.UNLISTED),
        ("lst_j", "日本語 エージェント", "agent", (), 2, 6, PUBLISHED),
    ]
    listings = [
        _listing(
            owner,
            listing_id=listing_id,
            name=name,
            summary=summary,
            tags=tags,
            categories=(),
            created_at_ms=T0 + created,
            updated_at_ms=T0 + updated,
            status=status,
        )
        for listing_id, name, summary, tags, created, updated, status in rows
    ]
    adapter.add(*listings)
    return listings


SEARCHES = {
    "everything": ListingSearch(),
    "agent": _q("agent"),
    "two_terms": _q("agent sm"),
    "stras": _q("stras"),
    "tag": ListingSearch(tags=("support",)),
    "cjk": _q("日本"),
}


@pytest.mark.parametrize("sort", list(SearchSort))
@pytest.mark.parametrize("name", list(SEARCHES))
def test_search_orders_by_each_sort(adapter: Adapter, sort: SearchSort, name: str) -> None:
    """Each sort returns the oracle's order: keys descending (name ascending, casefolded)."""
    listings = _catalogue(adapter)
    search = attrs.evolve(SEARCHES[name], sort=sort)
    want = expected(adapter, listings, search)
    assert_same_hits(_search(adapter, search), want)
    if name != "cjk":
        assert len(want) > 1


def test_search_name_sort_uses_casefold_then_id(adapter: Adapter) -> None:
    """Name order compares casefold(name) by code point (ß is ss), ties by id ascending."""
    _catalogue(adapter)
    got = _search(adapter, ListingSearch(sort=SearchSort.NAME))
    assert [h.listing.listing_id for h in got] == [
        "lst_b",  # "agent smith"
        "lst_e",  # "agent smith" (Agent Smith): same key, greater id
        "lst_f",  # "sseta" (ßeta)
        "lst_a",  # "strasse"
        "lst_h",  # "strasse agent" (Straße Agent)
        "lst_c",  # "zed agent"
        "lst_g",  # "éclair": U+00E9 sorts after z
        "lst_j",  # CJK last
    ]


def test_r_pag_02_a_relevance_walk_survives_inserts_and_updates_between_pages(
    adapter: Adapter,
) -> None:
    """Between the pages of a relevance walk with words, listings are published and one
    already returned is updated (both move every BM25 score, the statistics being the
    catalogue's): the walk still returns each listing that matched at its start exactly
    once, and nothing twice."""
    owner = _publisher(adapter)
    listings = [
        _listing(
            owner,
            listing_id=f"lst_{n:02d}",
            name=f"Agent {n}",
            summary="agent " * (n % 4),
            tags=(),
            updated_at_ms=T0 + n,
        )
        for n in range(12)
    ]
    adapter.add(*listings)
    search = _q("agent", sort=SearchSort.RELEVANCE, limit=3)
    seen: list[str] = []
    page_search = search
    for round_ in range(50):
        page = _search(adapter, page_search)
        seen += [hit.listing.listing_id for hit in page]
        if len(page) < search.limit:
            break
        page_search = attrs.evolve(search, after=sort_key(page[-1], SearchSort.RELEVANCE))
        newcomers = [
            _listing(owner, name=f"Agent newcomer {round_} {n}", summary="agent agent", tags=())
            for n in range(3)
        ]
        adapter.add(*newcomers)
        # An update moves its listing (in every order); one already walked past stays seen.
        done = adapter.read(lambda uow, listing_id=seen[0]: uow.listings.get(listing_id))
        assert done is not None
        touched = attrs.evolve(done, summary=done.summary + " agent", updated_at_ms=T0 + 99)
        assert adapter.write(lambda uow, a=touched, b=done: uow.listings.update(a, b))
    else:
        raise AssertionError("the walk did not end")
    assert len(seen) == len(set(seen))
    assert {x.listing_id for x in listings} <= set(seen)


def _positions(hits: Sequence[SearchHit], sort: SearchSort) -> list[SortKey]:
    """Every hit's key and keys between and around them."""
    keys = [sort_key(hit, sort) for hit in hits]
    extra: list[SortKey] = []
    for key in keys:
        head, last = key[:-1], key[-1]
        extra += [(*head, ""), (*head, f"{last}0"), (*head, "lst_zz")]
    if sort is SearchSort.NAME:
        extra += [("", ""), ("a", ""), ("zzz", ""), ("\uffff", "")]
    elif sort is SearchSort.RELEVANCE:
        extra += [(0, T0 + 5, ""), (100, 0, ""), (1, T0 + 100, "lst_a"), (10**15, 0, "")]
        extra += [(key[0], key[1] + 1, "lst_zz") for key in keys]
    elif sort is SearchSort.INSTALLS:
        extra += [(-1, "lst_zz"), (0, ""), (0, "lst_zz"), (1, ""), (2, "lst_c"), (100, "")]
    else:
        extra += [(T0 - 1, ""), (T0 + 100, ""), (T0 + 2, "lst_c")]
    return keys + extra


@pytest.mark.parametrize("sort", list(SearchSort))
def test_search_is_strictly_after_the_keyset_in_both_directions(
    adapter: Adapter, sort: SearchSort
) -> None:
    """Every position and limit gives the oracle page (strictly below when desc, above for name)."""
    listings = _catalogue(adapter)
    for name in ("everything", "agent"):
        base = attrs.evolve(SEARCHES[name], sort=sort)
        everything = expected(adapter, listings, attrs.evolve(base, limit=EVERYTHING))
        for after, limit in itertools.product(_positions(everything, sort), (1, 2, 50)):
            search = attrs.evolve(base, after=after, limit=limit)
            want = expected(adapter, listings, search)
            assert _summary(_search(adapter, search)) == _summary(want), (
                name,
                after,
                limit,
            )


@pytest.mark.parametrize("sort", list(SearchSort))
@pytest.mark.parametrize("limit", [1, 3])
def test_search_pages_yield_each_hit_once(adapter: Adapter, sort: SearchSort, limit: int) -> None:
    """Walking pages with after = sort key of the last hit returns the oracle list exactly."""
    listings = _catalogue(adapter)
    search = attrs.evolve(SEARCHES["agent"], sort=sort, limit=limit)
    want = expected(adapter, listings, attrs.evolve(search, limit=EVERYTHING))
    assert_same_hits(_walk(adapter, search), want)


def test_search_sees_updates(adapter: Adapter) -> None:
    """After an update the index reflects the new name, tags, status and timestamps."""
    owner = _publisher(adapter)
    listing = _listing(owner, name="Old Name", tags=("legacy",), summary="")
    other = _listing(owner, name="Another", tags=(), summary="", updated_at_ms=T0 + 5)
    adapter.add(listing, other)
    renamed = attrs.evolve(listing, name="Fresh Name", tags=("modern",), updated_at_ms=T0 + 10)
    assert adapter.write(lambda uow: uow.listings.update(renamed, listing)) is True
    assert _search(adapter, _q("old")) == []
    assert _search(adapter, ListingSearch(tags=("legacy",))) == []
    assert [h.listing for h in _search(adapter, _q("fresh"))] == [renamed]
    assert [h.listing for h in _search(adapter, ListingSearch(tags=("modern",)))] == [renamed]
    got = _search(adapter, ListingSearch(sort=SearchSort.UPDATED))
    assert [h.listing.listing_id for h in got] == [listing.listing_id, other.listing_id]
    unlisted = renamed.moved_by_publisher(ListingStatus.UNLISTED, T0 + 11)
    assert adapter.write(lambda uow: uow.listings.update(unlisted, renamed)) is True
    assert _search(adapter, _q("fresh")) == []


def test_a_published_listing_moved_back_to_draft_leaves_the_ranked_pages(adapter: Adapter) -> None:
    """Published → draft takes the listing out of the search engine too: a relevance page
    after it is full, and a walk covers the other matches (an engine still holding the
    draft ranked it first and the page lost a hit to it, which ended the walk early)."""
    owner = _publisher(adapter)
    gone = _listing(owner, name="Agent Agent Agent", tags=("agent",), updated_at_ms=T0 + 3)
    kept = [
        _listing(owner, name="Agent", updated_at_ms=T0 + 2),
        _listing(owner, name="Other", summary="agent", updated_at_ms=T0 + 1),
    ]
    adapter.add(gone, *kept)
    search = _q("agent", sort=SearchSort.RELEVANCE, limit=2)
    assert gone.listing_id in [hit.listing.listing_id for hit in _search(adapter, search)]
    draft = gone.moved_by_publisher(ListingStatus.DRAFT, T0 + 4)
    assert adapter.write(lambda uow: uow.listings.update(draft, gone)) is True
    page = _search(adapter, search)
    assert {hit.listing.listing_id for hit in page} == {listing.listing_id for listing in kept}
    walked = _walk(adapter, attrs.evolve(search, limit=1))
    assert sorted(hit.listing.listing_id for hit in walked) == sorted(
        listing.listing_id for listing in kept
    )


# ------------------------------------------------------------- §14: verified, installs

#: The start of the install window in the tests below.
SINCE = T0 + 1_000


def _verified_shop(adapter: Adapter) -> tuple[list[Listing], set[str]]:
    """Two listings per publisher: verified, unverified, failed, and one with no profile."""
    listings: list[Listing] = []
    verified: set[str] = set()
    for status in (*VerificationStatus, None):
        owner = _publisher(adapter)
        if status is not None:
            profile = entities.profile(
                publisher_id=owner.user_id, verification=Verification(status, T0, "checked")
            )
            adapter.add(profile)
        if status is VerificationStatus.VERIFIED:
            verified.add(owner.user_id)
        listings += [
            _listing(owner, name="Agent One", tags=("support",), updated_at_ms=T0 + 1),
            _listing(owner, name="Agent Two", summary="data", tags=(), updated_at_ms=T0 + 2),
        ]
    (verified_id,) = verified
    draft = entities.listing(publisher_user_id=verified_id, name="Agent Draft", tags=("support",))
    listings.append(draft)
    adapter.add(*listings)
    return listings, verified


@pytest.mark.parametrize("sort", list(SearchSort))
def test_x_cat_01_verified_filter_keeps_verified_publishers_only(
    adapter: Adapter, sort: SearchSort
) -> None:
    """verified_only keeps exactly the published listings of publishers whose profile says
    verified (unverified, failed and profile-less publishers are left out), in every sort,
    with and without words and filters, page after page."""
    listings, verified = _verified_shop(adapter)
    for base in (ListingSearch(), _q("agent"), _q("agent data"), ListingSearch(tags=("support",))):
        search = attrs.evolve(base, sort=sort, verified_only=True, installs_since_ms=SINCE)
        want = expected(adapter, listings, search, verified=verified)
        assert want
        assert {hit.listing.publisher_user_id for hit in want} == verified
        assert_same_hits(_search(adapter, search), want)
        assert_same_hits(_walk(adapter, attrs.evolve(search, limit=1)), want)
    unfiltered = _search(adapter, attrs.evolve(ListingSearch(), sort=sort))
    assert len(unfiltered) == 8


def test_x_cat_01_verification_changes_are_seen(adapter: Adapter) -> None:
    """A publisher whose verification is withdrawn leaves the verified results at once."""
    owner = _publisher(adapter)
    profile = entities.profile(
        publisher_id=owner.user_id, verification=Verification(VerificationStatus.VERIFIED)
    )
    listing = _listing(owner)
    adapter.add(profile, listing)
    search = ListingSearch(verified_only=True)
    assert [h.listing.listing_id for h in _search(adapter, search)] == [listing.listing_id]
    failed = attrs.evolve(profile, verification=Verification(VerificationStatus.FAILED))
    adapter.write(lambda uow: uow.profiles.save(failed))
    assert _search(adapter, search) == []


def _installed_shop(adapter: Adapter) -> tuple[list[Listing], dict[str, int]]:
    """Published listings with 3, 1, 1, 0 and 0 install intents in the window (and older
    intents that do not count), plus a draft with many."""
    owner = _publisher(adapter)
    buyer = entities.user()
    adapter.add(buyer)
    inside = {"lst_a": 3, "lst_b": 1, "lst_c": 1, "lst_d": 0, "lst_e": 0, "lst_f": 9}
    outside = {"lst_b": 5, "lst_d": 2, "lst_e": 0, "lst_a": 1}
    listings = [
        _listing(
            owner,
            listing_id=listing_id,
            name=f"Agent {listing_id}",
            status=ListingStatus.DRAFT if listing_id == "lst_f" else PUBLISHED,
            updated_at_ms=T0 + 10 - n,
        )
        for n, listing_id in enumerate(inside)
    ]
    rows: list[Release | InstallIntent] = []
    for listing_id, count in inside.items():
        release = entities.release(listing_id=listing_id, publisher_user_id=owner.user_id)
        rows.append(release)
        stamps = [SINCE] * count + [SINCE - 1] * outside.get(listing_id, 0)
        rows += [
            entities.intent(
                listing_id=listing_id,
                release_id=release.release_id,
                buyer_user_id=buyer.user_id,
                created_at_ms=stamp,
            )
            for stamp in stamps
        ]
    adapter.add(*listings, *rows)
    return listings, {k: v for k, v in inside.items() if v}


def test_x_cat_02_installs_sort_counts_the_window_then_the_id(adapter: Adapter) -> None:
    """sort=installs orders by install intents created at or after the window start, ties
    by id (both descending); intents before the window and unpublished listings never
    count; every keyset position and page size gives the oracle's page."""
    listings, installs = _installed_shop(adapter)
    search = ListingSearch(sort=SearchSort.INSTALLS, installs_since_ms=SINCE)
    got = _search(adapter, search)
    assert [(h.listing.listing_id, h.installs) for h in got] == [
        ("lst_a", 3),
        ("lst_c", 1),
        ("lst_b", 1),
        ("lst_e", 0),
        ("lst_d", 0),
    ]
    assert_same_hits(got, oracle(listings, search, installs=installs))
    words = (("agent",), search_terms("lst_b"))
    for query in (search, *(attrs.evolve(search, terms=terms) for terms in words)):
        everything = oracle(listings, attrs.evolve(query, limit=1_000), installs=installs)
        for after, limit in itertools.product(_positions(everything, query.sort), (1, 2, 50)):
            page = attrs.evolve(query, after=after, limit=limit)
            assert _summary(_search(adapter, page)) == _summary(
                oracle(listings, page, installs=installs)
            ), (query.terms, after, limit)
        for limit in (1, 2):
            assert_same_hits(_walk(adapter, attrs.evolve(query, limit=limit)), everything)


def test_cards_read_every_status_with_the_publisher_and_the_window(adapter: Adapter) -> None:
    """``cards`` (ADR 0040) gives each existing listing's card whatever its status: the
    listing's own values at their limits, its publisher's user name and, when saved, the
    profile's name and verification, its install intents from the window start; ids that
    name nothing (or cannot exist) are left out."""
    plain = entities.user_minimal()
    named = entities.user_at_limits()
    buyer = entities.user()
    adapter.add(plain, named, buyer, entities.profile_at_limits(publisher_id=named.user_id))
    listings = [
        attrs.evolve(entities.listing_at_limits(publisher_user_id=named.user_id), status=status)
        for status in ListingStatus
    ]
    minimal = entities.listing_minimal(publisher_user_id=plain.user_id)
    listings.append(attrs.evolve(minimal, status=PUBLISHED))
    adapter.add(*listings)
    counted = listings[0]
    release = entities.release(
        listing_id=counted.listing_id, publisher_user_id=counted.publisher_user_id
    )
    adapter.add(release)
    for index, at in enumerate((SINCE - 1, SINCE, SINCE + 1)):
        adapter.add(
            entities.intent(
                install_intent_id=f"int_{index}",
                buyer_user_id=buyer.user_id,
                listing_id=counted.listing_id,
                release_id=release.release_id,
                created_at_ms=at,
            )
        )
    ids = [item.listing_id for item in listings]

    def read(uow: UnitOfWork) -> tuple[Mapping[str, ListingCard], dict[str, ListingCard]]:
        got = uow.listings.cards([*ids, "lst_missing", "lst_\x00", ids[0]], SINCE)
        return got, {item.listing_id: card_of(uow, item, SINCE) for item in listings}

    got, want = adapter.read(read)
    assert sorted(got) == sorted(ids)
    for listing_id, card in want.items():
        assert_identical(got[listing_id], card)
    assert got[counted.listing_id].installs == 2
    assert got[ids[-1]].publisher == PublisherNames(None)
    assert got[ids[0]].publisher.profile_display_name is not None
    assert adapter.read(lambda uow: uow.listings.cards([], SINCE)) == {}


def test_detail_reads_the_card_description_and_first_releases(adapter: Adapter) -> None:
    """``detail`` (ADR 0042) gives an existing listing's card (whatever its status), its
    description, and its first ``n`` releases that are not revoked, newest first with ties
    broken by id, exactly as ``cards``, ``get`` and ``list_for_listing`` read them; an id
    that names nothing (or cannot exist) reads as ``None``."""
    named, buyer = entities.user_at_limits(), entities.user()
    adapter.add(named, buyer, entities.profile_at_limits(publisher_id=named.user_id))
    listings = [
        attrs.evolve(entities.listing_at_limits(publisher_user_id=named.user_id), status=status)
        for status in ListingStatus
    ]
    listings.append(entities.listing_minimal(publisher_user_id=named.user_id, status=PUBLISHED))
    adapter.add(*listings)
    owner = listings[0]
    builders = [entities.release, entities.release_at_limits, entities.release_minimal]
    releases = [
        attrs.evolve(
            builders[n % 3](),
            release_id=f"rel_{n:02d}",
            listing_id=owner.listing_id,
            publisher_user_id=owner.publisher_user_id,
            version=f"1.0.{n}",
            status=ReleaseStatus.REVOKED if n % 4 == 1 else ReleaseStatus.PUBLISHED,
            revoked_at_ms=T0 if n % 4 == 1 else None,
            revoke_reason="gone" if n % 4 == 1 else None,
            published_at_ms=T0 + n // 3,  # three releases share each time: the id decides
        )
        for n in range(12)
    ]
    adapter.add(*releases)
    adapter.add(
        entities.intent(
            buyer_user_id=buyer.user_id,
            listing_id=owner.listing_id,
            release_id=releases[0].release_id,
            created_at_ms=SINCE,
        )
    )

    def read(uow: UnitOfWork) -> list[tuple[ListingDetail | None, ListingDetail]]:
        pairs = []
        for listing, limit in itertools.product(listings, (1, 2, 5, 21)):
            want = ListingDetail(
                card_of(uow, listing, SINCE),
                listing.description,
                tuple(uow.releases.list_for_listing(listing.listing_id, False, None, limit)),
            )
            pairs.append((uow.listings.detail(listing.listing_id, SINCE, limit), want))
        return pairs

    for got, want in adapter.read(read):
        assert_identical(got, want)
    detail = adapter.read(lambda uow: uow.listings.detail(owner.listing_id, SINCE, 21))
    assert detail is not None
    assert len(detail.releases) == 9
    assert detail.card.installs == 1
    for missing in ("lst_missing", "lst_\x00"):
        assert adapter.read(lambda uow, m=missing: uow.listings.detail(m, SINCE, 21)) is None


def test_x_cat_02_installs_window_moves(adapter: Adapter) -> None:
    """Moving the window start past some intents lowers their listing's count."""
    _installed_shop(adapter)
    later = ListingSearch(sort=SearchSort.INSTALLS, installs_since_ms=SINCE + 1)
    assert [h.installs for h in _search(adapter, later)] == [0] * 5
    earlier = ListingSearch(sort=SearchSort.INSTALLS, installs_since_ms=SINCE - 1)
    got = _search(adapter, earlier)
    assert [(h.listing.listing_id, h.installs) for h in got] == [
        ("lst_b", 6),
        ("lst_a", 4),
        ("lst_d", 2),
        ("lst_c", 1),
        ("lst_e", 0),
    ]


# --------------------------------------------------------------------------- property

WORDS = [
    "agent",
    "Agents",
    "agenda",
    "support",
    "TRIAGE",
    "data",
    "database",
    "Straße",
    "strasse",
    "éclair",
    "Éclat",
    "日本語",
    "x1",
    "x10",
]
TERMS = ["a", "ag", "agen", "agents", "sup", "tri", "d", "data", "stras", "strasse", "é", "écl"]
TERMS += ["日", "x1", "x10", "ops", "zzz"]
TAGS = ["support", "ops", "data", "x1"]
CATEGORIES = ["operations", "analytics", "dev"]

_words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)
_separator = st.sampled_from([" ", "-", "_", ", "])


PUBLISHERS = ("usr_search", "usr_other")


@attrs.frozen
class Catalogue:
    """Listings, the rows they need (publishers, releases, intents) and what the oracle
    needs to know of them."""

    listings: list[Listing]
    rows: list[object]
    verified: frozenset[str]
    installs: dict[str, int]

    def oracle(self, search: ListingSearch) -> list[SearchHit]:
        return oracle(self.listings, search, verified=self.verified, installs=self.installs)

    def expected(self, adapter: Adapter, search: ListingSearch) -> list[SearchHit]:
        return expected(
            adapter, self.listings, search, verified=self.verified, installs=self.installs
        )


@st.composite
def catalogues(draw: st.DrawFn) -> Catalogue:
    """Small catalogues whose texts share a vocabulary and whose keys tie often, from two
    publishers (each verified or not), with install intents inside and outside the window
    that starts at ``T0``."""
    rows: list[object] = [entities.user(user_id="usr_buyer")]
    verified = set()
    for publisher_id in PUBLISHERS:
        rows.append(entities.user(user_id=publisher_id, roles=frozenset({Role.PUBLISHER})))
        status = draw(st.none() | st.sampled_from(list(VerificationStatus)))
        if status is not None:
            rows.append(
                entities.profile(publisher_id=publisher_id, verification=Verification(status))
            )
        if status is VerificationStatus.VERIFIED:
            verified.add(publisher_id)
    count = draw(st.integers(0, 12))
    numbers = draw(st.lists(st.integers(0, 99), min_size=count, max_size=count, unique=True))
    listings = []
    installs: dict[str, int] = {}
    for number in numbers:
        created = T0 + draw(st.integers(0, 3))
        listing_id = f"lst_{number:02d}"
        publisher_id = draw(st.sampled_from(PUBLISHERS))
        inside, outside = draw(st.integers(0, 2)), draw(st.integers(0, 1))
        if inside or outside:
            release = entities.release(listing_id=listing_id, publisher_user_id=publisher_id)
            rows.append(release)
            rows += [
                entities.intent(
                    listing_id=listing_id,
                    release_id=release.release_id,
                    buyer_user_id="usr_buyer",
                    created_at_ms=at,
                )
                for at in [T0 + 1] * (inside - 1) + [T0] * min(inside, 1) + [T0 - 1] * outside
            ]
            installs[listing_id] = inside
        listings.append(
            entities.listing(
                listing_id=listing_id,
                publisher_user_id=publisher_id,
                status=draw(st.sampled_from(list(ListingStatus))),
                asset_kind=draw(st.sampled_from(list(AssetKind))),
                name=draw(_separator).join(draw(_words)),
                summary=" ".join(draw(st.lists(st.sampled_from(WORDS), max_size=4))),
                tags=tuple(draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=3))),
                categories=tuple(
                    draw(st.lists(st.sampled_from(CATEGORIES), unique=True, max_size=2))
                ),
                created_at_ms=created,
                updated_at_ms=created + draw(st.integers(0, 3)),
            )
        )
    return Catalogue(listings, rows, frozenset(verified), installs)


def _random_key(draw: st.DrawFn, sort: SearchSort) -> SortKey:
    listing_id = draw(st.sampled_from(["", "lst_", "lst_3", "lst_50", "lst_99", "lst_zz"]))
    if sort is SearchSort.NAME:
        return (
            draw(st.sampled_from(["", "a", "agent", "straße", "strasse", "x", "é", "日"])),
            listing_id,
        )
    stamp = T0 + draw(st.integers(-1, 7))
    if sort is SearchSort.RELEVANCE:
        score = draw(st.integers(0, 20) | st.sampled_from([10**5, 10**6, 2 * 10**6, 10**9]))
        return (score, stamp, listing_id)
    if sort is SearchSort.INSTALLS:
        return (draw(st.integers(-1, 3)), listing_id)
    return (stamp, listing_id)


@st.composite
def searches(draw: st.DrawFn, catalogue: Catalogue) -> ListingSearch:
    """A random normalised search, with after = none, a real hit's key, or any key."""
    sort = draw(st.sampled_from(list(SearchSort)))
    search = ListingSearch(
        terms=search_terms(" ".join(draw(st.lists(st.sampled_from(TERMS), max_size=3)))),
        tags=tuple(draw(st.lists(st.sampled_from(TAGS), unique=True, max_size=2))),
        categories=tuple(draw(st.lists(st.sampled_from(CATEGORIES), unique=True, max_size=1))),
        asset_kind=draw(st.none() | st.sampled_from(list(AssetKind))),
        verified_only=draw(st.booleans()),
        sort=sort,
        installs_since_ms=T0,
        limit=draw(st.integers(1, 6)),
    )
    everything = catalogue.oracle(attrs.evolve(search, limit=1_000))
    choice = draw(st.sampled_from(["none", "hit", "random"]))
    if choice == "hit" and everything:
        return attrs.evolve(search, after=sort_key(draw(st.sampled_from(everything)), sort))
    if choice == "random":
        return attrs.evolve(search, after=_random_key(draw, sort))
    return search


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_search_agrees_with_the_oracle_on_random_catalogues(
    adapter: Adapter, data: st.DataObject
) -> None:
    """Random catalogues and searches: the oracle's page (for relevance with words: the
    invariants, and the page after the position in the adapter's own order), and page
    walks return the rest of it, each match once."""
    catalogue = data.draw(catalogues(), label="catalogue")
    with adapter.fresh() as fresh:
        fresh.add(*catalogue.rows, *catalogue.listings)
        for _ in range(3):
            search = data.draw(searches(catalogue), label="search")
            assert_same_hits(_search(fresh, search), catalogue.expected(fresh, search))
            rest = catalogue.expected(fresh, attrs.evolve(search, limit=EVERYTHING))
            assert_same_hits(_walk(fresh, search), rest)

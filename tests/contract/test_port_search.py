"""ListingRepository.search_published against an oracle built from ``domain.search``.

The oracle applies ``matches`` to every stored listing with status ``published``
(given which publishers are verified), gives each hit its install intents in
the window for the ``installs`` sort, orders the hits by ``sort_key`` in the
direction of ``descending`` and keeps those strictly after ``after`` in that
direction. Adapters may index however
they like; they must return exactly this list.
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
    ListingSearch,
    SearchHit,
    SortKey,
    descending,
    matches,
    search_terms,
    sort_key,
)


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


def _search(adapter: Adapter, search: ListingSearch) -> list[SearchHit]:
    return list(adapter.read(lambda uow: uow.listings.search_published(search)))


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


def test_search_score_sums_field_weights(adapter: Adapter) -> None:
    """Score = Σ over terms of the weights of matching fields: name 3, labels 2, summary 1."""
    owner = _publisher(adapter)
    everywhere = _listing(
        owner, name="Alpha", summary="alpha beta", tags=("alpha",), categories=("beta",)
    )
    label_only = _listing(owner, name="Other", summary="", tags=(), categories=("alphabet",))
    adapter.add(everywhere, label_only)
    got = _search(adapter, _q("alpha beta", sort=SearchSort.RELEVANCE))
    assert _summary(got) == [(everywhere.listing_id, 3 + 2 + 1 + 2 + 1, 0)]
    got = _search(adapter, _q("alpha", sort=SearchSort.RELEVANCE))
    assert _summary(got) == [(everywhere.listing_id, 6, 0), (label_only.listing_id, 2, 0)]
    assert [h.score for h in _search(adapter, ListingSearch())] == [0, 0]


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
    want = oracle(listings, search)
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
        extra += [(0, T0 + 5, ""), (100, 0, ""), (1, T0 + 100, "lst_a")]
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
        everything = oracle(listings, attrs.evolve(base, limit=1_000))
        for after, limit in itertools.product(_positions(everything, sort), (1, 2, 50)):
            search = attrs.evolve(base, after=after, limit=limit)
            assert _summary(_search(adapter, search)) == _summary(oracle(listings, search)), (
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
    assert_same_hits(_walk(adapter, search), oracle(listings, attrs.evolve(search, limit=1_000)))


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
        want = oracle(listings, search, verified=verified)
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
        return (draw(st.integers(0, 20)), stamp, listing_id)
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
    """Random catalogues and searches: same page as the oracle, and page walks return it all."""
    catalogue = data.draw(catalogues(), label="catalogue")
    with adapter.fresh() as fresh:
        fresh.add(*catalogue.rows, *catalogue.listings)
        for _ in range(3):
            search = data.draw(searches(catalogue), label="search")
            assert_same_hits(_search(fresh, search), catalogue.oracle(search))
            rest = catalogue.oracle(attrs.evolve(search, limit=1_000))
            assert_same_hits(_walk(fresh, search), rest)

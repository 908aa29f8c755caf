"""ListingRepository: round trips, primary key, compare-and-set, list_by_owner keyset."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import attrs
import pytest

from contract import entities
from contract.entities import T0
from contract.harness import Adapter, assert_identical, expected_page, walk_pages
from fleetprompt_adapters.memory import MemoryStore
from fleetprompt_core.base.enums import ListingStatus
from fleetprompt_core.base.errors import DuplicateError
from fleetprompt_core.domain.model import Listing, User
from fleetprompt_core.ports import CreatedKey, UniqueConstraint

LISTING_BUILDERS = {
    "typical": entities.listing,
    "at_limits": entities.listing_at_limits,
    "minimal": entities.listing_minimal,
}


def _owner(adapter: Adapter) -> User:
    owner = entities.user()
    adapter.add(owner)
    return owner


def _key(listing: Listing) -> CreatedKey:
    return (listing.created_at_ms, listing.listing_id)


@pytest.mark.parametrize("builder", LISTING_BUILDERS.values(), ids=list(LISTING_BUILDERS))
def test_listings_add_get_round_trip(adapter: Adapter, builder: Callable[..., Listing]) -> None:
    """A stored listing reads back identical (unicode beyond the BMP, exact bounds, empties)."""
    owner = _owner(adapter)
    listing = builder(publisher_user_id=owner.user_id)
    adapter.add(listing)
    assert_identical(adapter.read(lambda uow: uow.listings.get(listing.listing_id)), listing)


def test_listings_get_unknown_is_none(adapter: Adapter) -> None:
    """An unknown listing id reads as None."""
    owner = _owner(adapter)
    adapter.add(entities.listing(publisher_user_id=owner.user_id))
    assert adapter.read(lambda uow: uow.listings.get("lst_unknown")) is None


def test_listings_primary_key_is_unique(adapter: Adapter) -> None:
    """Adding a listing id twice is DuplicateError(PRIMARY_KEY) and keeps the first."""
    owner = _owner(adapter)
    first = entities.listing(publisher_user_id=owner.user_id)
    adapter.add(first)
    with pytest.raises(DuplicateError) as raised:
        adapter.add(attrs.evolve(first, name="Other"))
    assert raised.value.constraint == UniqueConstraint.PRIMARY_KEY
    assert_identical(adapter.read(lambda uow: uow.listings.get(first.listing_id)), first)


# --------------------------------------------------------------------------- compare-and-set


def _stored(adapter: Adapter, **overrides: object) -> Listing:
    owner = _owner(adapter)
    listing = entities.listing(publisher_user_id=owner.user_id, **overrides)
    adapter.add(listing)
    return listing


def test_listings_update_stores_when_expected_matches(adapter: Adapter) -> None:
    """update(new, expected) with the stored status and updated_at stores new and is True."""
    listing = _stored(adapter)
    new = listing.moved_by_publisher(ListingStatus.PUBLISHED, T0 + 10)
    assert adapter.write(lambda uow: uow.listings.update(new, listing)) is True
    assert_identical(adapter.read(lambda uow: uow.listings.get(listing.listing_id)), new)


def test_listings_update_refuses_when_status_changed(adapter: Adapter) -> None:
    """An expected status that differs from the stored one is False and changes nothing."""
    listing = _stored(adapter, status=ListingStatus.UNLISTED)
    stale = attrs.evolve(listing, status=ListingStatus.PUBLISHED)
    new = attrs.evolve(listing, name="Changed", updated_at_ms=T0 + 10)
    assert adapter.write(lambda uow: uow.listings.update(new, stale)) is False
    assert_identical(adapter.read(lambda uow: uow.listings.get(listing.listing_id)), listing)


def test_listings_update_refuses_when_updated_at_changed(adapter: Adapter) -> None:
    """An expected updated_at that differs from the stored one is False and changes nothing."""
    listing = _stored(adapter, updated_at_ms=T0 + 5)
    for other in (T0 + 4, T0 + 6):
        stale = attrs.evolve(listing, updated_at_ms=other)
        new = attrs.evolve(listing, name="Changed", updated_at_ms=T0 + 10)
        assert adapter.write(lambda uow, s=stale, n=new: uow.listings.update(n, s)) is False
    assert_identical(adapter.read(lambda uow: uow.listings.get(listing.listing_id)), listing)


def test_listings_update_compares_only_status_and_updated_at(adapter: Adapter) -> None:
    """Other fields of expected need not match: the check is on status and updated_at."""
    listing = _stored(adapter)
    expected = attrs.evolve(listing, name="Something else", tags=(), summary="x")
    new = attrs.evolve(listing, name="Renamed", updated_at_ms=T0 + 10)
    assert adapter.write(lambda uow: uow.listings.update(new, expected)) is True
    assert_identical(adapter.read(lambda uow: uow.listings.get(listing.listing_id)), new)


def test_listings_update_with_stale_expected_is_refused_after_a_success(adapter: Adapter) -> None:
    """Once an update succeeded, the same expected value no longer matches."""
    listing = _stored(adapter)
    first = attrs.evolve(listing, name="First", updated_at_ms=T0 + 1)
    second = attrs.evolve(listing, name="Second", updated_at_ms=T0 + 2)
    assert adapter.write(lambda uow: uow.listings.update(first, listing)) is True
    assert adapter.write(lambda uow: uow.listings.update(second, listing)) is False
    assert adapter.write(lambda uow: uow.listings.update(second, first)) is True
    assert_identical(adapter.read(lambda uow: uow.listings.get(listing.listing_id)), second)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (entities.listing_at_limits, entities.listing_minimal),
        (entities.listing_minimal, entities.listing_at_limits),
    ],
    ids=["shrink", "grow"],
)
def test_listings_update_replaces_every_field(
    adapter: Adapter, start: Callable[..., Listing], end: Callable[..., Listing]
) -> None:
    """update replaces collections and optionals wholesale (no stale tags, images, links)."""
    owner = _owner(adapter)
    listing = start(publisher_user_id=owner.user_id)
    adapter.add(listing)
    new = attrs.evolve(
        end(),
        listing_id=listing.listing_id,
        publisher_user_id=owner.user_id,
        asset_kind=listing.asset_kind,
        created_at_ms=listing.created_at_ms,
    )
    assert adapter.write(lambda uow: uow.listings.update(new, listing)) is True
    assert_identical(adapter.read(lambda uow: uow.listings.get(listing.listing_id)), new)


def test_listings_update_is_visible_inside_the_same_unit_of_work(adapter: Adapter) -> None:
    """After update, get in the same unit of work sees the new value; a second CAS on it works."""
    listing = _stored(adapter)
    first = attrs.evolve(listing, name="First", updated_at_ms=T0 + 1)
    second = attrs.evolve(listing, name="Second", updated_at_ms=T0 + 2)
    with adapter.uow() as uow:
        assert uow.listings.update(first, listing) is True
        assert_identical(uow.listings.get(listing.listing_id), first)
        assert uow.listings.update(second, listing) is False
        assert uow.listings.update(second, first) is True
        uow.commit()
    assert_identical(adapter.read(lambda uow: uow.listings.get(listing.listing_id)), second)


# --------------------------------------------------------------------------- list_by_owner

STATUSES = list(ListingStatus)


def _catalogue(adapter: Adapter) -> tuple[User, User, list[Listing]]:
    """Two owners; the first has listings of every status with created_at ties."""
    owner, other = entities.user(), entities.user()
    created = [T0 + 2, T0, T0 + 1, T0 + 1, T0 + 3, T0 + 1, T0, T0 + 2, T0 + 3, T0 + 1, T0]
    # Ids deliberately not in creation order, so the id tie-break is visible.
    ids = [f"lst_{c}" for c in "kbhaejcfgdi"]
    listings = [
        entities.listing(
            listing_id=listing_id,
            publisher_user_id=owner.user_id,
            status=STATUSES[i % len(STATUSES)],
            created_at_ms=at,
            updated_at_ms=at + 100 - i,
        )
        for i, (listing_id, at) in enumerate(zip(ids, created, strict=True))
    ]
    foreign = [
        entities.listing(publisher_user_id=other.user_id, created_at_ms=T0 + 1, status=status)
        for status in STATUSES
    ]
    adapter.add(owner, other, *listings, *foreign)
    return owner, other, listings


def test_listings_list_by_owner_orders_by_created_then_id_descending(adapter: Adapter) -> None:
    """list_by_owner returns only the owner's listings, (created_at, id) descending."""
    owner, _, listings = _catalogue(adapter)
    got = adapter.read(lambda uow: uow.listings.list_by_owner(owner.user_id, None, None, 100))
    assert [x.listing_id for x in got] == [
        x.listing_id for x in expected_page(listings, _key, None, 100)
    ]
    for item, stored in zip(got, expected_page(listings, _key, None, 100), strict=True):
        assert_identical(item, stored)


@pytest.mark.parametrize("status", STATUSES)
def test_listings_list_by_owner_filters_by_status(adapter: Adapter, status: ListingStatus) -> None:
    """With a status, only the owner's listings in that status are returned, in order."""
    owner, _, listings = _catalogue(adapter)
    wanted = [x for x in listings if x.status is status]
    got = adapter.read(lambda uow: uow.listings.list_by_owner(owner.user_id, status, None, 100))
    assert [x.listing_id for x in got] == [
        x.listing_id for x in expected_page(wanted, _key, None, 100)
    ]
    assert got


@pytest.mark.parametrize("status", [None, ListingStatus.DRAFT])
def test_listings_list_by_owner_is_strictly_after_the_keyset(
    adapter: Adapter, status: ListingStatus | None
) -> None:
    """For every position (stored keys and keys between them) and limit, the page is exact."""
    owner, _, listings = _catalogue(adapter)
    wanted = [x for x in listings if status is None or x.status is status]
    positions: list[CreatedKey] = [_key(x) for x in listings]
    positions += [
        (at, suffix) for at in range(T0 - 1, T0 + 5) for suffix in ("", "lst_c5", "lst_z")
    ]
    for after, limit in itertools.product(positions, (1, 2, 5)):
        got = adapter.read(
            lambda uow, a=after, n=limit: uow.listings.list_by_owner(owner.user_id, status, a, n)
        )
        want = expected_page(wanted, _key, after, limit)
        assert [x.listing_id for x in got] == [x.listing_id for x in want], (after, limit)


@pytest.mark.parametrize("limit", [1, 2, 3, 11, 12])
def test_listings_list_by_owner_pages_yield_each_listing_once(adapter: Adapter, limit: int) -> None:
    """Feeding the last key back walks every listing of the owner exactly once, in order."""
    owner, _, listings = _catalogue(adapter)

    def fetch(after: CreatedKey | None, n: int) -> list[Listing]:
        return list(
            adapter.read(lambda uow: uow.listings.list_by_owner(owner.user_id, None, after, n))
        )

    walked = walk_pages(fetch, _key, limit)
    assert [x.listing_id for x in walked] == [
        x.listing_id for x in expected_page(listings, _key, None, len(listings))
    ]


def test_listings_list_by_owner_of_unknown_owner_is_empty(adapter: Adapter) -> None:
    """An owner without listings gets an empty page."""
    _catalogue(adapter)
    assert (
        list(adapter.read(lambda uow: uow.listings.list_by_owner("usr_none", None, None, 10))) == []
    )


def test_listings_list_by_owner_sees_status_changes(adapter: Adapter) -> None:
    """The status filter applies to the stored status after an update."""
    listing = _stored(adapter)
    owner = listing.publisher_user_id
    published = listing.moved_by_publisher(ListingStatus.PUBLISHED, T0 + 1)
    adapter.write(lambda uow: uow.listings.update(published, listing))
    drafts = adapter.read(
        lambda uow: uow.listings.list_by_owner(owner, ListingStatus.DRAFT, None, 10)
    )
    live = adapter.read(
        lambda uow: uow.listings.list_by_owner(owner, ListingStatus.PUBLISHED, None, 10)
    )
    assert list(drafts) == []
    assert [x.listing_id for x in live] == [listing.listing_id]


def test_memory_catalogue_version_moves_when_a_listing_enters_or_leaves_draft() -> None:
    """The in-process catalogue version (the public cache's key) moves when a listing is
    published and again when it goes back to draft (it leaves every public answer); an
    edit of a draft that stays a draft leaves it."""
    store = MemoryStore()
    owner = entities.user()
    draft = entities.listing(publisher_user_id=owner.user_id, status=ListingStatus.DRAFT)

    def write(listing: Listing, expected: Listing | None) -> int | None:
        with store.unit_of_work() as uow:
            if expected is None:
                uow.users.add(owner)
                uow.listings.add(listing)
            else:
                assert uow.listings.update(listing, expected) is True
            uow.commit()
        return store.catalog_version.current()

    start = write(draft, None)
    edited = attrs.evolve(draft, name="Renamed Draft", updated_at_ms=T0 + 1)
    assert write(edited, draft) == start
    published = edited.moved_by_publisher(ListingStatus.PUBLISHED, T0 + 2)
    assert (moved := write(published, edited)) != start
    back = published.moved_by_publisher(ListingStatus.DRAFT, T0 + 3)
    assert write(back, published) != moved

"""ReleaseRepository: round trips, version uniqueness, revocation CAS, listing and latest."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import attrs
import pytest

from contract import entities
from contract.entities import T0
from contract.harness import Adapter, assert_identical, expected_page, walk_pages
from fleetprompt_core.base.enums import ReleaseStatus
from fleetprompt_core.base.errors import DuplicateError
from fleetprompt_core.domain.model import Listing, Release
from fleetprompt_core.policies.versions import VersionCandidate
from fleetprompt_core.ports import CreatedKey, UniqueConstraint

RELEASE_BUILDERS = {
    "typical": entities.release,
    "at_limits": entities.release_at_limits,
    "minimal": entities.release_minimal,
}


def _listing(adapter: Adapter) -> Listing:
    owner = entities.user()
    listing = entities.listing(publisher_user_id=owner.user_id)
    adapter.add(owner, listing)
    return listing


def _release(listing: Listing, **overrides: object) -> Release:
    return entities.release(
        listing_id=listing.listing_id, publisher_user_id=listing.publisher_user_id, **overrides
    )


def _key(release: Release) -> CreatedKey:
    return (release.published_at_ms, release.release_id)


@pytest.mark.parametrize("builder", RELEASE_BUILDERS.values(), ids=list(RELEASE_BUILDERS))
def test_releases_add_get_round_trip(adapter: Adapter, builder: Callable[..., Release]) -> None:
    """A stored release reads back identical (unicode beyond the BMP, exact bounds, empties)."""
    listing = _listing(adapter)
    release = builder(listing_id=listing.listing_id, publisher_user_id=listing.publisher_user_id)
    adapter.add(release)
    assert_identical(adapter.read(lambda uow: uow.releases.get(release.release_id)), release)


def test_releases_get_unknown_is_none(adapter: Adapter) -> None:
    """An unknown release id reads as None."""
    listing = _listing(adapter)
    adapter.add(_release(listing))
    assert adapter.read(lambda uow: uow.releases.get("rel_unknown")) is None


def test_releases_version_is_unique_per_listing(adapter: Adapter) -> None:
    """The same version on the same listing is DuplicateError(RELEASE_VERSION)."""
    listing = _listing(adapter)
    first = _release(listing, version="1.0.0")
    adapter.add(first)
    with pytest.raises(DuplicateError) as raised:
        adapter.add(_release(listing, version="1.0.0", published_at_ms=T0 + 1))
    assert raised.value.constraint == UniqueConstraint.RELEASE_VERSION
    got = adapter.read(
        lambda uow: uow.releases.list_for_listing(listing.listing_id, True, None, 10)
    )
    assert [r.release_id for r in got] == [first.release_id]


def test_releases_revoked_version_is_never_reused(adapter: Adapter) -> None:
    """A revoked release still holds its version: re-adding it is RELEASE_VERSION."""
    listing = _listing(adapter)
    first = _release(listing, version="2.0.0")
    adapter.add(first)
    revoked = first.revoked("bad build", T0 + 1)
    assert adapter.write(lambda uow: uow.releases.update(revoked, ReleaseStatus.PUBLISHED)) is True
    with pytest.raises(DuplicateError) as raised:
        adapter.add(_release(listing, version="2.0.0"))
    assert raised.value.constraint == UniqueConstraint.RELEASE_VERSION


def test_releases_same_version_on_another_listing_is_fine(adapter: Adapter) -> None:
    """Version uniqueness is per listing: two listings may both have 1.0.0."""
    one, two = _listing(adapter), _listing(adapter)
    a, b = _release(one, version="1.0.0"), _release(two, version="1.0.0")
    adapter.add(a, b)
    assert_identical(adapter.read(lambda uow: uow.releases.get(a.release_id)), a)
    assert_identical(adapter.read(lambda uow: uow.releases.get(b.release_id)), b)


def test_releases_version_is_case_sensitive(adapter: Adapter) -> None:
    """Versions differing only in case are different versions."""
    listing = _listing(adapter)
    adapter.add(_release(listing, version="1.0.0-RC1"), _release(listing, version="1.0.0-rc1"))
    got = adapter.read(
        lambda uow: uow.releases.list_for_listing(listing.listing_id, True, None, 10)
    )
    assert sorted(r.version for r in got) == ["1.0.0-RC1", "1.0.0-rc1"]


def test_releases_primary_key_is_unique(adapter: Adapter) -> None:
    """A second release with a stored id (other version) is DuplicateError(PRIMARY_KEY)."""
    listing = _listing(adapter)
    first = _release(listing, version="1.0.0")
    adapter.add(first)
    with pytest.raises(DuplicateError) as raised:
        adapter.add(attrs.evolve(first, version="9.9.9"))
    assert raised.value.constraint == UniqueConstraint.PRIMARY_KEY
    assert_identical(adapter.read(lambda uow: uow.releases.get(first.release_id)), first)


def test_releases_update_revokes_when_status_matches(adapter: Adapter) -> None:
    """update(revoked, PUBLISHED) stores the revocation (status, time, reason) and is True."""
    listing = _listing(adapter)
    release = _release(listing)
    adapter.add(release)
    revoked = release.revoked("\U0001f98a leaked key", T0 + 9)
    assert adapter.write(lambda uow: uow.releases.update(revoked, ReleaseStatus.PUBLISHED)) is True
    assert_identical(adapter.read(lambda uow: uow.releases.get(release.release_id)), revoked)


def test_releases_update_refuses_when_status_differs(adapter: Adapter) -> None:
    """update with an expected status that is not the stored one is False and changes nothing."""
    listing = _listing(adapter)
    release = _release(listing)
    adapter.add(release)
    revoked = release.revoked(None, T0 + 9)
    assert adapter.write(lambda uow: uow.releases.update(revoked, ReleaseStatus.REVOKED)) is False
    assert_identical(adapter.read(lambda uow: uow.releases.get(release.release_id)), release)
    assert adapter.write(lambda uow: uow.releases.update(revoked, ReleaseStatus.PUBLISHED)) is True
    again = attrs.evolve(revoked, revoke_reason="second", revoked_at_ms=T0 + 10)
    assert adapter.write(lambda uow: uow.releases.update(again, ReleaseStatus.PUBLISHED)) is False
    assert_identical(adapter.read(lambda uow: uow.releases.get(release.release_id)), revoked)


# --------------------------------------------------------------------------- list_for_listing


def _history(adapter: Adapter) -> tuple[Listing, list[Release]]:
    """Releases with published_at ties, ids out of order, some revoked; plus another listing."""
    listing, other = _listing(adapter), _listing(adapter)
    published = [T0 + 3, T0 + 1, T0 + 3, T0 + 2, T0 + 1, T0 + 5, T0 + 3, T0]
    ids = [f"rel_{c}" for c in "dgahbfce"]
    releases = []
    for i, (release_id, at) in enumerate(zip(ids, published, strict=True)):
        release = _release(listing, release_id=release_id, version=f"1.{i}.0", published_at_ms=at)
        if i % 3 == 1:
            release = release.revoked("reason", at + 1)
        releases.append(release)
    foreign = [_release(other, version=f"1.{i}.0", published_at_ms=T0 + 4) for i in range(3)]
    adapter.add(*releases, *foreign)
    return listing, releases


@pytest.mark.parametrize("include_revoked", [True, False])
def test_releases_list_for_listing_orders_and_filters(
    adapter: Adapter, include_revoked: bool
) -> None:
    """Releases of the listing only, (published_at, id) descending; revoked only on request."""
    listing, releases = _history(adapter)
    wanted = [r for r in releases if include_revoked or r.status is ReleaseStatus.PUBLISHED]
    got = adapter.read(
        lambda uow: uow.releases.list_for_listing(listing.listing_id, include_revoked, None, 100)
    )
    want = expected_page(wanted, _key, None, 100)
    assert [r.release_id for r in got] == [r.release_id for r in want]
    for item, stored in zip(got, want, strict=True):
        assert_identical(item, stored)


@pytest.mark.parametrize("include_revoked", [True, False])
def test_releases_list_for_listing_is_strictly_after_the_keyset(
    adapter: Adapter, include_revoked: bool
) -> None:
    """For every position and limit the page is exactly the reference page."""
    listing, releases = _history(adapter)
    wanted = [r for r in releases if include_revoked or r.status is ReleaseStatus.PUBLISHED]
    positions: list[CreatedKey] = [_key(r) for r in releases]
    positions += [(at, s) for at in range(T0 - 1, T0 + 7) for s in ("", "rel_c5", "rel_zz")]
    for after, limit in itertools.product(positions, (1, 2, 4)):
        got = adapter.read(
            lambda uow, a=after, n=limit: uow.releases.list_for_listing(
                listing.listing_id, include_revoked, a, n
            )
        )
        want = expected_page(wanted, _key, after, limit)
        assert [r.release_id for r in got] == [r.release_id for r in want], (after, limit)


@pytest.mark.parametrize("limit", [1, 3, 8])
def test_releases_list_for_listing_pages_yield_each_release_once(
    adapter: Adapter, limit: int
) -> None:
    """Walking pages by the last key yields every release exactly once, in order."""
    listing, releases = _history(adapter)

    def fetch(after: CreatedKey | None, n: int) -> list[Release]:
        return list(
            adapter.read(
                lambda uow: uow.releases.list_for_listing(listing.listing_id, True, after, n)
            )
        )

    walked = walk_pages(fetch, _key, limit)
    assert [r.release_id for r in walked] == [
        r.release_id for r in expected_page(releases, _key, None, len(releases))
    ]


def _versions(adapter: Adapter, listing_id: str) -> list[VersionCandidate]:
    found = adapter.read(lambda uow: uow.releases.published_versions(listing_id))
    return sorted(found, key=lambda v: v.release_id)


def test_releases_published_versions_lists_every_published_release(adapter: Adapter) -> None:
    """published_versions has id, version and publish time of each published release only."""
    listing, releases = _history(adapter)
    want = sorted(
        (
            VersionCandidate(r.release_id, r.version, r.published_at_ms)
            for r in releases
            if r.status is ReleaseStatus.PUBLISHED
        ),
        key=lambda v: v.release_id,
    )
    assert want
    assert _versions(adapter, listing.listing_id) == want
    # Revoking one removes it.
    first = next(r for r in releases if r.release_id == want[0].release_id)
    assert adapter.write(
        lambda uow: uow.releases.update(first.revoked(None, T0 + 50), ReleaseStatus.PUBLISHED)
    )
    assert _versions(adapter, listing.listing_id) == want[1:]


def test_releases_published_versions_is_empty_without_published_releases(
    adapter: Adapter,
) -> None:
    """No releases, only revoked ones, or an unknown listing ⇒ nothing."""
    empty, revoked_only = _listing(adapter), _listing(adapter)
    adapter.add(_release(revoked_only).revoked(None, T0 + 1))
    assert _versions(adapter, empty.listing_id) == []
    assert _versions(adapter, revoked_only.listing_id) == []
    assert _versions(adapter, "lst_unknown") == []

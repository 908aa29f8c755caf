"""Read models: the public view and the publisher view are separate types.

A :class:`PublicListing` has no field for moderation, description source
edits, install data or auth metadata, so no code path can leak them into a
public response; the HTTP layer serialises each type with its own shape.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

import attrs

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import (
    AssetKind,
    InstallTargetSystem,
    ListingStatus,
    ReleaseStatus,
)
from fleetprompt_core.domain.model import (
    Artifact,
    Compat,
    Image,
    InstallIntent,
    Links,
    Listing,
    Moderation,
    PublisherProfile,
    Release,
    ReleaseRefs,
    RenderedMarkdown,
    User,
    Verification,
    accepted_targets,
)
from fleetprompt_core.domain.search import ListingCard, PublisherNames
from fleetprompt_core.policies.markdown import rendered
from fleetprompt_core.policies.pagination import Page
from fleetprompt_core.policies.versions import semver_warning
from fleetprompt_core.ports import UnitOfWork

__all__ = [
    "IssuedApiToken",
    "IssuedToken",
    "ListingView",
    "PublicListing",
    "PublicListingDetail",
    "PublicPublisher",
    "PublicRelease",
    "PublisherSummary",
    "RedeemedListing",
    "RedeemedRelease",
    "Redemption",
    "ReleaseWarning",
    "default_profile",
    "listing_views",
    "new_listing_view",
    "public_cards",
    "public_listings",
    "public_release",
    "publisher_summary",
    "release_warnings",
]


@attrs.frozen
class PublisherSummary:
    """The publisher of a listing as shown beside it: id, display name and verification."""

    publisher_id: str
    display_name: str
    verification: Verification


@attrs.frozen
class PublicListing:
    """A listing as anyone may see it (§5 public shape): no moderation, no install data (hard rule
    7).
    """

    listing_id: str
    asset_kind: AssetKind
    status: ListingStatus
    name: str
    summary: str
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    publisher: PublisherSummary
    images: tuple[Image, ...]
    links: Links
    install_attempts_30d: int
    created_at_ms: int
    updated_at_ms: int
    #: The target systems that install this listing's asset kind (ADR 0024).
    target_systems: tuple[InstallTargetSystem, ...]


@attrs.frozen
class PublicRelease:
    """A release as anyone may see it (§5 release shape)."""

    release_id: str
    listing_id: str
    version: str
    status: ReleaseStatus
    compat: Compat
    refs: ReleaseRefs
    artifacts: tuple[Artifact, ...]
    notes: RenderedMarkdown
    published_at_ms: int
    revoked_at_ms: int | None


@attrs.frozen
class PublicListingDetail:
    """A public listing with its description, latest release and first page of releases (P2)."""

    listing: PublicListing
    description: RenderedMarkdown
    latest_release: PublicRelease | None
    releases: Page[PublicRelease]


@attrs.frozen
class PublicPublisher:
    """A publisher's public profile: name, bio and verification, nothing about the user."""

    publisher_id: str
    display_name: str
    bio: RenderedMarkdown
    verification: Verification


@attrs.frozen
class ListingView:
    """The publisher console's view of an own listing (adds description and moderation)."""

    listing: Listing
    publisher: PublisherSummary
    install_attempts_30d: int

    @property
    def moderation(self) -> Moderation:
        """The listing's moderation flag and reason (private to its publisher and admins)."""
        return self.listing.moderation

    @property
    def target_systems(self) -> tuple[InstallTargetSystem, ...]:
        """The target systems that install this listing's asset kind (ADR 0024)."""
        return accepted_targets(self.listing.asset_kind)


@attrs.frozen
class IssuedToken:
    """Answer to a token issue. ``install_token`` is the raw token, present exactly once:
    it is ``None`` in a replayed answer, since the raw value is never stored."""

    install_intent_id: str
    token_id: str
    install_token: str | None = attrs.field(repr=False)
    expires_at_ms: int
    target_system: InstallTargetSystem


@attrs.frozen
class IssuedApiToken:
    """Answer to a personal API token issue. ``api_token`` is the raw token, present
    exactly once: only its hash is stored, so no later answer can carry it."""

    token_id: str
    user_id: str
    name: str
    api_token: str = attrs.field(repr=False)
    created_at_ms: int
    expires_at_ms: int | None


@attrs.frozen
class RedeemedListing:
    """The listing part of a redemption's answer: id, asset kind and name."""

    listing_id: str
    asset_kind: AssetKind
    name: str


@attrs.frozen
class RedeemedRelease:
    """The release part of a redemption's answer: what the target system installs."""

    release_id: str
    version: str
    refs: ReleaseRefs
    compat: Compat
    artifacts: tuple[Artifact, ...]


@attrs.frozen
class Redemption:
    """The answer to a successful redemption (§7): the redeemed intent, its listing and release."""

    install_intent: InstallIntent
    listing: RedeemedListing
    release: RedeemedRelease


@functools.cache
def _no_bio() -> RenderedMarkdown:
    """The empty bio, rendered once per process (its HTML never changes)."""
    return rendered("")


def _default_name(user_display_name: str | None) -> str:
    """The name of a publisher without a saved profile: the user's display name, bounded."""
    return (user_display_name or "").strip()[: limits.DISPLAY_NAME_MAX] or "Unnamed publisher"


def default_profile(user: User) -> PublisherProfile:
    """The profile a publisher has before saving one."""
    return PublisherProfile(
        publisher_id=user.user_id,
        display_name=_default_name(user.display_name),
        bio=_no_bio(),
        verification=Verification(),
        created_at_ms=user.created_at_ms,
        updated_at_ms=user.created_at_ms,
    )


def _summaries(
    uow: UnitOfWork, publisher_ids: Iterable[str], known: Mapping[str, User] | None = None
) -> dict[str, PublisherSummary]:
    """Each publisher's summary; ``known`` users (already read by the caller) are not
    read again."""
    ids = set(publisher_ids)
    profiles: Mapping[str, PublisherProfile] = uow.profiles.get_many(ids)
    # Publishers without a saved profile show their default one: their users in one read.
    missing = ids - profiles.keys() - (known or {}).keys()
    users = {**(known or {}), **(uow.users.get_many(missing) if missing else {})}
    summaries: dict[str, PublisherSummary] = {}
    for publisher_id in ids:
        profile = profiles.get(publisher_id)
        if profile is None:
            user = users.get(publisher_id)
            profile = default_profile(user) if user else None
        if profile is None:  # pragma: no cover - listings always have an owner
            summaries[publisher_id] = PublisherSummary(
                publisher_id, "Unknown publisher", Verification()
            )
            continue
        summaries[publisher_id] = PublisherSummary(
            publisher_id, profile.display_name, profile.verification
        )
    return summaries


def _stats(uow: UnitOfWork, listings: Sequence[Listing], now_ms: int) -> Mapping[str, int]:
    return uow.intents.count_created_since(
        [item.listing_id for item in listings], now_ms - limits.STATS_WINDOW_MS
    )


def public_listings(
    uow: UnitOfWork, listings: Sequence[Listing], now_ms: int
) -> list[PublicListing]:
    summaries = _summaries(uow, (item.publisher_user_id for item in listings))
    stats = _stats(uow, listings, now_ms)
    return [
        PublicListing(
            listing_id=item.listing_id,
            asset_kind=item.asset_kind,
            status=item.status,
            name=item.name,
            summary=item.summary,
            tags=item.tags,
            categories=item.categories,
            publisher=summaries[item.publisher_user_id],
            images=item.images,
            links=item.links,
            install_attempts_30d=stats.get(item.listing_id, 0),
            created_at_ms=item.created_at_ms,
            updated_at_ms=item.updated_at_ms,
            target_systems=accepted_targets(item.asset_kind),
        )
        for item in listings
    ]


def publisher_summary(publisher_id: str, names: PublisherNames) -> PublisherSummary:
    """What a page shows of a card's publisher: its saved profile's name and verification,
    or, without a profile, the default profile's (as ``default_profile``)."""
    if names.profile_display_name is None or names.verification_status is None:
        return PublisherSummary(
            publisher_id, _default_name(names.user_display_name), Verification()
        )
    verification = Verification(
        names.verification_status, names.verification_checked_at_ms, names.verification_reason
    )
    return PublisherSummary(publisher_id, names.profile_display_name, verification)


def public_cards(cards: Iterable[ListingCard]) -> list[PublicListing]:
    """The public views of listing cards (a search page): the same as ``public_listings``
    of the listings, from what the cards carry."""
    # One summary per publisher and names (a page repeats its few publishers).
    publishers: dict[str, tuple[PublisherNames, PublisherSummary]] = {}
    items = []
    for card in cards:
        known = publishers.get(card.publisher_user_id)
        if known is not None and known[0] == card.publisher:
            publisher = known[1]
        else:
            publisher = publisher_summary(card.publisher_user_id, card.publisher)
            publishers[card.publisher_user_id] = (card.publisher, publisher)
        items.append(
            PublicListing(
                listing_id=card.listing_id,
                asset_kind=card.asset_kind,
                status=card.status,
                name=card.name,
                summary=card.summary,
                tags=card.tags,
                categories=card.categories,
                publisher=publisher,
                images=card.images,
                links=card.links,
                install_attempts_30d=card.installs,
                created_at_ms=card.created_at_ms,
                updated_at_ms=card.updated_at_ms,
                target_systems=accepted_targets(card.asset_kind),
            )
        )
    return items


def new_listing_view(uow: UnitOfWork, listing: Listing, publisher: User) -> ListingView:
    """The view of a listing ``publisher`` created in this unit of work: no install intent
    can name it yet, so its install count is 0 without asking the storage, and the
    publisher's user is known."""
    summaries = _summaries(uow, (listing.publisher_user_id,), {publisher.user_id: publisher})
    return ListingView(listing, summaries[listing.publisher_user_id], 0)


def listing_views(uow: UnitOfWork, listings: Sequence[Listing], now_ms: int) -> list[ListingView]:
    summaries = _summaries(uow, (item.publisher_user_id for item in listings))
    stats = _stats(uow, listings, now_ms)
    return [
        ListingView(item, summaries[item.publisher_user_id], stats.get(item.listing_id, 0))
        for item in listings
    ]


def public_release(release: Release) -> PublicRelease:
    return PublicRelease(
        release_id=release.release_id,
        listing_id=release.listing_id,
        version=release.version,
        status=release.status,
        compat=release.compat,
        refs=release.refs,
        artifacts=release.artifacts,
        notes=release.notes,
        published_at_ms=release.published_at_ms,
        revoked_at_ms=release.revoked_at_ms,
    )


@attrs.frozen
class ReleaseWarning:
    """Advice to the publisher about an accepted release (never an error, never public)."""

    field_name: str
    message: str


def release_warnings(release: Release) -> tuple[ReleaseWarning, ...]:
    """What the owner's view of ``release`` warns about: a version that is not semver (ADR 0023)."""
    message = semver_warning(release.version)
    return () if message is None else (ReleaseWarning("version", message),)

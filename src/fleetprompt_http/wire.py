"""Wire shapes (§3, §5): what the core's results look like as JSON.

One function per shape, returning a ``TypedDict`` so that mypy checks every
field and the OpenAPI document describes exactly what is sent. The public and
publisher views of a listing are separate shapes: the public one has no
``description`` source-only fields beyond the rendered pair, and never
``moderation``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Generic, Literal, TypeVar

# typing_extensions' TypedDict: pydantic (the MCP SDK's output schemas) reads these
# shapes too, and refuses ``typing.TypedDict`` before Python 3.12.
from typing_extensions import TypedDict

from fleetprompt_core.base.enums import (
    AssetKind,
    InstallTargetSystem,
    ListingStatus,
    ReleaseStatus,
    VerificationStatus,
)
from fleetprompt_core.domain.model import (
    Artifact,
    AuditEvent,
    AuditValue,
    Compat,
    Image,
    InstallIntent,
    Links,
    PublisherProfile,
    Release,
    ReleaseRefs,
    User,
    Verification,
)
from fleetprompt_core.policies.markdown import RenderedMarkdown
from fleetprompt_core.policies.pagination import Page
from fleetprompt_core.services import views
from fleetprompt_core.services.views import (
    IssuedToken,
    ListingView,
    PublicListing,
    PublicListingDetail,
    PublicPublisher,
    PublicRelease,
    PublisherSummary,
    Redemption,
)

__all__ = [
    "AuditEventPage",
    "ErrorBody",
    "ErrorEnvelope",
    "FieldProblem",
    "InstallIntentPage",
    "PublicListingPage",
    "PublicReleasePage",
    "PublisherListingPage",
    "ReleasePage",
    "audit_event",
    "install_intent",
    "issued_token",
    "page",
    "public_detail",
    "public_listing",
    "public_publisher",
    "public_release",
    "publisher_listing",
    "publisher_profile",
    "redemption",
    "release",
    "user",
]

T = TypeVar("T")
W = TypeVar("W")


# --------------------------------------------------------------------------- errors


class FieldProblem(TypedDict):
    fieldName: str
    message: str


class ErrorDetails(TypedDict, total=False):
    hint: str
    fields: list[FieldProblem]


class ErrorBody(TypedDict):
    code: str
    message: str
    requestId: str
    details: ErrorDetails


class ErrorEnvelope(TypedDict):
    """Every non-2xx body (§5)."""

    error: ErrorBody


# --------------------------------------------------------------------------- pieces


class MarkdownWire(TypedDict):
    format: Literal["markdown"]
    markdown: str
    #: Rendered and sanitized at write time; safe to insert into a page.
    html: str


class VerificationWire(TypedDict):
    status: str
    checkedAtMs: int | None
    reason: str | None


class PublisherWire(TypedDict):
    publisherId: str
    displayName: str
    verified: VerificationWire


class ImageWire(TypedDict):
    url: str
    alt: str


class LinksWire(TypedDict):
    docsUrl: str | None
    repoUrl: str | None


class StatsWire(TypedDict):
    installAttempts30d: int


class ModerationWire(TypedDict):
    flagged: bool
    reason: str | None


class RefsWire(TypedDict):
    whsAgentId: str | None
    whsDeploymentId: str | None
    agentromaticWorkflowId: str | None
    specAssetId: str | None


class CompatWire(TypedDict):
    minWHSVersion: str | None
    minAgentromaticVersion: str | None
    minAgentelicVersion: str | None


class DownloadWire(TypedDict):
    mode: str
    hint: str | None


class ArtifactWire(TypedDict):
    kind: str
    sha256: str
    sizeBytes: int
    download: DownloadWire


#: Each enum member's value, by member: a dict look-up costs a small part of the
#: ``.value`` property, and a page of 50 listings reads about 250 of them.
_VALUES: dict[enum.Enum, str] = {
    member: member.value
    for kind in (AssetKind, ListingStatus, ReleaseStatus, VerificationStatus, InstallTargetSystem)
    for member in kind
}


def _targets(targets: tuple[InstallTargetSystem, ...]) -> list[str]:
    return [_VALUES[target] for target in targets]


def _markdown(value: RenderedMarkdown) -> MarkdownWire:
    return {"format": "markdown", "markdown": value.markdown, "html": value.html}


def _verification(value: Verification) -> VerificationWire:
    return {
        "status": _VALUES[value.status],
        "checkedAtMs": value.checked_at_ms,
        "reason": value.reason,
    }


def _publisher(value: PublisherSummary) -> PublisherWire:
    return {
        "publisherId": value.publisher_id,
        "displayName": value.display_name,
        "verified": _verification(value.verification),
    }


def _images(images: Iterable[Image]) -> list[ImageWire]:
    return [{"url": image.url, "alt": image.alt} for image in images]


def _links(links: Links) -> LinksWire:
    return {"docsUrl": links.docs_url, "repoUrl": links.repo_url}


def _refs(refs: ReleaseRefs) -> RefsWire:
    return {
        "whsAgentId": refs.whs_agent_id,
        "whsDeploymentId": refs.whs_deployment_id,
        "agentromaticWorkflowId": refs.agentromatic_workflow_id,
        "specAssetId": refs.spec_asset_id,
    }


def _compat(compat: Compat) -> CompatWire:
    return {
        "minWHSVersion": compat.min_whs_version,
        "minAgentromaticVersion": compat.min_agentromatic_version,
        "minAgentelicVersion": compat.min_agentelic_version,
    }


def _artifacts(artifacts: Iterable[Artifact]) -> list[ArtifactWire]:
    return [
        {
            "kind": artifact.kind.value,
            "sha256": artifact.sha256,
            "sizeBytes": artifact.size_bytes,
            "download": {"mode": artifact.download.mode.value, "hint": artifact.download.hint},
        }
        for artifact in artifacts
    ]


# --------------------------------------------------------------------------- pages


class PageWire(TypedDict, Generic[W]):
    """A page of items; each kind of page is documented under its own name below
    (OpenAPI has no generics, and Litestar would name ``PageWire[X]`` after its module)."""

    items: list[W]
    nextCursor: str | None


def page(value: Page[T], shape: Callable[[T], W]) -> PageWire[W]:
    return {"items": [shape(item) for item in value.items], "nextCursor": value.next_cursor}


# --------------------------------------------------------------------------- listings


class PublicListingWire(TypedDict):
    listingId: str
    assetKind: str
    status: str
    name: str
    summary: str
    tags: list[str]
    categories: list[str]
    publisher: PublisherWire
    images: list[ImageWire]
    links: LinksWire
    stats: StatsWire
    createdAtMs: int
    updatedAtMs: int
    #: The target systems an install intent for this listing may name.
    targetSystems: list[str]


class PublisherListingWire(PublicListingWire):
    """The owner's view: adds the description and the private moderation state."""

    publisherUserId: str
    description: MarkdownWire
    moderation: ModerationWire


def public_listing(value: PublicListing) -> PublicListingWire:
    return {
        "listingId": value.listing_id,
        "assetKind": _VALUES[value.asset_kind],
        "status": _VALUES[value.status],
        "name": value.name,
        "summary": value.summary,
        "tags": list(value.tags),
        "categories": list(value.categories),
        "publisher": _publisher(value.publisher),
        "images": _images(value.images),
        "links": _links(value.links),
        "stats": {"installAttempts30d": value.install_attempts_30d},
        "createdAtMs": value.created_at_ms,
        "updatedAtMs": value.updated_at_ms,
        "targetSystems": _targets(value.target_systems),
    }


def publisher_listing(value: ListingView) -> PublisherListingWire:
    listing = value.listing
    return {
        "listingId": listing.listing_id,
        "assetKind": listing.asset_kind.value,
        "status": listing.status.value,
        "name": listing.name,
        "summary": listing.summary,
        "tags": list(listing.tags),
        "categories": list(listing.categories),
        "publisher": _publisher(value.publisher),
        "images": _images(listing.images),
        "links": _links(listing.links),
        "stats": {"installAttempts30d": value.install_attempts_30d},
        "createdAtMs": listing.created_at_ms,
        "updatedAtMs": listing.updated_at_ms,
        "targetSystems": _targets(value.target_systems),
        "publisherUserId": listing.publisher_user_id,
        "description": _markdown(listing.description),
        "moderation": {"flagged": listing.moderation.flagged, "reason": listing.moderation.reason},
    }


# --------------------------------------------------------------------------- releases


class PublicReleaseWire(TypedDict):
    releaseId: str
    listingId: str
    version: str
    status: str
    compat: CompatWire
    refs: RefsWire
    artifacts: list[ArtifactWire]
    notes: MarkdownWire
    publishedAtMs: int
    revokedAtMs: int | None


class ReleaseWarningWire(TypedDict):
    fieldName: str
    message: str


class ReleaseWire(PublicReleaseWire):
    """The owner's view of a release: adds who published it, why it was revoked, and
    warnings (a version that is not semver ranks below semantic versions for "latest")."""

    publisherUserId: str
    revokeReason: str | None
    warnings: list[ReleaseWarningWire]


def public_release(value: PublicRelease) -> PublicReleaseWire:
    return {
        "releaseId": value.release_id,
        "listingId": value.listing_id,
        "version": value.version,
        "status": _VALUES[value.status],
        "compat": _compat(value.compat),
        "refs": _refs(value.refs),
        "artifacts": _artifacts(value.artifacts),
        "notes": _markdown(value.notes),
        "publishedAtMs": value.published_at_ms,
        "revokedAtMs": value.revoked_at_ms,
    }


def release(value: Release) -> ReleaseWire:
    """The owner's view: the public shape (of the core's public view) plus owner fields."""
    return {
        **public_release(views.public_release(value)),
        "publisherUserId": value.publisher_user_id,
        "revokeReason": value.revoke_reason,
        "warnings": [
            {"fieldName": w.field_name, "message": w.message} for w in views.release_warnings(value)
        ],
    }


class ListingDetailWire(TypedDict):
    listing: PublicListingWire
    description: MarkdownWire
    latestRelease: PublicReleaseWire | None
    releases: PublicReleasePage


def public_detail(value: PublicListingDetail) -> ListingDetailWire:
    return {
        "listing": public_listing(value.listing),
        "description": _markdown(value.description),
        "latestRelease": public_release(value.latest_release) if value.latest_release else None,
        "releases": page(value.releases, public_release),
    }


# --------------------------------------------------------------------------- profiles, users


class PublicPublisherWire(PublisherWire):
    """A publisher's public profile: the listing's ``publisher`` piece and the bio."""

    bio: MarkdownWire


def public_publisher(value: PublicPublisher) -> PublicPublisherWire:
    return {
        "publisherId": value.publisher_id,
        "displayName": value.display_name,
        "verified": _verification(value.verification),
        "bio": _markdown(value.bio),
    }


class ProfileWire(TypedDict):
    publisherId: str
    displayName: str
    bioMarkdown: str
    bioHtml: str
    verification: VerificationWire
    createdAtMs: int
    updatedAtMs: int


def publisher_profile(value: PublisherProfile) -> ProfileWire:
    return {
        "publisherId": value.publisher_id,
        "displayName": value.display_name,
        "bioMarkdown": value.bio.markdown,
        "bioHtml": value.bio.html,
        "verification": _verification(value.verification),
        "createdAtMs": value.created_at_ms,
        "updatedAtMs": value.updated_at_ms,
    }


class UserWire(TypedDict):
    userId: str
    externalId: str
    displayName: str | None
    roles: list[str]
    createdAtMs: int
    updatedAtMs: int


def user(value: User) -> UserWire:
    return {
        "userId": value.user_id,
        "externalId": value.external_id,
        "displayName": value.display_name,
        "roles": sorted(role.value for role in value.roles),
        "createdAtMs": value.created_at_ms,
        "updatedAtMs": value.updated_at_ms,
    }


# --------------------------------------------------------------------------- installs


class TargetContextWire(TypedDict):
    telespaceId: str | None
    roomId: str | None
    orgId: str | None


class InstallIntentWire(TypedDict):
    installIntentId: str
    buyerUserId: str
    listingId: str
    releaseId: str
    targetSystem: str
    targetContext: TargetContextWire
    status: str
    expiresAtMs: int
    createdAtMs: int
    updatedAtMs: int


def install_intent(value: InstallIntent) -> InstallIntentWire:
    context = value.target_context
    return {
        "installIntentId": value.install_intent_id,
        "buyerUserId": value.buyer_user_id,
        "listingId": value.listing_id,
        "releaseId": value.release_id,
        "targetSystem": value.target_system.value,
        "targetContext": {
            "telespaceId": context.telespace_id,
            "roomId": context.room_id,
            "orgId": context.org_id,
        },
        "status": value.status.value,
        "expiresAtMs": value.expires_at_ms,
        "createdAtMs": value.created_at_ms,
        "updatedAtMs": value.updated_at_ms,
    }


class RedeemHowWire(TypedDict):
    mode: Literal["server_to_server"]
    targetSystem: str


class IssuedTokenWire(TypedDict):
    installIntentId: str
    #: The raw single-use token, present once; ``null`` in a replayed answer
    #: (FleetPrompt never stores it): issue a new one instead.
    installToken: str | None
    expiresAtMs: int
    redeem: RedeemHowWire


def issued_token(value: IssuedToken) -> IssuedTokenWire:
    return {
        "installIntentId": value.install_intent_id,
        "installToken": value.install_token,
        "expiresAtMs": value.expires_at_ms,
        "redeem": {"mode": "server_to_server", "targetSystem": value.target_system.value},
    }


class RedeemedListingWire(TypedDict):
    listingId: str
    assetKind: str
    name: str


class RedeemedReleaseWire(TypedDict):
    releaseId: str
    version: str
    refs: RefsWire
    compat: CompatWire
    artifacts: list[ArtifactWire]


class RedemptionWire(TypedDict):
    installIntent: InstallIntentWire
    listing: RedeemedListingWire
    release: RedeemedReleaseWire


def redemption(value: Redemption) -> RedemptionWire:
    return {
        "installIntent": install_intent(value.install_intent),
        "listing": {
            "listingId": value.listing.listing_id,
            "assetKind": value.listing.asset_kind.value,
            "name": value.listing.name,
        },
        "release": {
            "releaseId": value.release.release_id,
            "version": value.release.version,
            "refs": _refs(value.release.refs),
            "compat": _compat(value.release.compat),
            "artifacts": _artifacts(value.release.artifacts),
        },
    }


# --------------------------------------------------------------------------- audit


class ActorWire(TypedDict):
    type: str
    userId: str | None
    system: str | None


class AuditEventWire(TypedDict):
    eventId: str
    type: str
    actor: ActorWire
    createdAtMs: int
    summary: str
    details: dict[str, AuditValue]
    publisherUserId: str | None
    listingId: str | None
    releaseId: str | None
    installIntentId: str | None
    requestId: str | None


def audit_event(value: AuditEvent) -> AuditEventWire:
    return {
        "eventId": value.event_id,
        "type": value.type,
        "actor": {
            "type": value.actor.type.value,
            "userId": value.actor.user_id,
            "system": value.actor.system,
        },
        "createdAtMs": value.created_at_ms,
        "summary": value.summary,
        "details": dict(value.details),
        "publisherUserId": value.publisher_user_id,
        "listingId": value.listing_id,
        "releaseId": value.release_id,
        "installIntentId": value.install_intent_id,
        "requestId": value.request_id,
    }


# --------------------------------------------------------------------------- named pages


class PublicListingPage(TypedDict):
    """P1: a page of search results; send ``nextCursor`` back as ``cursor`` for the next."""

    items: list[PublicListingWire]
    nextCursor: str | None


class PublicReleasePage(TypedDict):
    """A page of a listing's public releases, newest first."""

    items: list[PublicReleaseWire]
    nextCursor: str | None


class PublisherListingPage(TypedDict):
    """B1: a page of the caller's own listings."""

    items: list[PublisherListingWire]
    nextCursor: str | None


class ReleasePage(TypedDict):
    """B7: a page of an own listing's releases."""

    items: list[ReleaseWire]
    nextCursor: str | None


class InstallIntentPage(TypedDict):
    """I2: a page of the caller's install intents."""

    items: list[InstallIntentWire]
    nextCursor: str | None


class AuditEventPage(TypedDict):
    """A4: a page of the audit log, newest first."""

    items: list[AuditEventWire]
    nextCursor: str | None

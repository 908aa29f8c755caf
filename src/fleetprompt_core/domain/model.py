"""Entities and value objects of the contract (§3), as frozen attrs classes.

Entities never change in place: a transition method checks the state machine
and returns a new value, which the use case stores through a repository. Field
names are the contract's, in snake case; the wire shapes (camelCase, public vs
publisher views) are built elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

from fleetprompt_core.base.enums import (
    ActorType,
    ArtifactDownloadMode,
    ArtifactKind,
    AssetKind,
    InstallIntentStatus,
    InstallTargetSystem,
    InstallTokenStatus,
    ListingStatus,
    ReleaseStatus,
    Role,
    VerificationStatus,
)
from fleetprompt_core.domain import states
from fleetprompt_core.policies.markdown import RenderedMarkdown

__all__ = [
    "Actor",
    "ApiToken",
    "Artifact",
    "ArtifactDownload",
    "AuditEvent",
    "Compat",
    "IdempotencyRecord",
    "Image",
    "InstallIntent",
    "InstallToken",
    "Links",
    "Listing",
    "Moderation",
    "PublisherProfile",
    "Release",
    "ReleaseRefs",
    "RenderedMarkdown",
    "TargetContext",
    "User",
    "Verification",
    "accepted_targets",
    "install_blocker",
]

OPEN_INTENT_STATUSES: Final = frozenset(
    {InstallIntentStatus.CREATED, InstallIntentStatus.TOKEN_ISSUED}
)


# --------------------------------------------------------------------------- users


@attrs.frozen
class User:
    """Someone FleetPrompt knows, by their identity provider's subject (``external_id``), and their
    roles.
    """

    user_id: str
    external_id: str
    display_name: str | None
    email: str | None
    roles: frozenset[Role]
    created_at_ms: int
    updated_at_ms: int

    def has_role(self, role: Role) -> bool:
        """Whether the user holds ``role`` (``user`` is implicit and never stored)."""
        return role in self.roles

    def with_roles(self, roles: frozenset[Role], now_ms: int) -> User:
        """The user holding exactly ``roles`` from ``now_ms``."""
        return attrs.evolve(self, roles=roles, updated_at_ms=now_ms)


@attrs.frozen
class Verification:
    """An admin's verification of a publisher: a status, when it was checked, and why."""

    status: VerificationStatus = VerificationStatus.UNVERIFIED
    checked_at_ms: int | None = None
    reason: str | None = None


@attrs.frozen
class PublisherProfile:
    """One per publisher user; ``publisher_id`` is the user id."""

    publisher_id: str
    display_name: str
    bio: RenderedMarkdown
    verification: Verification
    created_at_ms: int
    updated_at_ms: int


# --------------------------------------------------------------------------- listings


@attrs.frozen
class Image:
    """A listing image: an https URL on the operator's allowlist and its alt text."""

    url: str
    alt: str = ""


@attrs.frozen
class Links:
    """A listing's optional documentation and repository URLs."""

    docs_url: str | None = None
    repo_url: str | None = None


@attrs.frozen
class Moderation:
    """Private: shown to the owning publisher and admins only."""

    flagged: bool = False
    reason: str | None = None


@attrs.frozen
class Listing:
    """What a publisher offers in the catalogue: one asset kind, its texts, labels, images and
    links, and its status (§3, §4).
    """

    listing_id: str
    publisher_user_id: str
    asset_kind: AssetKind
    status: ListingStatus
    name: str
    summary: str
    description: RenderedMarkdown
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    images: tuple[Image, ...]
    links: Links
    moderation: Moderation
    created_at_ms: int
    updated_at_ms: int

    def require_not_suspended(self) -> None:
        """A publisher may not change a suspended listing's status or add releases to it."""
        if self.status is ListingStatus.SUSPENDED:
            raise states.IllegalTransition(
                "This listing is suspended.", hint="only an admin can lift a suspension"
            )

    def moved_by_publisher(self, target: ListingStatus, now_ms: int) -> Listing:
        """The listing moved to ``target`` by its publisher (``CONFLICT`` if the state machine
        forbids it).
        """
        states.LISTING_BY_PUBLISHER.require(self.status, target)
        return attrs.evolve(self, status=target, updated_at_ms=now_ms)

    def suspended(self, reason: str, now_ms: int) -> Listing:
        """The listing suspended by an admin for ``reason``."""
        states.LISTING_BY_ADMIN.require(self.status, ListingStatus.SUSPENDED)
        return attrs.evolve(
            self,
            status=ListingStatus.SUSPENDED,
            moderation=Moderation(flagged=True, reason=reason),
            updated_at_ms=now_ms,
        )

    def unsuspended(self, reason: str | None, now_ms: int) -> Listing:
        """The listing's suspension lifted by an admin; it becomes ``unlisted``."""
        states.LISTING_BY_ADMIN.require(self.status, ListingStatus.UNLISTED)
        return attrs.evolve(
            self,
            status=ListingStatus.UNLISTED,
            moderation=Moderation(flagged=False, reason=reason),
            updated_at_ms=now_ms,
        )


# --------------------------------------------------------------------------- releases


@attrs.frozen
class ReleaseRefs:
    """Opaque upstream ids; never parsed, never authoritative."""

    whs_agent_id: str | None = None
    whs_deployment_id: str | None = None
    agentromatic_workflow_id: str | None = None
    spec_asset_id: str | None = None


@attrs.frozen
class Compat:
    """The minimum versions of the target systems a release needs; each optional."""

    min_whs_version: str | None = None
    min_agentromatic_version: str | None = None
    min_agentelic_version: str | None = None


@attrs.frozen
class ArtifactDownload:
    """How an artifact is obtained: a download mode and a hint of at most 1 000 characters."""

    mode: ArtifactDownloadMode = ArtifactDownloadMode.NONE
    hint: str | None = None


@attrs.frozen
class Artifact:
    """A file a release points at: kind, SHA-256, size and how to obtain it (never its bytes)."""

    kind: ArtifactKind
    sha256: str
    size_bytes: int
    download: ArtifactDownload


@attrs.frozen
class Release:
    """Immutable once published; only ``published → revoked`` may happen to it."""

    release_id: str
    listing_id: str
    publisher_user_id: str
    version: str
    status: ReleaseStatus
    refs: ReleaseRefs
    compat: Compat
    artifacts: tuple[Artifact, ...]
    notes: RenderedMarkdown
    published_at_ms: int
    revoked_at_ms: int | None = None
    revoke_reason: str | None = None

    def revoked(self, reason: str | None, now_ms: int) -> Release:
        """The release revoked at ``now_ms`` for ``reason``; revoking is final (hard rule 4)."""
        states.RELEASE.require(self.status, ReleaseStatus.REVOKED)
        return attrs.evolve(
            self, status=ReleaseStatus.REVOKED, revoked_at_ms=now_ms, revoke_reason=reason
        )


#: Which target systems install each asset kind (ADR 0024). WHS runs agents and
#: Agentromatic runs workflows, each only its own kind; Agentelic is the
#: portfolio's install target (telespaces, rooms) and takes every kind.
ACCEPTED_TARGETS: Final[Mapping[AssetKind, tuple[InstallTargetSystem, ...]]] = {
    AssetKind.WHS_AGENT: (InstallTargetSystem.WHS, InstallTargetSystem.AGENTELIC),
    AssetKind.AGENTROMATIC_WORKFLOW: (
        InstallTargetSystem.AGENTROMATIC,
        InstallTargetSystem.AGENTELIC,
    ),
    AssetKind.SPEC_ASSET: (InstallTargetSystem.AGENTELIC,),
}

#: Listing statuses whose open intents can still be installed: ``published``,
#: and ``unlisted`` (hidden from the catalogue, existing intents keep working).
#: ``draft`` (withdrawn by the publisher) and ``suspended`` (by an admin) block
#: token issue and redemption; moving there revokes issued tokens (ADR 0025).
INSTALLABLE_LISTING_STATUSES: Final = frozenset({ListingStatus.PUBLISHED, ListingStatus.UNLISTED})


def accepted_targets(asset_kind: AssetKind) -> tuple[InstallTargetSystem, ...]:
    """The target systems that may install a listing of ``asset_kind``."""
    return ACCEPTED_TARGETS[asset_kind]


def install_blocker(
    listing: Listing | None,
    release: Release | None,
    target_system: InstallTargetSystem | None = None,
) -> str | None:
    """Why a release cannot be installed now (token issue, redemption), or ``None``.

    A revoked release is never installable; a suspended listing blocks
    installs until an admin lifts the suspension, and a listing moved back to
    draft until it is published again. An unlisted listing does not block
    (its existing intents stay installable). With ``target_system``, a target
    that does not accept the listing's asset kind blocks too (ADR 0024).
    """
    if release is None or release.status is not ReleaseStatus.PUBLISHED:
        return "release revoked"
    if listing is None or listing.status is ListingStatus.SUSPENDED:
        return "listing suspended"
    if listing.status not in INSTALLABLE_LISTING_STATUSES:
        return "listing withdrawn"
    if target_system is not None and target_system not in accepted_targets(listing.asset_kind):
        return "target system does not accept this asset kind"
    return None


# --------------------------------------------------------------------------- installs


@attrs.frozen
class TargetContext:
    """Opaque hints for the target system; never used for authorization."""

    telespace_id: str | None = None
    room_id: str | None = None
    org_id: str | None = None


@attrs.frozen
class InstallIntent:
    """A buyer's intent to install one release into one target system (§4): open until it is
    redeemed, canceled or expires 24 h after creation.
    """

    install_intent_id: str
    buyer_user_id: str
    listing_id: str
    release_id: str
    target_system: InstallTargetSystem
    target_context: TargetContext
    status: InstallIntentStatus
    expires_at_ms: int
    created_at_ms: int
    updated_at_ms: int

    def is_due_to_expire(self, now_ms: int) -> bool:
        """Whether the intent is open and past its expiry at ``now_ms``."""
        return self.status in OPEN_INTENT_STATUSES and now_ms >= self.expires_at_ms

    def observed(self, now_ms: int) -> InstallIntent:
        """The intent as it stands at ``now_ms``: past its expiry an open intent is expired.

        Expiry happens with time; the retention job persists it later. Every
        read and every rule looks at the observed value.
        """
        if self.is_due_to_expire(now_ms):
            return self._moved(InstallIntentStatus.EXPIRED, self.expires_at_ms)
        return self

    def _moved(self, target: InstallIntentStatus, now_ms: int) -> InstallIntent:
        states.INSTALL_INTENT.require(self.status, target)
        return attrs.evolve(self, status=target, updated_at_ms=now_ms)

    def token_issued(self, now_ms: int) -> InstallIntent:
        """The intent after a token was issued for it at ``now_ms`` (refused unless open)."""
        return self.observed(now_ms)._moved(InstallIntentStatus.TOKEN_ISSUED, now_ms)

    def redeemed(self, now_ms: int) -> InstallIntent:
        """The intent after its token was redeemed at ``now_ms`` (refused unless open)."""
        return self.observed(now_ms)._moved(InstallIntentStatus.REDEEMED, now_ms)

    def canceled(self, now_ms: int) -> InstallIntent:
        """The intent canceled by its buyer at ``now_ms`` (refused unless open)."""
        return self.observed(now_ms)._moved(InstallIntentStatus.CANCELED, now_ms)

    def expired(self, now_ms: int) -> InstallIntent:
        """Persisted expiry (retention job); only legal once due."""
        if not self.is_due_to_expire(now_ms):
            states.INSTALL_INTENT.require(self.status, InstallIntentStatus.EXPIRED)
            raise states.IllegalTransition("An install intent expires only after its expiry time.")
        return self._moved(InstallIntentStatus.EXPIRED, now_ms)


@attrs.frozen
class InstallToken:
    """The stored side of an install token: only its hash, never the raw value."""

    token_id: str
    install_intent_id: str
    buyer_user_id: str
    target_system: InstallTargetSystem
    token_hash: str = attrs.field(repr=False)
    status: InstallTokenStatus
    issued_at_ms: int
    expires_at_ms: int
    redeemed_at_ms: int | None = None
    redeemed_by_system: str | None = None

    def is_usable(self, now_ms: int) -> bool:
        return self.status is InstallTokenStatus.ISSUED and now_ms < self.expires_at_ms

    def is_due_to_expire(self, now_ms: int) -> bool:
        return self.status is InstallTokenStatus.ISSUED and now_ms >= self.expires_at_ms

    def observed(self, now_ms: int) -> InstallToken:
        if self.is_due_to_expire(now_ms):
            return self._moved(InstallTokenStatus.EXPIRED)
        return self

    def _moved(self, target: InstallTokenStatus) -> InstallToken:
        states.INSTALL_TOKEN.require(self.status, target)
        return attrs.evolve(self, status=target)

    def redeemed(self, source: str, now_ms: int) -> InstallToken:
        token = self.observed(now_ms)._moved(InstallTokenStatus.REDEEMED)
        return attrs.evolve(token, redeemed_at_ms=now_ms, redeemed_by_system=source)

    def revoked(self, now_ms: int) -> InstallToken:
        return self.observed(now_ms)._moved(InstallTokenStatus.REVOKED)

    def expired(self, now_ms: int) -> InstallToken:
        if not self.is_due_to_expire(now_ms):
            states.INSTALL_TOKEN.require(self.status, InstallTokenStatus.EXPIRED)
            raise states.IllegalTransition("An install token expires only after its expiry time.")
        return self._moved(InstallTokenStatus.EXPIRED)


# --------------------------------------------------------------------------- credentials


@attrs.frozen
class ApiToken:
    """A personal API token (§8): a bearer credential of one user, stored only as a hash.

    Revocation is a state, never a delete: ``revoked_at_ms`` is set once and
    never cleared. ``expires_at_ms`` is ``None`` for a token without expiry.
    """

    token_id: str
    user_id: str
    name: str
    token_hash: str = attrs.field(repr=False)
    created_at_ms: int
    expires_at_ms: int | None = None
    revoked_at_ms: int | None = None

    def is_usable(self, now_ms: int) -> bool:
        """Not revoked and, when it expires, strictly before its expiry (as install tokens)."""
        if self.revoked_at_ms is not None:
            return False
        return self.expires_at_ms is None or now_ms < self.expires_at_ms

    def revoked(self, now_ms: int) -> ApiToken:
        """The token revoked at ``now_ms``; a revoked token keeps its first revocation."""
        if self.revoked_at_ms is not None:
            return self
        return attrs.evolve(self, revoked_at_ms=now_ms)


# --------------------------------------------------------------------------- idempotency


@attrs.frozen
class IdempotencyRecord:
    """One idempotency key of one caller on one endpoint (§6).

    While ``response_json`` is ``None`` the first request is still running; a
    claim whose lease has passed may be taken over (its holder died).
    """

    scope_user_id: str
    endpoint: str
    key: str
    request_hash: str
    claim_id: str
    created_at_ms: int
    expires_at_ms: int
    lease_until_ms: int
    response_json: str | None = None

    @property
    def completed(self) -> bool:
        return self.response_json is not None


# --------------------------------------------------------------------------- audit


@attrs.frozen
class Actor:
    """Who caused an audit event: a user (with their id) or the system (with a name)."""

    type: ActorType
    user_id: str | None = None
    #: For system actors: which system acted (``retention``, a redeeming source...).
    system: str | None = None


AuditValue = str | int | bool | None


@attrs.frozen
class AuditEvent:
    """Append-only, bounded and secret-free record of one mutation."""

    event_id: str
    type: str
    actor: Actor
    created_at_ms: int
    summary: str
    details: Mapping[str, AuditValue] = attrs.field(factory=dict)
    publisher_user_id: str | None = None
    listing_id: str | None = None
    release_id: str | None = None
    install_intent_id: str | None = None
    request_id: str | None = None

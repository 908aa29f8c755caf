"""The contract's enums (§2), exact strings."""

from __future__ import annotations

import enum

__all__ = [
    "ActorType",
    "ArtifactDownloadMode",
    "ArtifactKind",
    "AssetKind",
    "InstallIntentStatus",
    "InstallTargetSystem",
    "InstallTokenStatus",
    "ListingStatus",
    "ReleaseStatus",
    "Role",
    "SearchSort",
    "VerificationStatus",
]


class ListingStatus(enum.StrEnum):
    """Where a listing is in its life (§4); only ``published`` listings are public."""

    DRAFT = "draft"
    PUBLISHED = "published"
    UNLISTED = "unlisted"
    SUSPENDED = "suspended"


class AssetKind(enum.StrEnum):
    """What a listing offers: a WHS agent, an Agentromatic workflow or a SpecPrompt asset; fixed at
    creation.
    """

    WHS_AGENT = "whs_agent"
    AGENTROMATIC_WORKFLOW = "agentromatic_workflow"
    SPEC_ASSET = "spec_asset"


class ReleaseStatus(enum.StrEnum):
    """A release is ``published`` until it is ``revoked``, which is final."""

    PUBLISHED = "published"
    REVOKED = "revoked"


class InstallTargetSystem(enum.StrEnum):
    """The system that redeems an install token and performs the install."""

    WHS = "whs"
    AGENTROMATIC = "agentromatic"
    AGENTELIC = "agentelic"


class InstallIntentStatus(enum.StrEnum):
    """Where an install intent is in its life (§4): open while ``created`` or ``token_issued``."""

    CREATED = "created"
    TOKEN_ISSUED = "token_issued"  # noqa: S105 - a status, not a secret
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    CANCELED = "canceled"


class InstallTokenStatus(enum.StrEnum):
    """The state of an install token (never shown to clients): single-use, short-lived."""

    ISSUED = "issued"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    REVOKED = "revoked"


class VerificationStatus(enum.StrEnum):
    """An admin's check of a publisher: information for buyers, it grants nothing."""

    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    FAILED = "failed"


class ArtifactKind(enum.StrEnum):
    """What an artifact of a release is: a source bundle, a build artifact or a manifest."""

    SOURCE_BUNDLE = "source_bundle"
    BUILD_ARTIFACT = "build_artifact"
    MANIFEST = "manifest"


class ArtifactDownloadMode(enum.StrEnum):
    """How an artifact of a release is obtained; FleetPrompt stores pointers only (ADR 0004)."""

    NONE = "none"
    FLEETPROMPT_SIGNED_URL = "fleetprompt_signed_url"
    SPECPROMPT_FULFILLMENT = "specprompt_fulfillment"


class Role(enum.StrEnum):
    """Granted roles. Every signed-in user is implicitly a plain ``user``."""

    PUBLISHER = "publisher"
    ADMIN = "admin"


class ActorType(enum.StrEnum):
    """Who did something, in an audit event: a user, or the system (an operator, a job, a target
    system).
    """

    USER = "user"
    SYSTEM = "system"


class SearchSort(enum.StrEnum):
    """The orders of a catalogue search (P1)."""

    RELEVANCE = "relevance"
    UPDATED = "updated"
    CREATED = "created"
    NAME = "name"
    INSTALLS = "installs"

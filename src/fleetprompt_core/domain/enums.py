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
    DRAFT = "draft"
    PUBLISHED = "published"
    UNLISTED = "unlisted"
    SUSPENDED = "suspended"


class AssetKind(enum.StrEnum):
    WHS_AGENT = "whs_agent"
    AGENTROMATIC_WORKFLOW = "agentromatic_workflow"
    SPEC_ASSET = "spec_asset"


class ReleaseStatus(enum.StrEnum):
    PUBLISHED = "published"
    REVOKED = "revoked"


class InstallTargetSystem(enum.StrEnum):
    WHS = "whs"
    AGENTROMATIC = "agentromatic"
    AGENTELIC = "agentelic"


class InstallIntentStatus(enum.StrEnum):
    CREATED = "created"
    TOKEN_ISSUED = "token_issued"  # noqa: S105 - a status, not a secret
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    CANCELED = "canceled"


class InstallTokenStatus(enum.StrEnum):
    ISSUED = "issued"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    REVOKED = "revoked"


class VerificationStatus(enum.StrEnum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    FAILED = "failed"


class ArtifactKind(enum.StrEnum):
    SOURCE_BUNDLE = "source_bundle"
    BUILD_ARTIFACT = "build_artifact"
    MANIFEST = "manifest"


class ArtifactDownloadMode(enum.StrEnum):
    NONE = "none"
    FLEETPROMPT_SIGNED_URL = "fleetprompt_signed_url"
    SPECPROMPT_FULFILLMENT = "specprompt_fulfillment"


class Role(enum.StrEnum):
    """Granted roles. Every signed-in user is implicitly a plain ``user``."""

    PUBLISHER = "publisher"
    ADMIN = "admin"


class ActorType(enum.StrEnum):
    USER = "user"
    SYSTEM = "system"


class SearchSort(enum.StrEnum):
    RELEVANCE = "relevance"
    UPDATED = "updated"
    CREATED = "created"
    NAME = "name"
    INSTALLS = "installs"

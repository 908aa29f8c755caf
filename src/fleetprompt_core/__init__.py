"""FleetPrompt's domain core: entities, rules, ports and use cases, without I/O.

The public face re-exports what an embedder needs. Underneath, the core is a
strict stack of layers, each importing only those below it (ADR 0030):
``base`` (errors, enums, limits) <- ``policies`` (pure rules) <- ``domain``
(entities) <- ``commands`` (payload parsers) | ``ports`` (Protocols) <-
``services`` (use cases) <- ``app`` (:class:`FleetPrompt`).

Docstrings cite the contract, ``docs/contract.md`` in the repository: "§6" is
its section 6, "hard rule 3" the third of its hard rules, "B2" or "I4" a row of
its endpoint table, "U-TOK-04" an acceptance id.
"""

from importlib import metadata as _metadata

from fleetprompt_core.app import FleetPrompt
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
    SearchSort,
    VerificationStatus,
)
from fleetprompt_core.base.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    FieldError,
    Internal,
    NotFound,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unauthorized,
    Unavailable,
    Unsupported,
    ValidationFailed,
)
from fleetprompt_core.domain.accounts import Account
from fleetprompt_core.domain.model import (
    Actor,
    ApiToken,
    Artifact,
    ArtifactDownload,
    AuditEvent,
    Compat,
    Image,
    InstallIntent,
    Links,
    Listing,
    Moderation,
    PublisherProfile,
    Release,
    ReleaseRefs,
    TargetContext,
    User,
    Verification,
)
from fleetprompt_core.policies.markdown import RenderedMarkdown
from fleetprompt_core.policies.pagination import CursorCodec, Page
from fleetprompt_core.policies.signing import RedeemVerifier
from fleetprompt_core.ports import Principal
from fleetprompt_core.services.accounts import Accounts, SignedIn, SignedInUser
from fleetprompt_core.services.admin import Admin
from fleetprompt_core.services.catalog import Catalog, PublicRead
from fleetprompt_core.services.credentials import Credentials
from fleetprompt_core.services.installs import Installs
from fleetprompt_core.services.operator import Operator
from fleetprompt_core.services.profiles import Profiles
from fleetprompt_core.services.publishing import Publishing
from fleetprompt_core.services.redemption import Redeemer
from fleetprompt_core.services.retention import Retention, RetentionReport
from fleetprompt_core.services.runtime import Call, CoreSettings, Outcome, Runtime
from fleetprompt_core.services.storefront import DailyActivity, PublisherPage, Storefront
from fleetprompt_core.services.views import (
    IssuedApiToken,
    IssuedToken,
    ListingView,
    PublicListing,
    PublicListingDetail,
    PublicPublisher,
    PublicRelease,
    PublisherSummary,
    RedeemedListing,
    RedeemedRelease,
    Redemption,
)

try:
    #: The installed distribution's version; ``pyproject.toml`` is its one source.
    __version__: str = _metadata.version("fleetprompt")
except _metadata.PackageNotFoundError:  # pragma: no cover - sources on sys.path, not installed
    __version__ = "0+unknown"

__all__ = [
    "Account",
    "Accounts",
    "Actor",
    "ActorType",
    "Admin",
    "ApiToken",
    "Artifact",
    "ArtifactDownload",
    "ArtifactDownloadMode",
    "ArtifactKind",
    "AssetKind",
    "AuditEvent",
    "Call",
    "Catalog",
    "Compat",
    "Conflict",
    "CoreSettings",
    "Credentials",
    "CursorCodec",
    "DailyActivity",
    "DomainError",
    "ErrorCode",
    "FieldError",
    "FleetPrompt",
    "Image",
    "InstallIntent",
    "InstallIntentStatus",
    "InstallTargetSystem",
    "InstallTokenStatus",
    "Installs",
    "Internal",
    "IssuedApiToken",
    "IssuedToken",
    "Links",
    "Listing",
    "ListingStatus",
    "ListingView",
    "Moderation",
    "NotFound",
    "Operator",
    "Outcome",
    "Page",
    "Principal",
    "Profiles",
    "PublicListing",
    "PublicListingDetail",
    "PublicPublisher",
    "PublicRead",
    "PublicRelease",
    "PublisherPage",
    "PublisherProfile",
    "PublisherSummary",
    "Publishing",
    "RateLimited",
    "RedeemVerifier",
    "RedeemedListing",
    "RedeemedRelease",
    "Redeemer",
    "Redemption",
    "Release",
    "ReleaseRefs",
    "ReleaseStatus",
    "RenderedMarkdown",
    "Retention",
    "RetentionReport",
    "Role",
    "Runtime",
    "SearchSort",
    "SignedIn",
    "SignedInUser",
    "Storefront",
    "TargetContext",
    "TooLarge",
    "Unauthenticated",
    "Unauthorized",
    "Unavailable",
    "Unsupported",
    "User",
    "ValidationFailed",
    "Verification",
    "VerificationStatus",
    "__version__",
]

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
from fleetprompt_core.commands.payloads import (
    ArtifactInput,
    CancelIntentPayload,
    CompatInput,
    DescriptionInput,
    DownloadInput,
    ImageInput,
    IntegerBounds,
    LinksInput,
    ListBounds,
    ListingPatchPayload,
    NewIntentPayload,
    NewListingPayload,
    NewReleasePayload,
    NotesInput,
    ProfilePayload,
    ReasonPayload,
    RedeemPayload,
    RefsInput,
    RoleChangePayload,
    SignUpPayload,
    StatusChangePayload,
    SuspendPayload,
    TargetContextInput,
    TextBounds,
    TokenPayload,
    VerificationPayload,
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
    "ArtifactInput",
    "ArtifactKind",
    "AssetKind",
    "AuditEvent",
    "Call",
    "CancelIntentPayload",
    "Catalog",
    "Compat",
    "CompatInput",
    "Conflict",
    "CoreSettings",
    "Credentials",
    "CursorCodec",
    "DailyActivity",
    "DescriptionInput",
    "DomainError",
    "DownloadInput",
    "ErrorCode",
    "FieldError",
    "FleetPrompt",
    "Image",
    "ImageInput",
    "InstallIntent",
    "InstallIntentStatus",
    "InstallTargetSystem",
    "InstallTokenStatus",
    "Installs",
    "IntegerBounds",
    "Internal",
    "IssuedApiToken",
    "IssuedToken",
    "Links",
    "LinksInput",
    "ListBounds",
    "Listing",
    "ListingPatchPayload",
    "ListingStatus",
    "ListingView",
    "Moderation",
    "NewIntentPayload",
    "NewListingPayload",
    "NewReleasePayload",
    "NotFound",
    "NotesInput",
    "Operator",
    "Outcome",
    "Page",
    "Principal",
    "ProfilePayload",
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
    "ReasonPayload",
    "RedeemPayload",
    "RedeemVerifier",
    "RedeemedListing",
    "RedeemedRelease",
    "Redeemer",
    "Redemption",
    "RefsInput",
    "Release",
    "ReleaseRefs",
    "ReleaseStatus",
    "RenderedMarkdown",
    "Retention",
    "RetentionReport",
    "Role",
    "RoleChangePayload",
    "Runtime",
    "SearchSort",
    "SignUpPayload",
    "SignedIn",
    "SignedInUser",
    "StatusChangePayload",
    "Storefront",
    "SuspendPayload",
    "TargetContext",
    "TargetContextInput",
    "TextBounds",
    "TokenPayload",
    "TooLarge",
    "Unauthenticated",
    "Unauthorized",
    "Unavailable",
    "Unsupported",
    "User",
    "ValidationFailed",
    "Verification",
    "VerificationPayload",
    "VerificationStatus",
    "__version__",
]

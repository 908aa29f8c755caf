"""FleetPrompt's domain core: entities, rules, ports and use cases, without I/O.

The public face re-exports what an embedder needs; everything else lives in
the subpackages (``domain``, ``policies``, ``services``) and ``ports``.
"""

from fleetprompt_core.app import FleetPrompt
from fleetprompt_core.domain.enums import (
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
from fleetprompt_core.domain.errors import (
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
    Unsupported,
    ValidationFailed,
)
from fleetprompt_core.policies.pagination import CursorCodec, Page
from fleetprompt_core.ports import Principal
from fleetprompt_core.services.runtime import Call, CoreSettings, Outcome, Runtime

__version__ = "0.1.0"

__all__ = [
    "ArtifactDownloadMode",
    "ArtifactKind",
    "AssetKind",
    "Call",
    "Conflict",
    "CoreSettings",
    "CursorCodec",
    "DomainError",
    "ErrorCode",
    "FieldError",
    "FleetPrompt",
    "InstallIntentStatus",
    "InstallTargetSystem",
    "InstallTokenStatus",
    "Internal",
    "ListingStatus",
    "NotFound",
    "Outcome",
    "Page",
    "Principal",
    "RateLimited",
    "ReleaseStatus",
    "Role",
    "Runtime",
    "SearchSort",
    "TooLarge",
    "Unauthenticated",
    "Unauthorized",
    "Unsupported",
    "ValidationFailed",
    "VerificationStatus",
    "__version__",
]

"""FleetPrompt's domain core: entities, rules, ports and use cases, without I/O.

The public face re-exports what an embedder needs; everything else lives in
the subpackages (``domain``, ``policies``, ``services``) and ``ports``.

Docstrings cite the contract, ``docs/contract.md`` in the repository: "§6" is
its section 6, "hard rule 3" the third of its hard rules, "B2" or "I4" a row of
its endpoint table, "U-TOK-04" an acceptance id.
"""

from importlib import metadata as _metadata

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
    Unavailable,
    Unsupported,
    ValidationFailed,
)
from fleetprompt_core.policies.pagination import CursorCodec, Page
from fleetprompt_core.ports import Principal
from fleetprompt_core.services.runtime import Call, CoreSettings, Outcome, Runtime

try:
    #: The installed distribution's version; ``pyproject.toml`` is its one source.
    __version__: str = _metadata.version("fleetprompt")
except _metadata.PackageNotFoundError:  # pragma: no cover - sources on sys.path, not installed
    __version__ = "0+unknown"

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
    "Unavailable",
    "Unsupported",
    "ValidationFailed",
    "VerificationStatus",
    "__version__",
]

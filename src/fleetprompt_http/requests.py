"""Request bodies (§3, §5): the JSON each write endpoint accepts, for the OpenAPI document.

These shapes only *document*: the handlers pass the raw JSON body to the use
case, and the core is the one validator (every failing field is listed in one
``VALIDATION_FAILED``). Each ``TypedDict`` is a body as it travels on the wire;
the ``Annotated`` metadata states the bounds the core enforces
(``fleetprompt_core.commands.parsers``, ``...base.limits``), and
:mod:`fleetprompt_http.openapi` turns both into JSON Schema.

Conventions the core applies everywhere, stated once here:

- unknown fields are rejected (``additionalProperties: false``);
- an optional field may be ``null``, which means "absent" (on a PATCH: "clear");
- text is Unicode without NUL or control characters (newlines and tabs are
  allowed in markdown, notes and reasons); bounds marked ``trimmed`` count the
  characters left after trimming surrounding whitespace, and a trimmed required
  text must keep a visible character.
"""

# No ``from __future__ import annotations``: the TypedDicts' ``__required_keys__`` must
# see ``NotRequired`` at class creation.
from typing import Annotated, Final, Literal, NotRequired, TypedDict

import attrs

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import (
    ArtifactDownloadMode,
    ArtifactKind,
    AssetKind,
    InstallTargetSystem,
    Role,
    VerificationStatus,
)

__all__ = [
    "AT_LEAST_ONE",
    "CancelIntentRequest",
    "Integer",
    "Items",
    "ListingPatchRequest",
    "NewIntentRequest",
    "NewListingRequest",
    "NewReleaseRequest",
    "ProfileRequest",
    "ReasonRequest",
    "RedeemRequest",
    "RoleChangeRequest",
    "StatusChangeRequest",
    "SuspendRequest",
    "Text",
    "TokenRequest",
    "VerificationRequest",
]

#: Largest integer every JSON client represents exactly (the core's bound).
MAX_SAFE_INTEGER: Final = 2**53 - 1
#: The URL policy's length bound (§3 "URL policy").
URL_MAX: Final = 2048
#: Printable ASCII, as the core requires of idempotency keys.
PRINTABLE_ASCII: Final = "^[\\x20-\\x7E]+$"


@attrs.frozen
class Text:
    """Bounds of a string field."""

    max_length: int
    min_length: int = 0
    #: The bounds count the characters left after trimming surrounding whitespace.
    trimmed: bool = False
    #: Newlines and tabs are allowed.
    multiline: bool = False
    #: An ECMA-262 pattern the whole value matches.
    pattern: str | None = None
    description: str | None = None


@attrs.frozen
class Items:
    """Bounds of a list field."""

    max_items: int
    description: str | None = None


@attrs.frozen
class Integer:
    """Bounds of an integer field."""

    minimum: int
    maximum: int = MAX_SAFE_INTEGER
    description: str | None = None


_URL_RULES: Final = (
    "`https:` only, at most 2 048 characters, a host and no credentials, no whitespace."
)

Label = Annotated[str, Text(limits.LABEL_MAX, 1, trimmed=True, description="Lower-cased.")]
#: A subset of what the URL policy accepts, as a pattern: ``https://``, a DNS host
#: name whose last label is letters, an optional port, a path of unreserved characters.
#: (The policy itself, in the core, is the rule; this only documents its shape.)
URL_PATTERN: Final = (
    "^https://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}"
    "(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$"
)
Url = Annotated[str | None, Text(URL_MAX, 1, pattern=URL_PATTERN, description=_URL_RULES)]
OpaqueRef = Annotated[
    str | None, Text(limits.REF_MAX, 1, trimmed=True, description="Opaque, never parsed.")
]
CompatVersion = Annotated[str | None, Text(limits.COMPAT_MAX, 1, trimmed=True)]
ContextId = Annotated[
    str | None,
    Text(limits.TARGET_CONTEXT_MAX, 1, trimmed=True, description="Opaque; never authorization."),
]
Reason = Annotated[str | None, Text(limits.REASON_MAX, trimmed=True, multiline=True)]


# --------------------------------------------------------------------------- listings


class DescriptionInput(TypedDict):
    """A listing description: CommonMark without raw HTML (§3 "Markdown policy")."""

    format: NotRequired[Literal["markdown"]]
    markdown: NotRequired[Annotated[str | None, Text(limits.DESCRIPTION_MAX, multiline=True)]]


class ImageInput(TypedDict):
    """An image: the host must be on the operator's allowlist and the path not `.svg`."""

    url: Annotated[
        str,
        Text(
            URL_MAX,
            1,
            pattern=URL_PATTERN,
            description=_URL_RULES + " The host must be one of `FLEETPROMPT_IMAGE_HOSTS`.",
        ),
    ]
    alt: NotRequired[Annotated[str | None, Text(limits.IMAGE_ALT_MAX)]]


class LinksInput(TypedDict):
    """Links, patched field by field; `null` clears one."""

    docsUrl: NotRequired[Url]
    repoUrl: NotRequired[Url]


_LABELS: Final = "Trimmed, lower-cased, de-duplicated."
Tags = Annotated[list[Label] | None, Items(limits.TAGS_MAX, _LABELS)]
Categories = Annotated[list[Label] | None, Items(limits.CATEGORIES_MAX, _LABELS)]
Images = Annotated[list[ImageInput] | None, Items(limits.IMAGES_MAX)]


class NewListingRequest(TypedDict):
    """B2: a new listing, created as `draft`. `assetKind` is immutable afterwards."""

    assetKind: AssetKind
    name: Annotated[str, Text(limits.NAME_MAX, 1, trimmed=True)]
    summary: NotRequired[Annotated[str | None, Text(limits.SUMMARY_MAX, trimmed=True)]]
    description: NotRequired[DescriptionInput | None]
    tags: NotRequired[Tags]
    categories: NotRequired[Categories]
    images: NotRequired[Images]
    links: NotRequired[LinksInput | None]


class ListingPatchRequest(TypedDict):
    """B4: patch semantics. Absent fields are kept, `null` clears an optional one, `links`
    is patched field by field; `assetKind`, `status` and ownership cannot be patched."""

    name: NotRequired[Annotated[str, Text(limits.NAME_MAX, 1, trimmed=True)]]
    summary: NotRequired[Annotated[str | None, Text(limits.SUMMARY_MAX, trimmed=True)]]
    description: NotRequired[DescriptionInput | None]
    tags: NotRequired[Tags]
    categories: NotRequired[Categories]
    images: NotRequired[Images]
    links: NotRequired[LinksInput | None]


class StatusChangeRequest(TypedDict):
    """B5: the owner's status change (`suspended` is for admins, A1)."""

    status: Literal["draft", "published", "unlisted"]


# --------------------------------------------------------------------------- releases


class RefsInput(TypedDict):
    """Upstream references. The listing's asset kind requires one and admits no other:
    `whs_agent` → `whsAgentId` (and the `whsDeploymentId` hint), `agentromatic_workflow`
    → `agentromaticWorkflowId`, `spec_asset` → `specAssetId`."""

    whsAgentId: NotRequired[OpaqueRef]
    whsDeploymentId: NotRequired[OpaqueRef]
    agentromaticWorkflowId: NotRequired[OpaqueRef]
    specAssetId: NotRequired[OpaqueRef]


class CompatInput(TypedDict):
    minWHSVersion: NotRequired[CompatVersion]
    minAgentromaticVersion: NotRequired[CompatVersion]
    minAgentelicVersion: NotRequired[CompatVersion]


class DownloadInput(TypedDict):
    """How the artifact is obtained; `fleetprompt_signed_url` is not offered in v1
    (`UNSUPPORTED`)."""

    mode: ArtifactDownloadMode
    hint: NotRequired[Annotated[str | None, Text(limits.ARTIFACT_HINT_MAX, multiline=True)]]


class ArtifactInput(TypedDict):
    kind: ArtifactKind
    sha256: Annotated[str, Text(64, 64, pattern="^[0-9A-Fa-f]{64}$")]
    sizeBytes: Annotated[int, Integer(0)]
    download: NotRequired[DownloadInput | None]


class NotesInput(TypedDict):
    """Release notes: CommonMark without raw HTML (§3 "Markdown policy")."""

    format: NotRequired[Literal["markdown"]]
    markdown: NotRequired[Annotated[str | None, Text(limits.NOTES_MAX, multiline=True)]]


class NewReleaseRequest(TypedDict):
    """B6: an immutable release; `version` is unique per listing (`CONFLICT` otherwise)."""

    version: Annotated[
        str,
        Text(
            limits.VERSION_MAX,
            1,
            pattern="^[0-9A-Za-z.+-]+$",
            description="Semantic versioning recommended.",
        ),
    ]
    refs: RefsInput
    compat: NotRequired[CompatInput | None]
    artifacts: NotRequired[Annotated[list[ArtifactInput] | None, Items(limits.ARTIFACTS_MAX)]]
    notes: NotRequired[NotesInput | None]


class ReasonRequest(TypedDict):
    """An optional reason (B8 revoke, A1 unsuspend); the body itself may be omitted."""

    reason: NotRequired[Reason]


class SuspendRequest(TypedDict):
    """A1 suspend: the reason is required."""

    reason: Annotated[str, Text(limits.REASON_MAX, 1, trimmed=True, multiline=True)]


# --------------------------------------------------------------------------- profiles, admin


class ProfileRequest(TypedDict):
    """B9: replaces the display name and the bio (CommonMark without raw HTML)."""

    displayName: Annotated[str, Text(limits.DISPLAY_NAME_MAX, 1, trimmed=True)]
    bioMarkdown: NotRequired[Annotated[str | None, Text(limits.BIO_MAX, multiline=True)]]


class RoleChangeRequest(TypedDict):
    """A2: roles to grant and to revoke; at least one of the two, no role in both."""

    grant: NotRequired[Annotated[list[Role] | None, Items(len(Role))]]
    revoke: NotRequired[Annotated[list[Role] | None, Items(len(Role))]]


#: Bodies that must carry at least one of these fields as a non-empty list.
AT_LEAST_ONE: Final[dict[type, tuple[str, ...]]] = {RoleChangeRequest: ("grant", "revoke")}


class VerificationRequest(TypedDict):
    """A3: a publisher's verification (informational; grants nothing)."""

    status: VerificationStatus
    reason: NotRequired[Reason]


# --------------------------------------------------------------------------- installs


class TargetContextInput(TypedDict):
    telespaceId: NotRequired[ContextId]
    roomId: NotRequired[ContextId]
    orgId: NotRequired[ContextId]


class NewIntentRequest(TypedDict):
    """I1: an install intent for a published release of a published listing (without
    `releaseId`: the listing's latest published release)."""

    listingId: Annotated[str, Text(limits.REF_MAX, 1)]
    releaseId: NotRequired[Annotated[str | None, Text(limits.REF_MAX, 1)]]
    targetSystem: InstallTargetSystem
    targetContext: NotRequired[TargetContextInput | None]


class TokenRequest(TypedDict):
    """I4: the token's time to live (default 15 minutes); the body may be omitted."""

    ttlMs: NotRequired[
        Annotated[
            int | None,
            Integer(limits.TOKEN_TTL_MIN_MS, limits.TOKEN_TTL_MAX_MS, "Milliseconds."),
        ]
    ]


class CancelIntentRequest(TypedDict):
    """I5: no fields; the body may be omitted or `{}`."""


class RedeemRequest(TypedDict):
    """X1: the raw install token and the system redeeming it (the intent's target)."""

    installToken: Annotated[str, Text(200, 1)]
    targetSystem: InstallTargetSystem

"""The JSON objects the use cases take, as typed shapes.

Every use case that takes a ``payload`` is annotated with one of these
``TypedDict``\\ s: the keys it reads (the wire's camelCase names, exactly the
request bodies of the HTTP API) and the type of each value. Build one to have
your type checker check the keys and values you pass::

    from fleetprompt_core import AssetKind, NewListingPayload

    payload: NewListingPayload = {"assetKind": AssetKind.WHS_AGENT, "name": "Ticket Triage"}
    fp.publishing.create_listing(call, payload, idempotency_key="create-1")

The annotation describes; it does not promise. Each use case still checks its
payload field by field when it runs, and also accepts any other value
(:data:`Untrusted`: JSON decoded from a request, a dict built from a form). A
wrong value is never stored: the call raises one ``ValidationFailed`` whose
``fields`` name every failing field, whatever the static type said.

Bounds travel with the types. A field's ``Annotated`` metadata
(:class:`TextBounds`, :class:`ListBounds`, :class:`IntegerBounds`) states what the
use case enforces, with the same constants the validators use (``limits``, the
URL and password policies), so documentation generated from these shapes (the
HTTP API's OpenAPI document) cannot drift from the rules. Read it with
``typing.get_type_hints(NewListingPayload, include_extras=True)``.

Conventions of every shape:

- unknown keys are refused;
- an optional key may be ``None``, which means "absent" (in a patch: "clear it");
- text is Unicode without NUL or control characters (newlines and tabs are
  allowed where :attr:`TextBounds.multiline` says so); a ``trimmed`` bound counts
  the characters left once surrounding whitespace is removed, and a trimmed
  required text must keep a visible character;
- an enum-valued key takes the enum member or its string value
  (``AssetKind.WHS_AGENT`` or ``"whs_agent"``).
"""

# No ``from __future__ import annotations``: ``TypedDict`` must see ``NotRequired`` when
# the class is created, to compute ``__required_keys__``.
from typing import Annotated, Final, Literal, NotRequired, TypeAlias, TypedDict

import attrs

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import (
    ArtifactDownloadMode,
    ArtifactKind,
    AssetKind,
    InstallTargetSystem,
    ListingStatus,
    Role,
    VerificationStatus,
)
from fleetprompt_core.policies import passwords
from fleetprompt_core.policies.urls import MAX_URL_LENGTH
from fleetprompt_core.policies.validation import SHA256_PATTERN, VERSION_PATTERN

__all__ = [
    "ArtifactInput",
    "CancelIntentPayload",
    "CompatInput",
    "DescriptionInput",
    "DownloadInput",
    "ImageInput",
    "IntegerBounds",
    "LinksInput",
    "ListBounds",
    "ListingPatchPayload",
    "NewIntentPayload",
    "NewListingPayload",
    "NewReleasePayload",
    "NotesInput",
    "ProfilePayload",
    "ReasonPayload",
    "RedeemPayload",
    "RefsInput",
    "RoleChangePayload",
    "SignUpPayload",
    "StatusChangePayload",
    "SuspendPayload",
    "TargetContextInput",
    "TextBounds",
    "TokenPayload",
    "Untrusted",
    "VerificationPayload",
]

#: What a use case accepts besides its typed payload: any value at all, typically
#: JSON decoded from a request and not yet checked. The use case validates it.
Untrusted: TypeAlias = object


# --------------------------------------------------------------------------- bounds


@attrs.frozen
class TextBounds:
    """What a text field must satisfy, as the use case checks it."""

    #: At most this many characters (after trimming, when ``trimmed``).
    max_length: int
    #: At least this many characters; ``1`` makes an empty text a failure.
    min_length: int = 0
    #: Surrounding whitespace is removed before the bounds are counted and the text stored.
    trimmed: bool = False
    #: Newlines and tabs are allowed (markdown, notes, reasons).
    multiline: bool = False
    #: A regular expression (the subset Python and ECMA-262 share) the whole value matches.
    pattern: str | None = None
    #: The value must pass the URL policy: ``https:``, a host, no credentials, no whitespace.
    url: bool = False
    #: A note for a reader of the field.
    description: str | None = None


@attrs.frozen
class ListBounds:
    """What a list field must satisfy, as the use case checks it."""

    #: At most this many items.
    max_items: int
    #: A note for a reader of the field (how items are normalised).
    description: str | None = None


@attrs.frozen
class IntegerBounds:
    """What an integer field must satisfy: a JSON integer (no fraction, no exponent, not
    a boolean) in ``minimum..maximum``."""

    minimum: int
    #: The default is the largest integer every JSON client represents exactly.
    maximum: int = limits.JSON_INTEGER_MAX
    #: A note for a reader of the field (its unit).
    description: str | None = None


def _whole(pattern: str) -> str:
    """``pattern`` anchored, as JSON Schema reads a ``pattern`` (``re.fullmatch`` semantics)."""
    return f"^{pattern}$"


_LABELS: Final = "Trimmed, lower-cased, de-duplicated."

Label = Annotated[
    str, TextBounds(limits.LABEL_MAX, 1, trimmed=True, description="Stored lower-cased.")
]
Url = Annotated[str | None, TextBounds(MAX_URL_LENGTH, 1, url=True)]
OpaqueRef = Annotated[
    str | None,
    TextBounds(limits.REF_MAX, 1, trimmed=True, description="Opaque; FleetPrompt never parses it."),
]
CompatVersion = Annotated[str | None, TextBounds(limits.COMPAT_MAX, 1, trimmed=True)]
ContextId = Annotated[
    str | None,
    TextBounds(
        limits.TARGET_CONTEXT_MAX, 1, trimmed=True, description="Opaque; never authorization."
    ),
]
Reason = Annotated[str | None, TextBounds(limits.REASON_MAX, trimmed=True, multiline=True)]


# --------------------------------------------------------------------------- listings


class DescriptionInput(TypedDict):
    """A listing's description: CommonMark without raw HTML (rendered and sanitized on
    write). ``None`` as the whole value clears it."""

    format: NotRequired[Literal["markdown"]]
    markdown: NotRequired[Annotated[str | None, TextBounds(limits.DESCRIPTION_MAX, multiline=True)]]


class ImageInput(TypedDict):
    """A screenshot: an ``https:`` URL on one of the operator's image hosts
    (``CoreSettings.image_hosts``), not an SVG, and its alternative text."""

    url: Annotated[
        str,
        TextBounds(
            MAX_URL_LENGTH,
            1,
            url=True,
            description="The host must be one of the operator's image hosts.",
        ),
    ]
    alt: NotRequired[Annotated[str | None, TextBounds(limits.IMAGE_ALT_MAX)]]


class LinksInput(TypedDict):
    """A listing's links, changed key by key; ``None`` for a key clears that link."""

    docsUrl: NotRequired[Url]
    repoUrl: NotRequired[Url]


Tags = Annotated[list[Label] | None, ListBounds(limits.TAGS_MAX, _LABELS)]
Categories = Annotated[list[Label] | None, ListBounds(limits.CATEGORIES_MAX, _LABELS)]
Images = Annotated[list[ImageInput] | None, ListBounds(limits.IMAGES_MAX)]
ListingName = Annotated[str, TextBounds(limits.NAME_MAX, 1, trimmed=True)]
Summary = Annotated[str | None, TextBounds(limits.SUMMARY_MAX, trimmed=True)]


class NewListingPayload(TypedDict):
    """A new listing, created as a draft (``Publishing.create_listing``). Its
    ``assetKind`` can never change afterwards."""

    assetKind: AssetKind
    name: ListingName
    summary: NotRequired[Summary]
    description: NotRequired[DescriptionInput | None]
    tags: NotRequired[Tags]
    categories: NotRequired[Categories]
    images: NotRequired[Images]
    links: NotRequired[LinksInput | None]


class ListingPatchPayload(TypedDict):
    """Changes to a listing (``Publishing.update_listing``): keys left out keep their
    value, ``None`` clears an optional one, ``links`` changes link by link. The asset
    kind, the status and the owner cannot be changed this way."""

    name: NotRequired[ListingName]
    summary: NotRequired[Summary]
    description: NotRequired[DescriptionInput | None]
    tags: NotRequired[Tags]
    categories: NotRequired[Categories]
    images: NotRequired[Images]
    links: NotRequired[LinksInput | None]


class StatusChangePayload(TypedDict):
    """The status an owner moves a listing to (``Publishing.change_status``);
    ``suspended`` is an admin's decision (``Admin.suspend_listing``)."""

    status: Literal[ListingStatus.DRAFT, ListingStatus.PUBLISHED, ListingStatus.UNLISTED]


# --------------------------------------------------------------------------- releases


class RefsInput(TypedDict):
    """What the release points at upstream. The listing's asset kind requires one
    reference and admits no other: ``whs_agent`` takes ``whsAgentId`` (and the
    ``whsDeploymentId`` hint), ``agentromatic_workflow`` takes
    ``agentromaticWorkflowId``, ``spec_asset`` takes ``specAssetId``."""

    whsAgentId: NotRequired[OpaqueRef]
    whsDeploymentId: NotRequired[OpaqueRef]
    agentromaticWorkflowId: NotRequired[OpaqueRef]
    specAssetId: NotRequired[OpaqueRef]


class CompatInput(TypedDict):
    """The oldest version of each host system the release works with."""

    minWHSVersion: NotRequired[CompatVersion]
    minAgentromaticVersion: NotRequired[CompatVersion]
    minAgentelicVersion: NotRequired[CompatVersion]


class DownloadInput(TypedDict):
    """How a buyer obtains an artifact. ``fleetprompt_signed_url`` is refused with
    ``Unsupported``: FleetPrompt never hosts artifacts."""

    mode: ArtifactDownloadMode
    hint: NotRequired[Annotated[str | None, TextBounds(limits.ARTIFACT_HINT_MAX, multiline=True)]]


class ArtifactInput(TypedDict):
    """A file of the release, named by its SHA-256 digest and size (FleetPrompt stores
    pointers only)."""

    kind: ArtifactKind
    sha256: Annotated[
        str,
        TextBounds(
            limits.SHA256_HEX_LENGTH,
            limits.SHA256_HEX_LENGTH,
            pattern=_whole(SHA256_PATTERN.pattern),
            description="Hexadecimal; stored lower-cased.",
        ),
    ]
    sizeBytes: Annotated[int, IntegerBounds(0, description="Bytes.")]
    download: NotRequired[DownloadInput | None]


class NotesInput(TypedDict):
    """Release notes: CommonMark without raw HTML."""

    format: NotRequired[Literal["markdown"]]
    markdown: NotRequired[Annotated[str | None, TextBounds(limits.NOTES_MAX, multiline=True)]]


class NewReleasePayload(TypedDict):
    """A release of a listing (``Publishing.publish_release``); releases never change,
    and ``version`` is unique within the listing (``Conflict`` otherwise)."""

    version: Annotated[
        str,
        TextBounds(
            limits.VERSION_MAX,
            1,
            pattern=_whole(VERSION_PATTERN.pattern),
            description="Letters, digits, `.`, `+` and `-`; semantic versioning recommended.",
        ),
    ]
    refs: RefsInput
    compat: NotRequired[CompatInput | None]
    artifacts: NotRequired[Annotated[list[ArtifactInput] | None, ListBounds(limits.ARTIFACTS_MAX)]]
    notes: NotRequired[NotesInput | None]


class ReasonPayload(TypedDict):
    """An optional reason, kept in the audit log (``Publishing.revoke_release``,
    ``Admin.unsuspend_listing``); the whole payload may be ``None``."""

    reason: NotRequired[Reason]


class SuspendPayload(TypedDict):
    """Why an admin suspends a listing (``Admin.suspend_listing``): required."""

    reason: Annotated[str, TextBounds(limits.REASON_MAX, 1, trimmed=True, multiline=True)]


# --------------------------------------------------------------------------- profiles, admin


class ProfilePayload(TypedDict):
    """A publisher's whole profile (``Profiles.put``): the display name and the bio,
    CommonMark without raw HTML; a bio left out is cleared."""

    displayName: Annotated[str, TextBounds(limits.DISPLAY_NAME_MAX, 1, trimmed=True)]
    bioMarkdown: NotRequired[Annotated[str | None, TextBounds(limits.BIO_MAX, multiline=True)]]


Roles = Annotated[list[Role] | None, ListBounds(len(Role))]


class RoleChangePayload(TypedDict):
    """Roles an admin grants and revokes (``Admin.change_roles``): at least one of the
    two lists, and no role in both."""

    grant: NotRequired[Roles]
    revoke: NotRequired[Roles]


class VerificationPayload(TypedDict):
    """An admin's verdict on a publisher (``Admin.set_verification``). Informational:
    being verified grants nothing."""

    status: VerificationStatus
    reason: NotRequired[Reason]


# --------------------------------------------------------------------------- installs


class TargetContextInput(TypedDict):
    """Where the buyer means to install, as opaque ids of the target system."""

    telespaceId: NotRequired[ContextId]
    roomId: NotRequired[ContextId]
    orgId: NotRequired[ContextId]


class NewIntentPayload(TypedDict):
    """A buyer's intent to install a published release of a published listing
    (``Installs.create_intent``); without ``releaseId``, the latest published release."""

    listingId: Annotated[str, TextBounds(limits.REF_MAX, 1)]
    releaseId: NotRequired[Annotated[str | None, TextBounds(limits.REF_MAX, 1)]]
    targetSystem: InstallTargetSystem
    targetContext: NotRequired[TargetContextInput | None]


class TokenPayload(TypedDict):
    """How long the install token lives (``Installs.issue_token``); the whole payload
    may be ``None`` for the default of 15 minutes."""

    ttlMs: NotRequired[
        Annotated[
            int | None,
            IntegerBounds(limits.TOKEN_TTL_MIN_MS, limits.TOKEN_TTL_MAX_MS, "Milliseconds."),
        ]
    ]


class CancelIntentPayload(TypedDict):
    """No keys: ``Installs.cancel_intent`` takes ``{}`` or ``None``."""


class RedeemPayload(TypedDict):
    """What a target system redeems (``Redeemer.redeem``): the raw install token and
    the system redeeming it, which must be the intent's target."""

    installToken: Annotated[str, TextBounds(limits.INSTALL_TOKEN_MAX, 1)]
    targetSystem: InstallTargetSystem


# --------------------------------------------------------------------------- accounts


class SignUpPayload(TypedDict):
    """A new account (``Accounts.sign_up``): a username (lower-case letters, digits,
    ``.``, ``_``, ``-``), an optional e-mail and display name, and a password."""

    username: Annotated[str, TextBounds(passwords.USERNAME_MAX, passwords.USERNAME_MIN)]
    email: NotRequired[Annotated[str | None, TextBounds(limits.EMAIL_MAX)]]
    displayName: NotRequired[
        Annotated[str | None, TextBounds(limits.DISPLAY_NAME_MAX, trimmed=True)]
    ]
    password: Annotated[str, TextBounds(passwords.PASSWORD_MAX, passwords.PASSWORD_MIN)]

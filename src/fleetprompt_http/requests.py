"""Request bodies: the core's payload shape of each write endpoint, and an example.

The shapes are the core's (:mod:`fleetprompt_core.commands.payloads`, exported from
``fleetprompt_core``): each is a ``TypedDict`` of the JSON object a use case
takes, whose ``Annotated`` metadata states the bounds the core enforces, with
the core's own constants. :mod:`fleetprompt_http.openapi` turns them into JSON
Schema; nothing here validates anything (the handlers pass the raw JSON body
to the use case, and the core lists every failing field in one
``VALIDATION_FAILED``) and no bound is written here.

What this module adds is documentation only HTTP needs: a realistic example
body per shape (type-checked against the shape, and sent to the real app by
``tests/contract/test_http_openapi.py``), the JSON Schema spelling of the URL
policy and of an idempotency key, and the one rule JSON Schema states by
structure (at least one of two lists).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from fleetprompt_core import (
    ArtifactDownloadMode,
    ArtifactKind,
    AssetKind,
    CancelIntentPayload,
    InstallTargetSystem,
    ListingPatchPayload,
    ListingStatus,
    NewIntentPayload,
    NewListingPayload,
    NewReleasePayload,
    ProfilePayload,
    ReasonPayload,
    RedeemPayload,
    Role,
    RoleChangePayload,
    StatusChangePayload,
    SuspendPayload,
    TokenPayload,
    VerificationPayload,
    VerificationStatus,
)

__all__ = [
    "AT_LEAST_ONE",
    "BODIES",
    "EXAMPLES",
    "PRINTABLE_ASCII",
    "URL_PATTERN",
    "URL_RULES",
]

#: Printable ASCII, as the core requires of idempotency keys.
PRINTABLE_ASCII: Final = "^[\\x20-\\x7E]+$"
#: A subset of what the URL policy accepts, as a pattern: ``https://``, a DNS host
#: name whose last label is letters, an optional port, a path of unreserved characters.
#: (The policy itself, in the core, is the rule; this only documents its shape.)
URL_PATTERN: Final = (
    "^https://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}"
    "(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$"
)
#: The URL policy in words, for a field's description.
URL_RULES: Final = "`https:` only, a host and no credentials, no whitespace."

#: Bodies that must carry at least one of these fields as a non-empty list.
AT_LEAST_ONE: Final[Mapping[type, tuple[str, ...]]] = {RoleChangePayload: ("grant", "revoke")}

_SHOT: Final = "https://images.example.com/triage/inbox.png"

_NEW_LISTING: Final[NewListingPayload] = {
    "assetKind": AssetKind.WHS_AGENT,
    "name": "Support Triage Agent",
    "summary": "Routes incoming support tickets to the right queue.",
    "description": {
        "format": "markdown",
        "markdown": "# Support triage\n\nReads each new ticket and **routes** it.",
    },
    "tags": ["support", "triage"],
    "categories": ["operations"],
    "images": [{"url": _SHOT, "alt": "The triage inbox"}],
    "links": {
        "docsUrl": "https://docs.example.com/triage",
        "repoUrl": "https://git.example.com/acme/triage",
    },
}
_LISTING_PATCH: Final[ListingPatchPayload] = {
    "summary": "Routes support tickets and drafts a first answer.",
    "tags": ["support", "triage", "drafting"],
    "links": {"repoUrl": None},
}
_STATUS_CHANGE: Final[StatusChangePayload] = {"status": ListingStatus.PUBLISHED}
_NEW_RELEASE: Final[NewReleasePayload] = {
    "version": "1.4.0",
    "refs": {"whsAgentId": "agent-7f3a", "whsDeploymentId": "dep-eu-1"},
    "compat": {"minWHSVersion": "2.1.0"},
    "artifacts": [
        {
            "kind": ArtifactKind.MANIFEST,
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "sizeBytes": 2048,
            "download": {
                "mode": ArtifactDownloadMode.NONE,
                "hint": "Installed by WHS from the agent id.",
            },
        }
    ],
    "notes": {"format": "markdown", "markdown": "Adds drafting of a first answer."},
}
_REASON: Final[ReasonPayload] = {"reason": "Superseded by 1.4.0."}
_SUSPEND: Final[SuspendPayload] = {"reason": "Reported for sending customer data off-site."}
_PROFILE: Final[ProfilePayload] = {
    "displayName": "Acme Agents",
    "bioMarkdown": "We build agents for **support teams**.",
}
_ROLE_CHANGE: Final[RoleChangePayload] = {"grant": [Role.PUBLISHER]}
_VERIFICATION: Final[VerificationPayload] = {
    "status": VerificationStatus.VERIFIED,
    "reason": "Domain ownership confirmed.",
}
_NEW_INTENT: Final[NewIntentPayload] = {
    "listingId": "lst_01HZX3Q8Y6T2K9N4B7C5D1E0FA",
    "targetSystem": InstallTargetSystem.WHS,
    "targetContext": {"telespaceId": "ts-support", "orgId": "org-acme"},
}
_TOKEN: Final[TokenPayload] = {"ttlMs": 600_000}
_CANCEL: Final[CancelIntentPayload] = {}
_REDEEM: Final[RedeemPayload] = {
    "installToken": "fpit_3q2Yb9cV0pLx7WmZ4tN8aR1eK6sD5uHf",
    "targetSystem": InstallTargetSystem.WHS,
}

#: The example body of each request shape (enum members are sent as their values).
EXAMPLES: Final[Mapping[type, Mapping[str, object]]] = {
    NewListingPayload: _NEW_LISTING,
    ListingPatchPayload: _LISTING_PATCH,
    StatusChangePayload: _STATUS_CHANGE,
    NewReleasePayload: _NEW_RELEASE,
    ReasonPayload: _REASON,
    SuspendPayload: _SUSPEND,
    ProfilePayload: _PROFILE,
    RoleChangePayload: _ROLE_CHANGE,
    VerificationPayload: _VERIFICATION,
    NewIntentPayload: _NEW_INTENT,
    TokenPayload: _TOKEN,
    CancelIntentPayload: _CANCEL,
    RedeemPayload: _REDEEM,
}
#: Every request shape the API documents, in ``components/schemas`` under its name.
BODIES: Final = tuple(EXAMPLES)

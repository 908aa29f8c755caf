"""Factories of valid domain entities for the port contract suite.

Every factory builds a complete, valid entity with fresh ids and takes keyword
overrides for any field (``listing(status=ListingStatus.PUBLISHED)``). Ids are
``prefix_`` plus a zero-padded counter, so the string order of ids from one
factory is their creation order.

References between entities are real ids: a test stores the parents it points
at (``family()`` builds a consistent set), so an adapter that enforces foreign
keys passes the same suite. Audit events are the exception: the log keeps ids
as they were, so its references are plain values, never foreign keys.

The ``*_at_limits`` builders fill every field to the contract's exact bound
with characters outside the Basic Multilingual Plane; the ``*_minimal``
builders use empty tuples and ``None`` wherever the model allows.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from typing import Any, Final

import attrs

from fleetprompt_core.base import limits
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
from fleetprompt_core.domain.model import (
    Actor,
    ApiToken,
    Artifact,
    ArtifactDownload,
    AuditEvent,
    Compat,
    IdempotencyRecord,
    Image,
    InstallIntent,
    InstallToken,
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
from fleetprompt_core.policies.markdown import rendered
from fleetprompt_core.policies.urls import MAX_URL_LENGTH

__all__ = [
    "MAX_JSON_INT",
    "T0",
    "Family",
    "api_token",
    "api_token_at_limits",
    "api_token_minimal",
    "audit_event",
    "audit_event_at_limits",
    "audit_event_minimal",
    "family",
    "idempotency_record",
    "idempotency_record_at_limits",
    "intent",
    "intent_at_limits",
    "intent_minimal",
    "listing",
    "listing_at_limits",
    "listing_minimal",
    "new_id",
    "profile",
    "profile_at_limits",
    "profile_minimal",
    "release",
    "release_at_limits",
    "release_minimal",
    "token",
    "token_redeemed",
    "user",
    "user_at_limits",
    "user_minimal",
]

#: 2026-01-01T00:00:00Z, the suite's "now".
T0: Final = 1_767_225_600_000
#: The largest integer every JSON client represents exactly (the contract's integer bound).
MAX_JSON_INT: Final = 2**53 - 1

# Characters outside the BMP: 4 bytes in UTF-8, a surrogate pair in UTF-16.
FOX: Final = "\U0001f98a"  # 🦊
MATH_A: Final = "\U0001d552"  # 𝕒
GOTHIC: Final = "\U00010330"  # 𐌰

_counter = itertools.count(1)


def new_id(prefix: str) -> str:
    """A fresh id such as ``lst_00000042``; later ids sort after earlier ones."""
    return f"{prefix}_{next(_counter):08d}"


def _text(length: int, char: str = FOX) -> str:
    return char * length


def _url(length: int = MAX_URL_LENGTH) -> str:
    head = "https://images.example.com/"
    return head + "a" * (length - len(head))


# --------------------------------------------------------------------------- users


def user(**overrides: Any) -> User:
    user_id = overrides.pop("user_id", None) or new_id("usr")
    value = User(
        user_id=user_id,
        external_id=f"idp|{user_id}",
        display_name=f"User {user_id}",
        email=f"{user_id}@example.com",
        roles=frozenset(),
        created_at_ms=T0,
        updated_at_ms=T0,
    )
    return attrs.evolve(value, **overrides)


def user_at_limits(**overrides: Any) -> User:
    domain = "@example.com"
    return user(
        external_id=_text(limits.EXTERNAL_ID_MAX, MATH_A),
        display_name=_text(limits.DISPLAY_NAME_MAX),
        email=_text(limits.EMAIL_MAX - len(domain), GOTHIC) + domain,
        roles=frozenset({Role.PUBLISHER, Role.ADMIN}),
        created_at_ms=MAX_JSON_INT - 1,
        updated_at_ms=MAX_JSON_INT,
        **overrides,
    )


def user_minimal(**overrides: Any) -> User:
    return user(display_name=None, email=None, roles=frozenset(), **overrides)


def profile(**overrides: Any) -> PublisherProfile:
    value = PublisherProfile(
        publisher_id=new_id("usr"),
        display_name="Acme Agents",
        bio=rendered("We build **agents**."),
        verification=Verification(),
        created_at_ms=T0,
        updated_at_ms=T0,
    )
    return attrs.evolve(value, **overrides)


def profile_at_limits(**overrides: Any) -> PublisherProfile:
    return profile(
        display_name=_text(limits.DISPLAY_NAME_MAX, GOTHIC),
        bio=rendered(_text(limits.BIO_MAX)),
        verification=Verification(
            status=VerificationStatus.VERIFIED,
            checked_at_ms=T0 + 1,
            reason=_text(limits.REASON_MAX, MATH_A),
        ),
        **overrides,
    )


def profile_minimal(**overrides: Any) -> PublisherProfile:
    return profile(display_name="", bio=rendered(""), verification=Verification(), **overrides)


# --------------------------------------------------------------------------- listings


def listing(**overrides: Any) -> Listing:
    value = Listing(
        listing_id=new_id("lst"),
        publisher_user_id=new_id("usr"),
        asset_kind=AssetKind.WHS_AGENT,
        status=ListingStatus.DRAFT,
        name="Support Triage Agent",
        summary="Routes support tickets to the right queue.",
        description=rendered("# Triage\n\nIt **routes** tickets."),
        tags=("support", "triage"),
        categories=("operations",),
        images=(Image(url="https://images.example.com/shot.png", alt="screenshot"),),
        links=Links(docs_url="https://docs.example.com/triage"),
        moderation=Moderation(),
        created_at_ms=T0,
        updated_at_ms=T0,
    )
    return attrs.evolve(value, **overrides)


def listing_at_limits(**overrides: Any) -> Listing:
    def label(i: int, length: int) -> str:
        return f"{i:02d}" + _text(length - 2, MATH_A)

    return listing(
        asset_kind=AssetKind.AGENTROMATIC_WORKFLOW,
        status=ListingStatus.SUSPENDED,
        name=_text(limits.NAME_MAX),
        summary=_text(limits.SUMMARY_MAX, GOTHIC),
        description=rendered(_text(limits.DESCRIPTION_MAX)),
        tags=tuple(label(i, limits.LABEL_MAX) for i in range(limits.TAGS_MAX)),
        categories=tuple(label(i, limits.LABEL_MAX) for i in range(limits.CATEGORIES_MAX)),
        images=tuple(
            Image(url=_url(), alt=_text(limits.IMAGE_ALT_MAX)) for _ in range(limits.IMAGES_MAX)
        ),
        links=Links(docs_url=_url(), repo_url=_url()),
        moderation=Moderation(flagged=True, reason=_text(limits.REASON_MAX)),
        created_at_ms=MAX_JSON_INT - 1,
        updated_at_ms=MAX_JSON_INT,
        **overrides,
    )


def listing_minimal(**overrides: Any) -> Listing:
    return listing(
        name="x",
        summary="",
        description=rendered(""),
        tags=(),
        categories=(),
        images=(),
        links=Links(),
        moderation=Moderation(),
        **overrides,
    )


# --------------------------------------------------------------------------- releases


def release(**overrides: Any) -> Release:
    value = Release(
        release_id=new_id("rel"),
        listing_id=new_id("lst"),
        publisher_user_id=new_id("usr"),
        version="1.0.0",
        status=ReleaseStatus.PUBLISHED,
        refs=ReleaseRefs(whs_agent_id="agent-123", whs_deployment_id="dep-9"),
        compat=Compat(min_whs_version="2.1.0"),
        artifacts=(
            Artifact(
                kind=ArtifactKind.MANIFEST,
                sha256="a" * 64,
                size_bytes=1024,
                download=ArtifactDownload(),
            ),
        ),
        notes=rendered("First release."),
        published_at_ms=T0,
    )
    return attrs.evolve(value, **overrides)


def release_at_limits(**overrides: Any) -> Release:
    version_chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.+-"
    kinds = list(ArtifactKind)
    modes = list(ArtifactDownloadMode)
    return release(
        version=(version_chars * 2)[: limits.VERSION_MAX],
        status=ReleaseStatus.REVOKED,
        refs=ReleaseRefs(
            whs_agent_id=_text(limits.REF_MAX),
            whs_deployment_id=_text(limits.REF_MAX, GOTHIC),
            agentromatic_workflow_id=_text(limits.REF_MAX, MATH_A),
            spec_asset_id=_text(limits.REF_MAX),
        ),
        compat=Compat(
            min_whs_version=_text(limits.COMPAT_MAX),
            min_agentromatic_version=_text(limits.COMPAT_MAX, GOTHIC),
            min_agentelic_version=_text(limits.COMPAT_MAX, MATH_A),
        ),
        artifacts=tuple(
            Artifact(
                kind=kinds[i % len(kinds)],
                sha256=f"{i:064x}",
                size_bytes=MAX_JSON_INT - i,
                download=ArtifactDownload(
                    mode=modes[i % len(modes)], hint=_text(limits.ARTIFACT_HINT_MAX)
                ),
            )
            for i in range(limits.ARTIFACTS_MAX)
        ),
        notes=rendered(_text(limits.NOTES_MAX)),
        published_at_ms=MAX_JSON_INT - 1,
        revoked_at_ms=MAX_JSON_INT,
        revoke_reason=_text(limits.REASON_MAX, GOTHIC),
        **overrides,
    )


def release_minimal(**overrides: Any) -> Release:
    return release(
        version="0",
        refs=ReleaseRefs(),
        compat=Compat(),
        artifacts=(),
        notes=rendered(""),
        revoked_at_ms=None,
        revoke_reason=None,
        **overrides,
    )


# --------------------------------------------------------------------------- installs


def intent(**overrides: Any) -> InstallIntent:
    created = overrides.get("created_at_ms", T0)
    value = InstallIntent(
        install_intent_id=new_id("ii"),
        buyer_user_id=new_id("usr"),
        listing_id=new_id("lst"),
        release_id=new_id("rel"),
        target_system=InstallTargetSystem.WHS,
        target_context=TargetContext(telespace_id="ts-1"),
        status=InstallIntentStatus.CREATED,
        expires_at_ms=created + limits.INTENT_TTL_MS,
        created_at_ms=created,
        updated_at_ms=created,
    )
    return attrs.evolve(value, **overrides)


def intent_at_limits(**overrides: Any) -> InstallIntent:
    return intent(
        target_system=InstallTargetSystem.AGENTELIC,
        target_context=TargetContext(
            telespace_id=_text(limits.TARGET_CONTEXT_MAX),
            room_id=_text(limits.TARGET_CONTEXT_MAX, GOTHIC),
            org_id=_text(limits.TARGET_CONTEXT_MAX, MATH_A),
        ),
        status=InstallIntentStatus.TOKEN_ISSUED,
        expires_at_ms=MAX_JSON_INT,
        created_at_ms=MAX_JSON_INT - 2,
        updated_at_ms=MAX_JSON_INT - 1,
        **overrides,
    )


def intent_minimal(**overrides: Any) -> InstallIntent:
    return intent(target_context=TargetContext(), **overrides)


def token(**overrides: Any) -> InstallToken:
    token_id = overrides.pop("token_id", None) or new_id("itk")
    issued = overrides.get("issued_at_ms", T0)
    value = InstallToken(
        token_id=token_id,
        install_intent_id=new_id("ii"),
        buyer_user_id=new_id("usr"),
        target_system=InstallTargetSystem.WHS,
        token_hash=hashlib.sha256(token_id.encode()).hexdigest(),
        status=InstallTokenStatus.ISSUED,
        issued_at_ms=issued,
        expires_at_ms=issued + limits.TOKEN_TTL_DEFAULT_MS,
    )
    return attrs.evolve(value, **overrides)


def token_redeemed(**overrides: Any) -> InstallToken:
    return token(
        status=InstallTokenStatus.REDEEMED,
        redeemed_at_ms=T0 + 1,
        redeemed_by_system=_text(limits.TARGET_CONTEXT_MAX),
        **overrides,
    )


# --------------------------------------------------------------------------- credentials


def api_token(**overrides: Any) -> ApiToken:
    token_id = overrides.pop("token_id", None) or new_id("pat")
    created = overrides.get("created_at_ms", T0)
    value = ApiToken(
        token_id=token_id,
        user_id=new_id("usr"),
        name="ci deploys",
        token_hash=hashlib.sha256(token_id.encode()).hexdigest(),
        created_at_ms=created,
        expires_at_ms=created + 30 * limits.DAY_MS,
    )
    return attrs.evolve(value, **overrides)


def api_token_at_limits(**overrides: Any) -> ApiToken:
    return api_token(
        name=_text(limits.API_TOKEN_NAME_MAX, GOTHIC),
        created_at_ms=MAX_JSON_INT - 2,
        expires_at_ms=MAX_JSON_INT,
        revoked_at_ms=MAX_JSON_INT - 1,
        **overrides,
    )


def api_token_minimal(**overrides: Any) -> ApiToken:
    return api_token(name="x", expires_at_ms=None, revoked_at_ms=None, **overrides)


# --------------------------------------------------------------------------- idempotency


def idempotency_record(**overrides: Any) -> IdempotencyRecord:
    created = overrides.get("created_at_ms", T0)
    value = IdempotencyRecord(
        scope_user_id=new_id("usr"),
        endpoint="POST /v1/publisher/listings",
        key=new_id("key"),
        request_hash=hashlib.sha256(b"request").hexdigest(),
        claim_id=new_id("idm"),
        created_at_ms=created,
        expires_at_ms=created + limits.IDEMPOTENCY_RETENTION_MS,
        lease_until_ms=created + limits.IDEMPOTENCY_LEASE_MS,
    )
    return attrs.evolve(value, **overrides)


def idempotency_record_at_limits(**overrides: Any) -> IdempotencyRecord:
    printable = "".join(chr(c) for c in range(0x20, 0x7F))  # space .. tilde
    key = (printable * 3)[: limits.IDEMPOTENCY_KEY_MAX]
    response = '{"name":"' + _text(50_000) + '","n":9007199254740991}'
    return idempotency_record(key=key, response_json=response, **overrides)


# --------------------------------------------------------------------------- audit


def audit_event(**overrides: Any) -> AuditEvent:
    value = AuditEvent(
        event_id=new_id("evt"),
        type="listing.created",
        actor=Actor(type=ActorType.USER, user_id=new_id("usr")),
        created_at_ms=T0,
        summary="Listing created.",
        details={"name": "Support Triage Agent"},
        publisher_user_id=None,
        listing_id=None,
        release_id=None,
        install_intent_id=None,
        request_id="req-1",
    )
    return attrs.evolve(value, **overrides)


def audit_event_at_limits(**overrides: Any) -> AuditEvent:
    details: dict[str, str | int | bool | None] = {
        "text": _text(200),
        "gothic": _text(200, GOTHIC),
        "maxInt": MAX_JSON_INT,
        "minInt": -MAX_JSON_INT,
        "zero": 0,
        "one": 1,
        "yes": True,
        "no": False,
        "nothing": None,
        "empty": "",
    }
    details.update({f"k{i}": i for i in range(16 - len(details))})
    return audit_event(
        type="install_token.redeemed",
        actor=Actor(type=ActorType.SYSTEM, system="retention"),
        summary=_text(limits.AUDIT_SUMMARY_MAX),
        details=details,
        publisher_user_id=new_id("usr"),
        listing_id=new_id("lst"),
        release_id=new_id("rel"),
        install_intent_id=new_id("ii"),
        request_id=_text(64, MATH_A),
        **overrides,
    )


def audit_event_minimal(**overrides: Any) -> AuditEvent:
    return audit_event(summary="", details={}, request_id=None, **overrides)


# --------------------------------------------------------------------------- families


@attrs.frozen
class Family:
    """A publisher with a listing and its release, and a buyer with an intent and a token."""

    publisher: User
    buyer: User
    listing: Listing
    release: Release
    intent: InstallIntent
    token: InstallToken

    def __iter__(self) -> Iterator[Any]:
        """Parents first, so the family can be stored in this order."""
        return iter(
            (self.publisher, self.buyer, self.listing, self.release, self.intent, self.token)
        )


def family(**listing_overrides: Any) -> Family:
    """A consistent set of entities whose references all point inside the set."""
    publisher = user(roles=frozenset({Role.PUBLISHER}))
    buyer = user()
    the_listing = listing(
        publisher_user_id=publisher.user_id,
        **{"status": ListingStatus.PUBLISHED, **listing_overrides},
    )
    the_release = release(listing_id=the_listing.listing_id, publisher_user_id=publisher.user_id)
    the_intent = intent(
        buyer_user_id=buyer.user_id,
        listing_id=the_listing.listing_id,
        release_id=the_release.release_id,
    )
    the_token = token(
        install_intent_id=the_intent.install_intent_id,
        buyer_user_id=buyer.user_id,
        target_system=the_intent.target_system,
    )
    return Family(publisher, buyer, the_listing, the_release, the_intent, the_token)

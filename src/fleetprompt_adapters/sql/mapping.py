"""Rows ↔ entities: explicit, typed and total.

Each ``*_row`` function turns an entity into the column values of its table;
each ``to_*`` function turns a fetched row back into the entity, with the
exact Python types the core uses (enum members, tuples, frozensets).
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import RowMapping

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
from fleetprompt_core.domain.accounts import Account, BrowserSession
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
    RenderedMarkdown,
    TargetContext,
    User,
    Verification,
)
from fleetprompt_core.domain.search import FIELD_WEIGHTS, name_key, tokenize
from fleetprompt_core.policies import markdown

__all__ = [
    "account_row",
    "api_token_row",
    "audit_row",
    "idempotency_row",
    "intent_row",
    "label_rows",
    "listing_row",
    "profile_row",
    "release_row",
    "session_row",
    "term_rows",
    "to_api_token",
    "to_audit_event",
    "to_idempotency",
    "to_intent",
    "to_listing",
    "to_profile",
    "to_release",
    "to_token",
    "to_user",
    "token_row",
    "user_row",
]

Row = RowMapping | Mapping[str, Any]


def _markdown(row: Row, prefix: str) -> RenderedMarkdown:
    """Stored markdown; HTML written by an older renderer is rendered again on load."""
    return markdown.current(
        RenderedMarkdown(
            row[f"{prefix}_markdown"], row[f"{prefix}_html"], row[f"{prefix}_renderer"]
        )
    )


def _markdown_columns(value: RenderedMarkdown, prefix: str) -> dict[str, str]:
    return {
        f"{prefix}_markdown": value.markdown,
        f"{prefix}_html": value.html,
        f"{prefix}_renderer": value.renderer,
    }


# --------------------------------------------------------------------------- users


def user_row(user: User) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "external_id": user.external_id,
        "display_name": user.display_name,
        "email": user.email,
        "roles": sorted(role.value for role in user.roles),
        "created_at_ms": user.created_at_ms,
        "updated_at_ms": user.updated_at_ms,
    }


def to_user(row: Row) -> User:
    return User(
        user_id=row["user_id"],
        external_id=row["external_id"],
        display_name=row["display_name"],
        email=row["email"],
        roles=frozenset(Role(role) for role in row["roles"]),
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
    )


def profile_row(profile: PublisherProfile) -> dict[str, Any]:
    return {
        "publisher_id": profile.publisher_id,
        "display_name": profile.display_name,
        **_markdown_columns(profile.bio, "bio"),
        "verification_status": profile.verification.status,
        "verification_checked_at_ms": profile.verification.checked_at_ms,
        "verification_reason": profile.verification.reason,
        "created_at_ms": profile.created_at_ms,
        "updated_at_ms": profile.updated_at_ms,
    }


def to_profile(row: Row) -> PublisherProfile:
    return PublisherProfile(
        publisher_id=row["publisher_id"],
        display_name=row["display_name"],
        bio=_markdown(row, "bio"),
        verification=Verification(
            status=VerificationStatus(row["verification_status"]),
            checked_at_ms=row["verification_checked_at_ms"],
            reason=row["verification_reason"],
        ),
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
    )


# --------------------------------------------------------------------------- listings


def listing_row(listing: Listing) -> dict[str, Any]:
    return {
        "listing_id": listing.listing_id,
        "publisher_user_id": listing.publisher_user_id,
        "asset_kind": listing.asset_kind,
        "status": listing.status,
        "name": listing.name,
        "name_key": name_key(listing.name),
        "summary": listing.summary,
        **_markdown_columns(listing.description, "description"),
        "tags": list(listing.tags),
        "categories": list(listing.categories),
        "images": [{"url": image.url, "alt": image.alt} for image in listing.images],
        "docs_url": listing.links.docs_url,
        "repo_url": listing.links.repo_url,
        "moderation_flagged": listing.moderation.flagged,
        "moderation_reason": listing.moderation.reason,
        "created_at_ms": listing.created_at_ms,
        "updated_at_ms": listing.updated_at_ms,
    }


def to_listing(row: Row) -> Listing:
    return Listing(
        listing_id=row["listing_id"],
        publisher_user_id=row["publisher_user_id"],
        asset_kind=AssetKind(row["asset_kind"]),
        status=ListingStatus(row["status"]),
        name=row["name"],
        summary=row["summary"],
        description=_markdown(row, "description"),
        tags=tuple(row["tags"]),
        categories=tuple(row["categories"]),
        images=tuple(Image(url=image["url"], alt=image["alt"]) for image in row["images"]),
        links=Links(docs_url=row["docs_url"], repo_url=row["repo_url"]),
        moderation=Moderation(
            flagged=bool(row["moderation_flagged"]), reason=row["moderation_reason"]
        ),
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
    )


def label_rows(listing: Listing, kinds: tuple[str, str]) -> list[dict[str, Any]]:
    """Rows of ``listing_labels`` for a published listing: ``kinds`` = (tag, category) names."""
    tag_kind, category_kind = kinds
    common = {
        "listing_id": listing.listing_id,
        "asset_kind": listing.asset_kind,
        "updated_at_ms": listing.updated_at_ms,
        "created_at_ms": listing.created_at_ms,
        "name_key": name_key(listing.name),
    }
    labels = {(tag_kind, tag) for tag in listing.tags}
    labels |= {(category_kind, category) for category in listing.categories}
    return [{"kind": kind, "value": value, **common} for kind, value in sorted(labels)]


def term_rows(listing: Listing) -> list[dict[str, Any]]:
    """Rows of ``listing_terms``: each distinct token with the fields it occurs in."""
    fields: dict[str, Iterable[str]] = {
        "name": tokenize(listing.name),
        "labels": (t for label in (*listing.tags, *listing.categories) for t in tokenize(label)),
        "summary": tokenize(listing.summary),
    }
    assert set(fields) == set(FIELD_WEIGHTS), "the index must cover every weighted field"
    flags: dict[str, dict[str, int]] = {}
    for field, tokens in fields.items():
        for token in tokens:
            flags.setdefault(token, {"in_name": 0, "in_labels": 0, "in_summary": 0})[
                f"in_{field}"
            ] = 1
    return [
        {
            "token": token,
            "listing_id": listing.listing_id,
            "updated_at_ms": listing.updated_at_ms,
            **columns,
        }
        for token, columns in flags.items()
    ]


# --------------------------------------------------------------------------- releases


def release_row(release: Release) -> dict[str, Any]:
    return {
        "release_id": release.release_id,
        "listing_id": release.listing_id,
        "publisher_user_id": release.publisher_user_id,
        "version": release.version,
        "status": release.status,
        "whs_agent_id": release.refs.whs_agent_id,
        "whs_deployment_id": release.refs.whs_deployment_id,
        "agentromatic_workflow_id": release.refs.agentromatic_workflow_id,
        "spec_asset_id": release.refs.spec_asset_id,
        "min_whs_version": release.compat.min_whs_version,
        "min_agentromatic_version": release.compat.min_agentromatic_version,
        "min_agentelic_version": release.compat.min_agentelic_version,
        "artifacts": [
            {
                "kind": artifact.kind.value,
                "sha256": artifact.sha256,
                "size_bytes": artifact.size_bytes,
                "mode": artifact.download.mode.value,
                "hint": artifact.download.hint,
            }
            for artifact in release.artifacts
        ],
        **_markdown_columns(release.notes, "notes"),
        "published_at_ms": release.published_at_ms,
        "revoked_at_ms": release.revoked_at_ms,
        "revoke_reason": release.revoke_reason,
    }


def to_release(row: Row) -> Release:
    return Release(
        release_id=row["release_id"],
        listing_id=row["listing_id"],
        publisher_user_id=row["publisher_user_id"],
        version=row["version"],
        status=ReleaseStatus(row["status"]),
        refs=ReleaseRefs(
            whs_agent_id=row["whs_agent_id"],
            whs_deployment_id=row["whs_deployment_id"],
            agentromatic_workflow_id=row["agentromatic_workflow_id"],
            spec_asset_id=row["spec_asset_id"],
        ),
        compat=Compat(
            min_whs_version=row["min_whs_version"],
            min_agentromatic_version=row["min_agentromatic_version"],
            min_agentelic_version=row["min_agentelic_version"],
        ),
        artifacts=tuple(
            Artifact(
                kind=ArtifactKind(item["kind"]),
                sha256=item["sha256"],
                size_bytes=item["size_bytes"],
                download=ArtifactDownload(
                    mode=ArtifactDownloadMode(item["mode"]), hint=item["hint"]
                ),
            )
            for item in row["artifacts"]
        ),
        notes=_markdown(row, "notes"),
        published_at_ms=row["published_at_ms"],
        revoked_at_ms=row["revoked_at_ms"],
        revoke_reason=row["revoke_reason"],
    )


# --------------------------------------------------------------------------- installs


def intent_row(intent: InstallIntent) -> dict[str, Any]:
    return {
        "install_intent_id": intent.install_intent_id,
        "buyer_user_id": intent.buyer_user_id,
        "listing_id": intent.listing_id,
        "release_id": intent.release_id,
        "target_system": intent.target_system,
        "telespace_id": intent.target_context.telespace_id,
        "room_id": intent.target_context.room_id,
        "org_id": intent.target_context.org_id,
        "status": intent.status,
        "expires_at_ms": intent.expires_at_ms,
        "created_at_ms": intent.created_at_ms,
        "updated_at_ms": intent.updated_at_ms,
    }


def to_intent(row: Row) -> InstallIntent:
    return InstallIntent(
        install_intent_id=row["install_intent_id"],
        buyer_user_id=row["buyer_user_id"],
        listing_id=row["listing_id"],
        release_id=row["release_id"],
        target_system=InstallTargetSystem(row["target_system"]),
        target_context=TargetContext(
            telespace_id=row["telespace_id"], room_id=row["room_id"], org_id=row["org_id"]
        ),
        status=InstallIntentStatus(row["status"]),
        expires_at_ms=row["expires_at_ms"],
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
    )


def token_row(token: InstallToken) -> dict[str, Any]:
    return {
        "token_id": token.token_id,
        "install_intent_id": token.install_intent_id,
        "buyer_user_id": token.buyer_user_id,
        "target_system": token.target_system,
        "token_hash": token.token_hash,
        "status": token.status,
        "issued_at_ms": token.issued_at_ms,
        "expires_at_ms": token.expires_at_ms,
        "redeemed_at_ms": token.redeemed_at_ms,
        "redeemed_by_system": token.redeemed_by_system,
    }


def to_token(row: Row) -> InstallToken:
    return InstallToken(
        token_id=row["token_id"],
        install_intent_id=row["install_intent_id"],
        buyer_user_id=row["buyer_user_id"],
        target_system=InstallTargetSystem(row["target_system"]),
        token_hash=row["token_hash"],
        status=InstallTokenStatus(row["status"]),
        issued_at_ms=row["issued_at_ms"],
        expires_at_ms=row["expires_at_ms"],
        redeemed_at_ms=row["redeemed_at_ms"],
        redeemed_by_system=row["redeemed_by_system"],
    )


# --------------------------------------------------------------------------- credentials


def api_token_row(token: ApiToken) -> dict[str, Any]:
    return {
        "token_id": token.token_id,
        "user_id": token.user_id,
        "name": token.name,
        "token_hash": token.token_hash,
        "created_at_ms": token.created_at_ms,
        "expires_at_ms": token.expires_at_ms,
        "revoked_at_ms": token.revoked_at_ms,
    }


def to_api_token(row: Row) -> ApiToken:
    return ApiToken(
        token_id=row["token_id"],
        user_id=row["user_id"],
        name=row["name"],
        token_hash=row["token_hash"],
        created_at_ms=row["created_at_ms"],
        expires_at_ms=row["expires_at_ms"],
        revoked_at_ms=row["revoked_at_ms"],
    )


# --------------------------------------------------------------------------- accounts, sessions


def account_row(account: Account) -> dict[str, Any]:
    return {
        "user_id": account.user_id,
        "username": account.username,
        "email": account.email,
        "password_hash": account.password_hash,
        "password_changed_at_ms": account.password_changed_at_ms,
        "created_at_ms": account.created_at_ms,
        "updated_at_ms": account.updated_at_ms,
    }


def to_account(row: Row) -> Account:
    return Account(
        user_id=row["user_id"],
        username=row["username"],
        email=row["email"],
        password_hash=row["password_hash"],
        password_changed_at_ms=row["password_changed_at_ms"],
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
    )


def session_row(session: BrowserSession) -> dict[str, Any]:
    return {
        "session_hash": session.session_hash,
        "user_id": session.user_id,
        "created_at_ms": session.created_at_ms,
        "last_seen_at_ms": session.last_seen_at_ms,
        "expires_at_ms": session.expires_at_ms,
    }


def to_session(row: Row) -> BrowserSession:
    return BrowserSession(
        session_hash=row["session_hash"],
        user_id=row["user_id"],
        created_at_ms=row["created_at_ms"],
        last_seen_at_ms=row["last_seen_at_ms"],
        expires_at_ms=row["expires_at_ms"],
    )


# --------------------------------------------------------------------------- idempotency, audit


def idempotency_row(record: IdempotencyRecord) -> dict[str, Any]:
    return {
        "scope_user_id": record.scope_user_id,
        "endpoint": record.endpoint,
        "key": record.key,
        "request_hash": record.request_hash,
        "claim_id": record.claim_id,
        "created_at_ms": record.created_at_ms,
        "expires_at_ms": record.expires_at_ms,
        "lease_until_ms": record.lease_until_ms,
        "response_json": record.response_json,
    }


def to_idempotency(row: Row) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope_user_id=row["scope_user_id"],
        endpoint=row["endpoint"],
        key=row["key"],
        request_hash=row["request_hash"],
        claim_id=row["claim_id"],
        created_at_ms=row["created_at_ms"],
        expires_at_ms=row["expires_at_ms"],
        lease_until_ms=row["lease_until_ms"],
        response_json=row["response_json"],
    )


def audit_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "type": event.type,
        "actor_type": event.actor.type,
        "actor_user_id": event.actor.user_id,
        "actor_system": event.actor.system,
        "created_at_ms": event.created_at_ms,
        "summary": event.summary,
        "details": dict(event.details),
        "publisher_user_id": event.publisher_user_id,
        "listing_id": event.listing_id,
        "release_id": event.release_id,
        "install_intent_id": event.install_intent_id,
        "request_id": event.request_id,
    }


def to_audit_event(row: Row) -> AuditEvent:
    return AuditEvent(
        event_id=row["event_id"],
        type=row["type"],
        actor=Actor(
            type=ActorType(row["actor_type"]),
            user_id=row["actor_user_id"],
            system=row["actor_system"],
        ),
        created_at_ms=row["created_at_ms"],
        summary=row["summary"],
        details=types.MappingProxyType(dict(row["details"])),
        publisher_user_id=row["publisher_user_id"],
        listing_id=row["listing_id"],
        release_id=row["release_id"],
        install_intent_id=row["install_intent_id"],
        request_id=row["request_id"],
    )

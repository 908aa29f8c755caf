"""Test vocabulary shared by the suites: a small marketplace builder."""

from __future__ import annotations

import itertools
from typing import Any

from fleetprompt_adapters.memory import ManualClock, MemoryStore, bootstrap
from fleetprompt_core import Call, CoreSettings, FleetPrompt, Role, Runtime
from fleetprompt_core.base import limits
from fleetprompt_core.domain.model import IdempotencyRecord, InstallIntent, Release
from fleetprompt_core.services.views import IssuedToken, ListingView

IMAGE_HOST = "images.example.com"
CURSOR_KEY = b"k" * 32

_keys = itertools.count(1)


def new_key() -> str:
    """A fresh idempotency key."""
    return f"key-{next(_keys)}"


def listing_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "assetKind": "whs_agent",
        "name": "Support Triage Agent",
        "summary": "Routes support tickets to the right queue.",
        "description": {"format": "markdown", "markdown": "# Triage\n\nIt **routes** tickets."},
        "tags": ["support", "triage"],
        "categories": ["operations"],
        "images": [{"url": f"https://{IMAGE_HOST}/shot.png", "alt": "screenshot"}],
        "links": {"docsUrl": "https://docs.example.com/triage"},
    }
    payload.update(overrides)
    return payload


def release_payload(version: str = "1.0.0", **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "version": version,
        "refs": {"whsAgentId": "agent-123", "whsDeploymentId": "dep-9"},
        "compat": {"minWHSVersion": "2.1.0"},
        "artifacts": [
            {
                "kind": "manifest",
                "sha256": "a" * 64,
                "sizeBytes": 1024,
                "download": {"mode": "none"},
            }
        ],
        "notes": {"markdown": "First release."},
    }
    payload.update(overrides)
    return payload


class Market:
    """A FleetPrompt over a fresh in-memory store, with helpers to populate it."""

    def __init__(self, fp: FleetPrompt, clock: ManualClock, store: MemoryStore) -> None:
        self.fp = fp
        self.clock = clock
        self.store = store

    @classmethod
    def create(cls, **bootstrap_args: Any) -> Market:
        clock = bootstrap_args.pop("clock", None) or ManualClock()
        store = bootstrap_args.pop("store", None) or MemoryStore()
        settings = bootstrap_args.pop("settings", None) or CoreSettings(
            image_hosts=frozenset({IMAGE_HOST})
        )
        fp = bootstrap(
            store=store, clock=clock, settings=settings, cursor_key=CURSOR_KEY, **bootstrap_args
        )
        return cls(fp, clock, store)

    # -- people -------------------------------------------------------------------------

    def user(self, name: str) -> Call:
        self.fp.operator.ensure_user(name, display_name=name.title())
        return Call.as_user(name, request_id=f"req-{name}")

    def publisher(self, name: str = "pub-a") -> Call:
        self.fp.operator.ensure_user(name, display_name=name.title(), roles=[Role.PUBLISHER])
        return Call.as_user(name, request_id=f"req-{name}")

    def admin(self, name: str = "admin") -> Call:
        self.fp.operator.ensure_user(name, display_name=name.title(), roles=[Role.ADMIN])
        return Call.as_user(name, request_id=f"req-{name}")

    # -- catalogue ----------------------------------------------------------------------

    def draft(self, publisher: Call, **overrides: Any) -> ListingView:
        return self.fp.publishing.create_listing(
            publisher, listing_payload(**overrides), idempotency_key=new_key()
        ).value

    def release(
        self, publisher: Call, listing_id: str, version: str = "1.0.0", **overrides: Any
    ) -> Release:
        return self.fp.publishing.publish_release(
            publisher, listing_id, release_payload(version, **overrides), idempotency_key=new_key()
        ).value

    def published(
        self, publisher: Call, version: str = "1.0.0", **overrides: Any
    ) -> tuple[ListingView, Release]:
        """A published whs_agent listing with one published release."""
        view = self.draft(publisher, **overrides)
        listing_id = view.listing.listing_id
        release = self.release(publisher, listing_id, version)
        view = self.fp.publishing.change_status(
            publisher, listing_id, {"status": "published"}, idempotency_key=new_key()
        ).value
        return view, release

    # -- installs -----------------------------------------------------------------------

    def intent(
        self, buyer: Call, listing_id: str, target: str = "whs", **extra: Any
    ) -> InstallIntent:
        payload = {"listingId": listing_id, "targetSystem": target, **extra}
        return self.fp.installs.create_intent(buyer, payload, idempotency_key=new_key()).value

    def token(self, buyer: Call, intent_id: str, ttl_ms: int | None = None) -> IssuedToken:
        payload = None if ttl_ms is None else {"ttlMs": ttl_ms}
        return self.fp.installs.issue_token(
            buyer, intent_id, payload, idempotency_key=new_key()
        ).value

    def redeem(self, token: str, target: str = "whs", source: str = "whs") -> Any:
        return self.fp.redemption.redeem(source, {"installToken": token, "targetSystem": target})

    def audit_types(self) -> list[str]:
        return [event.type for event in self.store.audit]


def store_open_claim(
    rt: Runtime, scope_user_id: str, endpoint: str, key: str, digest: str
) -> IdempotencyRecord:
    """Store an unanswered idempotency claim, as the previous design (ADR 0007) left one
    when its holder died between the claim and the work (ADR 0037 never commits one)."""
    now = rt.clock.now_ms()
    claim = IdempotencyRecord(
        scope_user_id=scope_user_id,
        endpoint=endpoint,
        key=key,
        request_hash=digest,
        claim_id=rt.ids.new_id("idm"),
        created_at_ms=now,
        expires_at_ms=now + limits.IDEMPOTENCY_RETENTION_MS,
        lease_until_ms=now + rt.settings.idempotency_lease_ms,
    )
    with rt.uow() as uow:
        uow.idempotency.add(claim)
        uow.commit()
    return claim

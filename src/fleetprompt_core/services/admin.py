"""Admin use cases (A1–A4): moderation, roles, verification, the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import attrs

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import Role
from fleetprompt_core.base.errors import Conflict, NotFound
from fleetprompt_core.commands.parsers import (
    parse_reason,
    parse_role_change,
    parse_verification,
)
from fleetprompt_core.commands.payloads import (
    ReasonPayload,
    RoleChangePayload,
    SuspendPayload,
    Untrusted,
    VerificationPayload,
)
from fleetprompt_core.domain.model import (
    AuditEvent,
    AuditValue,
    PublisherProfile,
    User,
    Verification,
)
from fleetprompt_core.policies.pagination import Page
from fleetprompt_core.ports import AuditQuery, UnitOfWork
from fleetprompt_core.services import _audit as audit
from fleetprompt_core.services import _authz as authz
from fleetprompt_core.services import _idempotency as idempotency
from fleetprompt_core.services._idempotency import Operation
from fleetprompt_core.services._paging import page_request, paginate
from fleetprompt_core.services._roles import change_roles
from fleetprompt_core.services.installs import revoke_listing_tokens
from fleetprompt_core.services.profiles import current_profile
from fleetprompt_core.services.runtime import Call, Outcome, Runtime, changed_ok
from fleetprompt_core.services.views import ListingView, listing_views

__all__ = ["Admin"]

_LISTING: Final = idempotency.ResultCodec(ListingView)
_USER: Final = idempotency.ResultCodec(User)
_PROFILE: Final = idempotency.ResultCodec(PublisherProfile)


class Admin:
    """What an admin does (A1–A4): suspend listings, change roles, verify publishers, read the
    audit log; as ``app.admin``.
    """

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def suspend_listing(
        self,
        call: Call,
        listing_id: str,
        payload: SuspendPayload | Untrusted,
        *,
        idempotency_key: str | None,
    ) -> Outcome[ListingView]:
        """A1: suspend any listing (a reason is required)."""
        return self._moderate(
            call, listing_id, payload, idempotency_key, action="suspend", reason_required=True
        )

    def unsuspend_listing(
        self,
        call: Call,
        listing_id: str,
        payload: ReasonPayload | Untrusted = None,
        *,
        idempotency_key: str | None,
    ) -> Outcome[ListingView]:
        """A1: lift a suspension; the listing comes back ``unlisted``."""
        return self._moderate(
            call, listing_id, payload, idempotency_key, action="unsuspend", reason_required=False
        )

    def _moderate(
        self,
        call: Call,
        listing_id: str,
        payload: SuspendPayload | ReasonPayload | Untrusted,
        idempotency_key: str | None,
        *,
        action: Literal["suspend", "unsuspend"],
        reason_required: bool,
    ) -> Outcome[ListingView]:
        admin = authz.require_admin(self._rt, call)

        def operation(uow: UnitOfWork) -> ListingView:
            reason = parse_reason(payload, required=reason_required)
            listing = uow.listings.get(listing_id)
            if listing is None:
                raise NotFound("Listing not found.")
            now = self._rt.clock.now_ms()
            details: dict[str, AuditValue] = {"from": listing.status.value, "reason": reason}
            if action == "suspend":
                assert reason is not None
                moved, summary = listing.suspended(reason, now), "Listing suspended."
            else:
                moved, summary = listing.unsuspended(reason, now), "Listing suspension lifted."
            changed_ok(uow.listings.update(moved, listing))
            if action == "suspend":
                # A token minted before the suspension never redeems (ADR 0025).
                details["revokedTokens"] = revoke_listing_tokens(uow, listing_id, now)
            audit.record(
                self._rt,
                uow,
                call,
                f"listing.{action}ed",
                audit.user_actor(admin),
                summary,
                details=details,
                publisher_user_id=listing.publisher_user_id,
                listing_id=listing_id,
            )
            (view,) = listing_views(uow, [moved], now)
            return view

        return idempotency.run(
            self._rt,
            scope_user_id=admin.user_id,
            scope=Operation.LISTING_SUSPEND if action == "suspend" else Operation.LISTING_UNSUSPEND,
            key=idempotency_key,
            required=True,
            target={"id": listing_id},
            body=payload,
            codec=_LISTING,
            operation=operation,
        )

    def change_roles(
        self,
        call: Call,
        user_id: str,
        payload: RoleChangePayload | Untrusted,
        *,
        idempotency_key: str | None,
    ) -> Outcome[User]:
        """A2: grant or revoke publisher/admin. An admin cannot drop their own admin role."""
        admin = authz.require_admin(self._rt, call)

        def operation(uow: UnitOfWork) -> User:
            change = parse_role_change(payload)
            user = uow.users.get(user_id)
            if user is None:
                raise NotFound("User not found.")
            if user.user_id == admin.user_id and Role.ADMIN in change.revoke:
                raise Conflict(
                    "An admin cannot revoke their own admin role.", hint="ask another admin"
                )
            return change_roles(
                self._rt,
                uow,
                call,
                user,
                grant=change.grant,
                revoke=change.revoke,
                actor=audit.user_actor(admin),
            )

        return idempotency.run(
            self._rt,
            scope_user_id=admin.user_id,
            scope=Operation.ROLES_CHANGE,
            key=idempotency_key,
            required=True,
            target={"userId": user_id},
            body=payload,
            codec=_USER,
            operation=operation,
        )

    def set_verification(
        self,
        call: Call,
        publisher_id: str,
        payload: VerificationPayload | Untrusted,
        *,
        idempotency_key: str | None,
    ) -> Outcome[PublisherProfile]:
        """A3: record a publisher's verification (informational; grants nothing)."""
        admin = authz.require_admin(self._rt, call)

        def operation(uow: UnitOfWork) -> PublisherProfile:
            status, reason = parse_verification(payload)
            user = uow.users.get(publisher_id)
            if user is None or not user.has_role(Role.PUBLISHER):
                raise NotFound("Publisher not found.")
            now = self._rt.clock.now_ms()
            profile = attrs.evolve(
                current_profile(uow, user),
                verification=Verification(status=status, checked_at_ms=now, reason=reason),
                updated_at_ms=now,
            )
            uow.profiles.save(profile)
            audit.record(
                self._rt,
                uow,
                call,
                "publisher.verification_set",
                audit.user_actor(admin),
                f"Publisher verification set to {status.value}.",
                details={"status": status.value},
                publisher_user_id=publisher_id,
            )
            return profile

        return idempotency.run(
            self._rt,
            scope_user_id=admin.user_id,
            scope=Operation.VERIFICATION_SET,
            key=idempotency_key,
            required=True,
            target={"publisherId": publisher_id},
            body=payload,
            codec=_PROFILE,
            operation=operation,
        )

    def read_audit(
        self, call: Call, params: Mapping[str, object] | None = None
    ) -> Page[AuditEvent]:
        """A4: the audit log, newest first, filtered by type, listing or actor."""
        authz.require_admin(self._rt, call)
        request = page_request(params, "type", "listingId", "actorUserId")
        reader = request.reader
        query = AuditQuery(
            type=reader.text("type", max_len=limits.AUDIT_FILTER_MAX, min_len=1),
            listing_id=reader.text("listingId", max_len=limits.AUDIT_FILTER_MAX, min_len=1),
            actor_user_id=reader.text("actorUserId", max_len=limits.AUDIT_FILTER_MAX, min_len=1),
        )
        request.problems.raise_if_any()
        scope = f"audit|{query.type or ''}|{query.listing_id or ''}|{query.actor_user_id or ''}"
        after = request.after(self._rt, scope)
        with self._rt.reader() as uow:
            rows = uow.audit.query(query, after, request.limit + 1)
        return paginate(
            self._rt, scope, rows, request.limit, lambda e: (e.created_at_ms, e.event_id)
        )

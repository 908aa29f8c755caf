"""The buyer's side of an install (I1–I5): intents and single-use tokens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import (
    InstallIntentStatus,
    InstallTargetSystem,
    InstallTokenStatus,
)
from fleetprompt_core.base.errors import (
    Conflict,
    DuplicateError,
    FieldError,
    NotFound,
    ValidationFailed,
)
from fleetprompt_core.commands.parsers import (
    parse_bare,
    parse_new_intent,
    parse_token_request,
)
from fleetprompt_core.commands.payloads import (
    CancelIntentPayload,
    NewIntentPayload,
    TokenPayload,
    Untrusted,
)
from fleetprompt_core.domain.model import (
    InstallIntent,
    InstallToken,
    Listing,
    accepted_targets,
    install_blocker,
)
from fleetprompt_core.policies.pagination import Page
from fleetprompt_core.policies.tokens import INSTALL_TOKEN_PREFIX
from fleetprompt_core.ports import UniqueConstraint, UnitOfWork
from fleetprompt_core.services import _audit as audit
from fleetprompt_core.services import _authz as authz
from fleetprompt_core.services import _idempotency as idempotency
from fleetprompt_core.services import throttle
from fleetprompt_core.services._idempotency import Operation
from fleetprompt_core.services._paging import page_request, paginate
from fleetprompt_core.services.catalog import latest_release
from fleetprompt_core.services.runtime import Call, Outcome, Runtime, changed_ok
from fleetprompt_core.services.views import IssuedToken

__all__ = ["Installs", "revoke_issued_tokens", "revoke_listing_tokens"]

_INTENT: Final = idempotency.ResultCodec(InstallIntent)
_TOKEN: Final = idempotency.ResultCodec(
    IssuedToken, strip=lambda issued: attrs.evolve(issued, install_token=None)
)


def revoke_issued_tokens(uow: UnitOfWork, install_intent_id: str, now_ms: int) -> int:
    """Revoke every still-issued token of an intent; returns how many."""
    return _revoke(uow, uow.tokens.list_issued_for_intent(install_intent_id), now_ms)


def revoke_listing_tokens(uow: UnitOfWork, listing_id: str, now_ms: int) -> int:
    """Revoke every still-issued token of every intent of a listing; returns how many.

    Used when a listing stops being installable (suspended, or back to draft):
    a token minted before never redeems, not even after the listing is
    installable again (ADR 0025). Expired tokens are stored as expired.
    """
    return _revoke(uow, uow.tokens.list_issued_for_listing(listing_id), now_ms)


def _revoke(uow: UnitOfWork, tokens: Sequence[InstallToken], now_ms: int) -> int:
    count = 0
    for token in tokens:
        observed = token.observed(now_ms)
        if observed.status is InstallTokenStatus.ISSUED:
            changed_ok(uow.tokens.update(observed.revoked(now_ms), token.status))
            count += 1
        elif observed != token:
            changed_ok(uow.tokens.update(observed, token.status))
    return count


def _require_accepted_target(listing: Listing, target_system: InstallTargetSystem) -> None:
    """``VALIDATION_FAILED`` on ``targetSystem`` when it does not install the listing's kind."""
    accepted = accepted_targets(listing.asset_kind)
    if target_system not in accepted:
        names = ", ".join(target.value for target in accepted)
        raise ValidationFailed(
            [
                FieldError(
                    "targetSystem",
                    f"a {listing.asset_kind.value} listing installs into: {names}",
                )
            ]
        )


class Installs:
    """What a buyer does (I1–I5): create install intents, issue their single-use tokens, list and
    cancel them; as ``app.installs``.
    """

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def create_intent(
        self, call: Call, payload: NewIntentPayload | Untrusted, *, idempotency_key: str | None
    ) -> Outcome[InstallIntent]:
        """I1: an intent to install a published release of a published listing."""
        user = authz.signed_in(self._rt, call)
        throttle.check_call(self._rt, throttle.Action.INTENT_CREATE, call)

        def operation(uow: UnitOfWork) -> InstallIntent:
            request = parse_new_intent(payload)
            listing = authz.public_listing(uow, request.listing_id)
            _require_accepted_target(listing, request.target_system)
            if request.release_id is None:
                release = latest_release(uow, listing.listing_id)
                if release is None:
                    raise Conflict(
                        "This listing has no installable release.", hint="no published release"
                    )
            else:
                found = uow.releases.get(request.release_id)
                if found is None or found.listing_id != listing.listing_id:
                    raise NotFound("Release not found.")
                release = found
            if (blocker := install_blocker(listing, release)) is not None:
                raise Conflict("This release cannot be installed now.", hint=blocker)
            now = self._rt.clock.now_ms()
            intent = InstallIntent(
                install_intent_id=self._rt.ids.new_id("ii"),
                buyer_user_id=user.user_id,
                listing_id=listing.listing_id,
                release_id=release.release_id,
                target_system=request.target_system,
                target_context=request.target_context,
                status=InstallIntentStatus.CREATED,
                expires_at_ms=now + limits.INTENT_TTL_MS,
                created_at_ms=now,
                updated_at_ms=now,
            )
            uow.intents.add(intent)
            audit.record(
                self._rt,
                uow,
                call,
                "install_intent.created",
                audit.user_actor(user),
                f"Install intent created for {listing.name} {release.version}.",
                details={"targetSystem": intent.target_system.value},
                publisher_user_id=listing.publisher_user_id,
                listing_id=listing.listing_id,
                release_id=release.release_id,
                install_intent_id=intent.install_intent_id,
            )
            return intent

        return idempotency.run(
            self._rt,
            scope_user_id=user.user_id,
            scope=Operation.INTENT_CREATE,
            key=idempotency_key,
            required=True,
            target={},
            body=payload,
            codec=_INTENT,
            operation=operation,
        )

    def list_intents(
        self, call: Call, params: Mapping[str, object] | None = None
    ) -> Page[InstallIntent]:
        """I2: the caller's own intents, newest first, by observed status."""
        user = authz.signed_in(self._rt, call)
        request = page_request(params, "status")
        status = request.reader.choice("status", InstallIntentStatus)
        request.problems.raise_if_any()
        scope = f"intents|{user.user_id}|{status.value if status else ''}"
        after = request.after(self._rt, scope)
        now = self._rt.clock.now_ms()
        with self._rt.reader() as uow:
            rows = uow.intents.list_for_buyer(user.user_id, status, now, after, request.limit + 1)
        page = paginate(
            self._rt, scope, rows, request.limit, lambda i: (i.created_at_ms, i.install_intent_id)
        )
        return Page(tuple(intent.observed(now) for intent in page.items), page.next_cursor)

    def get_intent(self, call: Call, install_intent_id: str) -> InstallIntent:
        """I3: an own intent (``NOT_FOUND`` for anyone else's)."""
        user = authz.signed_in(self._rt, call)
        with self._rt.reader() as uow:
            intent = authz.own_intent(uow, user, install_intent_id)
        return intent.observed(self._rt.clock.now_ms())

    def issue_token(
        self,
        call: Call,
        install_intent_id: str,
        payload: TokenPayload | Untrusted = None,
        *,
        idempotency_key: str | None,
    ) -> Outcome[IssuedToken]:
        """I4: a new single-use token; every earlier issued token of the intent is revoked.

        The raw token is in this answer only. A replay of the same request
        answers the same metadata with ``install_token`` ``None``.
        """
        user = authz.signed_in(self._rt, call)
        throttle.check_call(self._rt, throttle.Action.TOKEN_ISSUE, call)

        def operation(uow: UnitOfWork) -> IssuedToken:
            ttl_ms = parse_token_request(payload)
            intent = authz.own_intent(uow, user, install_intent_id)
            now = self._rt.clock.now_ms()
            moved = intent.token_issued(now)
            self._require_installable(uow, intent)
            revoked = revoke_issued_tokens(uow, install_intent_id, now)
            raw = self._rt.tokens.new_token(INSTALL_TOKEN_PREFIX)
            token = InstallToken(
                token_id=self._rt.ids.new_id("itk"),
                install_intent_id=install_intent_id,
                buyer_user_id=user.user_id,
                target_system=intent.target_system,
                token_hash=self._rt.hasher.hash(raw),
                status=InstallTokenStatus.ISSUED,
                issued_at_ms=now,
                expires_at_ms=min(now + ttl_ms, intent.expires_at_ms),
            )
            try:
                uow.tokens.add(token)
            except DuplicateError as error:  # pragma: no cover - 256-bit collision
                if error.constraint != UniqueConstraint.TOKEN_HASH:
                    raise
                raise Conflict("Please retry.") from None
            changed_ok(uow.intents.update(moved, intent.status))
            audit.record(
                self._rt,
                uow,
                call,
                "install_token.issued",
                audit.user_actor(user),
                "Install token issued.",
                details={
                    "tokenId": token.token_id,
                    "expiresAtMs": token.expires_at_ms,
                    "revokedTokens": revoked,
                },
                listing_id=intent.listing_id,
                release_id=intent.release_id,
                install_intent_id=install_intent_id,
            )
            return IssuedToken(
                install_intent_id=install_intent_id,
                token_id=token.token_id,
                install_token=raw,
                expires_at_ms=token.expires_at_ms,
                target_system=intent.target_system,
            )

        return idempotency.run(
            self._rt,
            scope_user_id=user.user_id,
            scope=Operation.TOKEN_ISSUE,
            key=idempotency_key,
            required=True,
            target={"id": install_intent_id},
            body=payload,
            codec=_TOKEN,
            operation=operation,
        )

    def _require_installable(self, uow: UnitOfWork, intent: InstallIntent) -> None:
        blocker = install_blocker(
            uow.listings.get(intent.listing_id),
            uow.releases.get(intent.release_id),
            intent.target_system,
        )
        if blocker is not None:
            raise Conflict("This release cannot be installed now.", hint=blocker)

    def cancel_intent(
        self,
        call: Call,
        install_intent_id: str,
        payload: CancelIntentPayload | Untrusted = None,
        *,
        idempotency_key: str | None,
    ) -> Outcome[InstallIntent]:
        """I5: cancel an own open intent and revoke its tokens."""
        user = authz.signed_in(self._rt, call)

        def operation(uow: UnitOfWork) -> InstallIntent:
            parse_bare(payload)
            intent = authz.own_intent(uow, user, install_intent_id)
            now = self._rt.clock.now_ms()
            canceled = intent.canceled(now)
            revoked = revoke_issued_tokens(uow, install_intent_id, now)
            changed_ok(uow.intents.update(canceled, intent.status))
            audit.record(
                self._rt,
                uow,
                call,
                "install_intent.canceled",
                audit.user_actor(user),
                "Install intent canceled.",
                details={"revokedTokens": revoked},
                listing_id=intent.listing_id,
                release_id=intent.release_id,
                install_intent_id=install_intent_id,
            )
            return canceled

        return idempotency.run(
            self._rt,
            scope_user_id=user.user_id,
            scope=Operation.INTENT_CANCEL,
            key=idempotency_key,
            required=True,
            target={"id": install_intent_id},
            body=payload,
            codec=_INTENT,
            operation=operation,
        )

"""Server-to-server redemption of an install token (X1, §7).

Redemption is a handoff: it resolves the intent and the release references,
marks the token and the intent redeemed, writes one audit event, and calls
nothing upstream. Every way a token can fail (unknown, expired, revoked,
already redeemed, wrong target system, release revoked, listing suspended)
answers the same ``NOT_FOUND``; the error's ``reason`` (a
:class:`~fleetprompt_core.policies.signing.RedeemFailure`) tells the server's
log which one.

Reading the request (headers, browser markers) is the transport's job: the
HTTP adapter passes already-read values to :meth:`Redeemer.redeem_signed`.
"""

from __future__ import annotations

import json
from typing import Final

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import InstallTargetSystem, InstallTokenStatus
from fleetprompt_core.base.errors import NotFound, Unavailable
from fleetprompt_core.commands.payloads import RedeemPayload, Untrusted
from fleetprompt_core.domain.model import OPEN_INTENT_STATUSES, install_blocker
from fleetprompt_core.policies.signing import RedeemFailure, RedeemVerifier
from fleetprompt_core.policies.tokens import has_valid_checksum
from fleetprompt_core.policies.validation import Problems, Reader
from fleetprompt_core.ports import UnitOfWork
from fleetprompt_core.services import _audit as audit
from fleetprompt_core.services import _idempotency as idempotency
from fleetprompt_core.services import throttle
from fleetprompt_core.services.runtime import Call, Outcome, Runtime
from fleetprompt_core.services.views import RedeemedListing, RedeemedRelease, Redemption

__all__ = ["Redeemer"]

_TOKEN_MAX: Final = limits.INSTALL_TOKEN_MAX
_REDEMPTION: Final = idempotency.ResultCodec(Redemption)


def _not_found(reason: RedeemFailure) -> NotFound:
    return NotFound("Install token not found.", reason=reason.value)


class Redeemer:
    """Server-to-server redemption of install tokens (X1, §7); as ``app.redemption``."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def verify(
        self,
        verifier: RedeemVerifier,
        *,
        body: bytes,
        source: str | None,
        timestamp: str | None,
        signature: str | None,
        browser_context: bool = False,
        duplicate_header: bool = False,
        client: str | None = None,
    ) -> str:
        """The verified source of a signed request, or one generic ``UNAUTHENTICATED``.

        The values are what the transport read from the request (see
        :meth:`RedeemVerifier.verify`); nothing is parsed from *body*. Failures
        are counted per claimed source (per *client* address when the source is
        not on the allowlist); past the ``auth_failure`` limit the answer is
        ``RATE_LIMITED`` without any check.
        """
        subject = (
            "source:" + source
            if source is not None and source in verifier.allowed_sources
            else "client:" + (client or "unknown")
        )
        return throttle.authenticating(
            self._rt,
            subject,
            lambda: verifier.verify(
                body=body,
                source=source,
                timestamp=timestamp,
                signature=signature,
                now_ms=self._rt.clock.now_ms(),
                browser_context=browser_context,
                duplicate_header=duplicate_header,
            ),
        )

    def redeem_signed(
        self,
        verifier: RedeemVerifier,
        *,
        body: bytes,
        source: str | None,
        timestamp: str | None,
        signature: str | None,
        browser_context: bool = False,
        duplicate_header: bool = False,
        client: str | None = None,
        request_id: str | None = None,
    ) -> Redemption:
        """Verify the HMAC over the exact ``body`` bytes, then parse and redeem.

        Any authentication failure is one generic ``UNAUTHENTICATED`` and
        changes nothing.
        """
        verified_source = self.verify(
            verifier,
            body=body,
            source=source,
            timestamp=timestamp,
            signature=signature,
            browser_context=browser_context,
            duplicate_header=duplicate_header,
            client=client,
        )
        return self.redeem_body(verified_source, body, request_id=request_id).value

    def redeem_body(
        self,
        source: str,
        body: bytes,
        *,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        deadline_ms: int | None = None,
    ) -> Outcome[Redemption]:
        """Parse the JSON *body* of a request already verified for *source*, and redeem
        (see :meth:`redeem_idempotent`)."""
        try:
            payload: object = json.loads(body)
        except (ValueError, RecursionError):
            payload = None
        return self.redeem_idempotent(
            source,
            payload,
            idempotency_key=idempotency_key,
            request_id=request_id,
            deadline_ms=deadline_ms,
        )

    def redeem(
        self,
        source: str,
        payload: RedeemPayload | Untrusted,
        *,
        request_id: str | None = None,
        deadline_ms: int | None = None,
    ) -> Redemption:
        """Redeem for an already authenticated target-system ``source``."""
        return self.redeem_idempotent(
            source, payload, request_id=request_id, deadline_ms=deadline_ms
        ).value

    def redeem_idempotent(
        self,
        source: str,
        payload: RedeemPayload | Untrusted,
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        deadline_ms: int | None = None,
    ) -> Outcome[Redemption]:
        """Redeem for ``source``; with a key, a retry gets the stored answer (X-RED-01).

        A redemption that carries ``idempotency_key`` is stored with its answer
        for :data:`~fleetprompt_core.base.limits.REDEEM_REPLAY_WINDOW_MS`
        under ``(source, key)``: the same source sending the same body with the
        same key within that window gets the same answer again, marked
        replayed, and nothing changes. Every other second redemption of a token
        is ``NOT_FOUND`` (I-INT-06); the same key with another body is
        ``CONFLICT`` (§6). A failed redemption stores nothing.

        ``deadline_ms`` (clock time) bounds the work: a redemption that would
        commit after it rolls back instead and answers ``UNAVAILABLE``, so a
        caller that gave up never has its token burnt behind its back.
        """
        throttle.check(self._rt, throttle.Action.REDEEM, "source:" + source)
        problems = Problems()
        reader = Reader(payload, problems, allowed=("installToken", "targetSystem"))
        raw = reader.text(
            "installToken", max_len=_TOKEN_MAX, min_len=1, required=True, nullable=False
        )
        target = reader.choice("targetSystem", InstallTargetSystem, required=True)
        problems.raise_if_any()
        key = idempotency.check_key(idempotency_key, required=False)
        assert raw is not None
        assert target is not None
        if not has_valid_checksum(raw):
            raise _not_found(RedeemFailure.MALFORMED_TOKEN)
        token_hash = self._rt.hasher.hash(raw)
        call = Call(request_id=request_id)

        def operation(uow: UnitOfWork) -> Redemption:
            return self._redeem_in(uow, source, token_hash, target, call, deadline_ms)

        if key is None:
            with self._rt.uow() as uow:
                redemption = operation(uow)
                uow.commit()
            return Outcome(redemption)
        return idempotency.run(
            self._rt,
            scope_user_id="source:" + source,
            scope=idempotency.Operation.REDEEM,
            key=key,
            required=False,
            target={},
            body=payload,
            codec=_REDEMPTION,
            operation=operation,
            retention_ms=limits.REDEEM_REPLAY_WINDOW_MS,
        )

    def _redeem_in(
        self,
        uow: UnitOfWork,
        source: str,
        token_hash: str,
        target: InstallTargetSystem,
        call: Call,
        deadline_ms: int | None,
    ) -> Redemption:
        """The redemption inside ``uow`` (not committed): one read, then two compare-and-sets
        and the event written together."""
        now = self._rt.clock.now_ms()
        found = uow.tokens.get_for_redemption(token_hash)
        if found is None:
            raise _not_found(RedeemFailure.UNKNOWN_TOKEN)
        token, intent, release, listing = found.token, found.intent, found.release, found.listing
        if not token.is_usable(now):
            raise _not_found(
                RedeemFailure.TOKEN_NOT_ISSUED
                if token.status is not InstallTokenStatus.ISSUED
                else RedeemFailure.TOKEN_EXPIRED
            )
        if token.target_system is not target:
            raise _not_found(RedeemFailure.WRONG_TARGET)
        if intent.observed(now).status not in OPEN_INTENT_STATUSES:
            raise _not_found(RedeemFailure.INTENT_CLOSED)
        if install_blocker(listing, release, target):
            raise _not_found(RedeemFailure.NOT_INSTALLABLE)
        redeemed_intent = intent.redeemed(now)
        event = audit.event(
            self._rt,
            call,
            "install_token.redeemed",
            audit.system_actor(source),
            f"Install token redeemed by {source}.",
            details={"tokenId": token.token_id, "targetSystem": target.value, "source": source},
            publisher_user_id=listing.publisher_user_id,
            listing_id=listing.listing_id,
            release_id=release.release_id,
            install_intent_id=intent.install_intent_id,
        )
        # Both compare-and-sets and the audit row as one write; a lost set rolls back.
        if not uow.tokens.redeem(
            token.redeemed(source, now), token.status, redeemed_intent, intent.status, event
        ):
            raise _not_found(RedeemFailure.LOST_RACE)  # a concurrent redemption won
        if deadline_ms is not None and self._rt.clock.now_ms() > deadline_ms:
            raise Unavailable(
                "The redemption took too long and was not done; retry it.",
                reason=RedeemFailure.DEADLINE_PASSED.value,
            )
        return Redemption(
            install_intent=redeemed_intent,
            listing=RedeemedListing(listing.listing_id, listing.asset_kind, listing.name),
            release=RedeemedRelease(
                release.release_id, release.version, release.refs, release.compat, release.artifacts
            ),
        )

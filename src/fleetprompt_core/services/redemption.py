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

from fleetprompt_core.domain.enums import InstallTargetSystem, InstallTokenStatus
from fleetprompt_core.domain.errors import NotFound
from fleetprompt_core.domain.model import OPEN_INTENT_STATUSES, install_blocker
from fleetprompt_core.policies.signing import RedeemFailure, RedeemVerifier
from fleetprompt_core.policies.tokens import has_valid_checksum
from fleetprompt_core.policies.validation import Problems, Reader
from fleetprompt_core.services import audit, throttle
from fleetprompt_core.services.runtime import Call, Runtime
from fleetprompt_core.services.views import RedeemedListing, RedeemedRelease, Redemption

__all__ = ["Redeemer"]

_TOKEN_MAX: Final = 200


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
        return self.redeem_body(verified_source, body, request_id=request_id)

    def redeem_body(self, source: str, body: bytes, *, request_id: str | None = None) -> Redemption:
        """Parse the JSON *body* of a request already verified for *source*, and redeem."""
        try:
            payload: object = json.loads(body)
        except (ValueError, RecursionError):
            payload = None
        return self.redeem(source, payload, request_id=request_id)

    def redeem(self, source: str, payload: object, *, request_id: str | None = None) -> Redemption:
        """Redeem for an already authenticated target-system ``source``."""
        throttle.check(self._rt, throttle.Action.REDEEM, "source:" + source)
        problems = Problems()
        reader = Reader(payload, problems, allowed=("installToken", "targetSystem"))
        raw = reader.text(
            "installToken", max_len=_TOKEN_MAX, min_len=1, required=True, nullable=False
        )
        target = reader.choice("targetSystem", InstallTargetSystem, required=True)
        problems.raise_if_any()
        assert raw is not None
        assert target is not None
        if not has_valid_checksum(raw):
            raise _not_found(RedeemFailure.MALFORMED_TOKEN)
        now = self._rt.clock.now_ms()
        call = Call(request_id=request_id)
        with self._rt.uow() as uow:
            token = uow.tokens.get_by_hash(self._rt.hasher.hash(raw))
            if token is None:
                raise _not_found(RedeemFailure.UNKNOWN_TOKEN)
            if not token.is_usable(now):
                raise _not_found(
                    RedeemFailure.TOKEN_NOT_ISSUED
                    if token.status is not InstallTokenStatus.ISSUED
                    else RedeemFailure.TOKEN_EXPIRED
                )
            if token.target_system is not target:
                raise _not_found(RedeemFailure.WRONG_TARGET)
            intent = uow.intents.get(token.install_intent_id)
            if intent is None or intent.observed(now).status not in OPEN_INTENT_STATUSES:
                raise _not_found(RedeemFailure.INTENT_CLOSED)
            release = uow.releases.get(intent.release_id)
            listing = uow.listings.get(intent.listing_id)
            if release is None or listing is None or install_blocker(listing, release, target):
                raise _not_found(RedeemFailure.NOT_INSTALLABLE)
            redeemed_intent = intent.redeemed(now)
            if not uow.tokens.update(token.redeemed(source, now), token.status):
                raise _not_found(RedeemFailure.LOST_RACE)  # a concurrent redemption won
            if not uow.intents.update(redeemed_intent, intent.status):
                raise _not_found(RedeemFailure.LOST_RACE)
            audit.record(
                self._rt,
                uow,
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
            uow.commit()
        return Redemption(
            install_intent=redeemed_intent,
            listing=RedeemedListing(listing.listing_id, listing.asset_kind, listing.name),
            release=RedeemedRelease(
                release.release_id, release.version, release.refs, release.compat, release.artifacts
            ),
        )

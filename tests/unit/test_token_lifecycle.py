"""Install token lifecycle through the use cases (U-TOK-01, U-TOK-04, U-TOK-05).

U-TOK-02 (redaction) and U-TOK-03 (stable hash) live in ``test_token_policy.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from fleetprompt_core import Call
from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import InstallIntentStatus, InstallTokenStatus
from fleetprompt_core.base.errors import Conflict, ErrorCode, NotFound, ValidationFailed
from fleetprompt_core.domain.model import InstallIntent, InstallToken
from fleetprompt_core.policies.tokens import hash_token
from fleetprompt_core.services.views import IssuedToken
from support import Market, new_key

MINUTE = 60_000
DEFAULT_TTL = 15 * MINUTE


def buyer_intent(market: Market, target: str = "whs") -> tuple[Call, InstallIntent]:
    pub = market.publisher()
    buyer = market.user("buyer")
    listing_id = market.published(pub)[0].listing.listing_id
    return buyer, market.intent(buyer, listing_id, target)


def stored(market: Market, issued: IssuedToken) -> InstallToken:
    return market.store.tokens[issued.token_id]


def raw(issued: IssuedToken) -> str:
    assert issued.install_token is not None
    return issued.install_token


# --------------------------------------------------------------------------- U-TOK-01


def test_u_tok_01_token_ttl_default_and_bounds(market: Market) -> None:
    """Default TTL is 15 min, a requested TTL is honoured, and it is capped at intent expiry."""
    buyer, intent = buyer_intent(market)
    iid = intent.install_intent_id
    now = market.clock.now_ms()

    default = market.token(buyer, iid)
    assert default.expires_at_ms == now + DEFAULT_TTL
    assert stored(market, default).expires_at_ms == now + DEFAULT_TTL
    assert stored(market, default).issued_at_ms == now

    for ttl in (limits.TOKEN_TTL_MIN_MS, 600_000, limits.TOKEN_TTL_MAX_MS):
        issued = market.token(buyer, iid, ttl_ms=ttl)
        assert issued.expires_at_ms == now + ttl
        assert stored(market, issued).expires_at_ms == now + ttl

    market.clock.set(intent.expires_at_ms - 10 * MINUTE)
    capped = market.token(buyer, iid, ttl_ms=limits.TOKEN_TTL_MAX_MS)
    assert capped.expires_at_ms == intent.expires_at_ms
    assert stored(market, capped).expires_at_ms == intent.expires_at_ms


@pytest.mark.parametrize("ttl", [limits.TOKEN_TTL_MIN_MS - 1, limits.TOKEN_TTL_MAX_MS + 1])
def test_u_tok_01_ttl_outside_bounds_is_rejected(market: Market, ttl: int) -> None:
    """A requested TTL of 59 999 or 3 600 001 ms is VALIDATION_FAILED on ``ttlMs``; no token."""
    buyer, intent = buyer_intent(market)
    with pytest.raises(ValidationFailed) as info:
        market.token(buyer, intent.install_intent_id, ttl_ms=ttl)
    assert [f.field_name for f in info.value.fields] == ["ttlMs"]
    assert market.store.tokens == {}


def test_u_tok_01_token_usable_until_one_ms_before_expiry(market: Market) -> None:
    """A token redeems 1 ms before its expiry and the intent becomes redeemed."""
    buyer, intent = buyer_intent(market)
    issued = market.token(buyer, intent.install_intent_id, ttl_ms=limits.TOKEN_TTL_MIN_MS)
    market.clock.set(issued.expires_at_ms - 1)
    redemption = market.redeem(raw(issued))
    assert redemption.install_intent.status is InstallIntentStatus.REDEEMED
    assert stored(market, issued).status is InstallTokenStatus.REDEEMED
    assert stored(market, issued).redeemed_at_ms == issued.expires_at_ms - 1


def test_u_tok_01_token_not_usable_at_expiry(market: Market) -> None:
    """At exactly its expiry a token is NOT_FOUND, and nothing changes."""
    buyer, intent = buyer_intent(market)
    issued = market.token(buyer, intent.install_intent_id)
    market.clock.set(issued.expires_at_ms)
    audit_before = len(market.store.audit)
    with pytest.raises(NotFound):
        market.redeem(raw(issued))
    assert stored(market, issued).status is InstallTokenStatus.ISSUED
    assert market.store.intents[intent.install_intent_id].status is InstallIntentStatus.TOKEN_ISSUED
    assert len(market.store.audit) == audit_before


def test_u_tok_01_capped_token_dies_with_its_intent(market: Market) -> None:
    """A token capped at the intent's expiry redeems 1 ms before it and is NOT_FOUND at it."""
    buyer, intent = buyer_intent(market)
    market.clock.set(intent.expires_at_ms - 5 * MINUTE)
    late = market.token(buyer, intent.install_intent_id, ttl_ms=limits.TOKEN_TTL_MAX_MS)
    market.clock.set(intent.expires_at_ms)
    with pytest.raises(NotFound):
        market.redeem(raw(late))

    buyer2 = market.user("buyer-2")
    listing_id = intent.listing_id
    other = market.intent(buyer2, listing_id)
    market.clock.set(other.expires_at_ms - 5 * MINUTE)
    token = market.token(buyer2, other.install_intent_id, ttl_ms=limits.TOKEN_TTL_MAX_MS)
    assert token.expires_at_ms == other.expires_at_ms
    market.clock.set(other.expires_at_ms - 1)
    assert market.redeem(raw(token)).install_intent.install_intent_id == other.install_intent_id


def test_u_tok_01_retention_persists_token_expiry(market: Market) -> None:
    """After expiry the retention job stores the token as ``expired``; it stays NOT_FOUND."""
    buyer, intent = buyer_intent(market)
    issued = market.token(buyer, intent.install_intent_id, ttl_ms=limits.TOKEN_TTL_MIN_MS)
    market.clock.set(issued.expires_at_ms)
    report = market.fp.retention.run()
    assert report.tokens_expired == 1
    assert stored(market, issued).status is InstallTokenStatus.EXPIRED
    with pytest.raises(NotFound):
        market.redeem(raw(issued))


def test_u_tok_01_only_the_hash_is_stored(market: Market) -> None:
    """The stored token row holds the SHA-256 of the raw token, never the raw value."""
    buyer, intent = buyer_intent(market)
    issued = market.token(buyer, intent.install_intent_id)
    token = stored(market, issued)
    assert token.token_hash == hash_token(raw(issued))
    assert raw(issued) not in repr(token)
    assert market.store.tokens_by_hash == {token.token_hash: token.token_id}


# --------------------------------------------------------------------------- U-TOK-04


def test_u_tok_04_token_is_single_use(market: Market) -> None:
    """A token redeems once; the second redemption is NOT_FOUND and changes nothing."""
    buyer, intent = buyer_intent(market)
    issued = market.token(buyer, intent.install_intent_id)
    first = market.redeem(raw(issued))
    assert first.install_intent.status is InstallIntentStatus.REDEEMED
    token = stored(market, issued)
    assert (token.status, token.redeemed_by_system) == (InstallTokenStatus.REDEEMED, "whs")
    audit_before = list(market.store.audit)
    intents_before = dict(market.store.intents)
    with pytest.raises(NotFound) as info:
        market.redeem(raw(issued))
    assert info.value.message == "Install token not found."
    assert stored(market, issued) == token
    assert market.store.intents == intents_before
    assert market.store.audit == audit_before
    assert market.audit_types().count("install_token.redeemed") == 1


def test_u_tok_04_redeemed_intent_takes_no_new_token(market: Market) -> None:
    """Once redeemed, the intent is terminal: no new token can be issued for it."""
    buyer, intent = buyer_intent(market)
    market.redeem(raw(market.token(buyer, intent.install_intent_id)))
    with pytest.raises(Conflict) as info:
        market.token(buyer, intent.install_intent_id)
    assert info.value.code is ErrorCode.CONFLICT
    assert len(market.store.tokens) == 1


def test_u_tok_04_token_is_bound_to_the_intent_target_system(market: Market) -> None:
    """A ``whs`` intent's token is NOT_FOUND for ``agentromatic`` and still works for whs."""
    buyer, intent = buyer_intent(market)
    issued = market.token(buyer, intent.install_intent_id)
    assert issued.target_system.value == "whs"
    with pytest.raises(NotFound):
        market.redeem(raw(issued), target="agentromatic", source="agentromatic")
    assert stored(market, issued).status is InstallTokenStatus.ISSUED
    assert market.redeem(raw(issued)).install_intent.status is InstallIntentStatus.REDEEMED


# --------------------------------------------------------------------------- U-TOK-05


def _statuses(market: Market, tokens: list[IssuedToken]) -> list[InstallTokenStatus]:
    return [stored(market, t).status for t in tokens]


def test_u_tok_05_reissue_revokes_earlier_tokens(market: Market) -> None:
    """Issuing again revokes all earlier issued tokens: old ones NOT_FOUND, the newest works."""
    buyer, intent = buyer_intent(market)
    iid = intent.install_intent_id
    tokens = [market.token(buyer, iid) for _ in range(3)]
    assert _statuses(market, tokens) == [
        InstallTokenStatus.REVOKED,
        InstallTokenStatus.REVOKED,
        InstallTokenStatus.ISSUED,
    ]
    assert market.store.intents[iid].status is InstallIntentStatus.TOKEN_ISSUED
    for old in tokens[:2]:
        with pytest.raises(NotFound):
            market.redeem(raw(old))
    assert _statuses(market, tokens)[:2] == [InstallTokenStatus.REVOKED] * 2
    assert market.redeem(raw(tokens[2])).install_intent.status is InstallIntentStatus.REDEEMED
    assert _statuses(market, tokens) == [
        InstallTokenStatus.REVOKED,
        InstallTokenStatus.REVOKED,
        InstallTokenStatus.REDEEMED,
    ]
    details = [e.details for e in market.store.audit if e.type == "install_token.issued"]
    assert [d["revokedTokens"] for d in details] == [0, 1, 1]


def test_u_tok_05_reissue_does_not_touch_other_intents(market: Market) -> None:
    """Re-issuing for one intent leaves the tokens of the buyer's other intent issued."""
    buyer, intent = buyer_intent(market)
    other = market.intent(buyer, intent.listing_id)
    keep = market.token(buyer, other.install_intent_id)
    market.token(buyer, intent.install_intent_id)
    market.token(buyer, intent.install_intent_id)
    assert stored(market, keep).status is InstallTokenStatus.ISSUED
    assert market.redeem(raw(keep)).install_intent.install_intent_id == other.install_intent_id


def test_u_tok_05_cancel_revokes_tokens(market: Market) -> None:
    """Canceling the intent revokes its issued token, which is then NOT_FOUND."""
    buyer, intent = buyer_intent(market)
    issued = market.token(buyer, intent.install_intent_id)
    canceled = market.fp.installs.cancel_intent(
        buyer, intent.install_intent_id, idempotency_key=new_key()
    ).value
    assert canceled.status is InstallIntentStatus.CANCELED
    assert stored(market, issued).status is InstallTokenStatus.REVOKED
    with pytest.raises(NotFound):
        market.redeem(raw(issued))
    event = next(e for e in market.store.audit if e.type == "install_intent.canceled")
    assert event.details["revokedTokens"] == 1


def test_u_tok_05_expired_tokens_are_not_counted_as_revoked(market: Market) -> None:
    """A re-issue after an earlier token expired stores that one as expired, not revoked."""
    buyer, intent = buyer_intent(market)
    first = market.token(buyer, intent.install_intent_id, ttl_ms=limits.TOKEN_TTL_MIN_MS)
    market.clock.advance(limits.TOKEN_TTL_MIN_MS)
    second = market.token(buyer, intent.install_intent_id)
    statuses: list[Any] = _statuses(market, [first, second])
    assert statuses == [InstallTokenStatus.EXPIRED, InstallTokenStatus.ISSUED]
    issued_events = [e for e in market.store.audit if e.type == "install_token.issued"]
    assert issued_events[-1].details["revokedTokens"] == 0

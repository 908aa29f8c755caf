"""Redemption that a target system can retry safely (contract §14 X-RED-01, issue 14
item 10): replay by ``Idempotency-Key`` within a bounded window, every other second
redemption ``NOT_FOUND`` (I-INT-06), and no commit after the deadline (R-TOK-03)."""

from __future__ import annotations

import pytest
from test_app_support import audit_count, changes, failure, snapshot

from fleetprompt_core import Conflict, InstallTokenStatus, NotFound
from fleetprompt_core.base import limits
from fleetprompt_core.base.errors import Unavailable
from fleetprompt_core.services.views import IssuedToken
from support import Market


def _issued(market: Market, target: str = "whs") -> tuple[str, IssuedToken]:
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id, target)
    issued = market.token(buyer, intent.install_intent_id)
    assert issued.install_token is not None
    return issued.install_token, issued


def _payload(raw: str, target: str = "whs") -> dict[str, str]:
    return {"installToken": raw, "targetSystem": target}


def test_x_red_01_same_source_body_and_key_replays_the_stored_answer(market: Market) -> None:
    """A redemption with a key, sent again by the same source with the same body and key,
    answers the first answer again (replayed) and changes nothing."""
    raw, issued = _issued(market)
    redeem = market.fp.redemption.redeem_idempotent
    first = redeem("whs", _payload(raw), idempotency_key="lost-answer-1")
    assert not first.replayed
    events = audit_count(market)
    before = snapshot(market)
    market.clock.advance(limits.REDEEM_REPLAY_WINDOW_MS - 1)
    again = redeem("whs", _payload(raw), idempotency_key="lost-answer-1")
    assert again.replayed
    assert again.value == first.value
    assert audit_count(market) == events
    assert changes(before, snapshot(market)) == {}
    assert market.store.tokens[issued.token_id].status is InstallTokenStatus.REDEEMED


def test_x_red_01_every_other_second_redemption_is_not_found(market: Market) -> None:
    """I-INT-06 still holds: without a key, with another key, from another source with the
    same key, or after the window, a second redemption is NOT_FOUND."""
    raw, _ = _issued(market)
    redeem = market.fp.redemption.redeem_idempotent
    redeem("whs", _payload(raw), idempotency_key="k")
    attempts = {
        "no key": lambda: redeem("whs", _payload(raw)),
        "other key": lambda: redeem("whs", _payload(raw), idempotency_key="k2"),
        "other source": lambda: redeem("agentelic", _payload(raw), idempotency_key="k"),
    }
    for name, attempt in attempts.items():
        assert isinstance(failure(attempt), NotFound), name
    market.clock.advance(limits.REDEEM_REPLAY_WINDOW_MS)
    assert isinstance(failure(lambda: redeem("whs", _payload(raw), idempotency_key="k")), NotFound)


def test_x_red_01_same_key_with_another_body_is_conflict(market: Market) -> None:
    """Reusing a key for another token is CONFLICT (§6) and redeems nothing."""
    raw, _ = _issued(market)
    other, other_issued = _issued(market)
    redeem = market.fp.redemption.redeem_idempotent
    redeem("whs", _payload(raw), idempotency_key="k")
    assert isinstance(
        failure(lambda: redeem("whs", _payload(other), idempotency_key="k")), Conflict
    )
    assert market.store.tokens[other_issued.token_id].status is InstallTokenStatus.ISSUED


def test_x_red_01_a_failed_redemption_stores_nothing(market: Market) -> None:
    """A refused redemption (wrong target) keeps no record: the same key later redeems."""
    raw, _ = _issued(market)
    redeem = market.fp.redemption.redeem_idempotent
    refused = failure(lambda: redeem("whs", _payload(raw, "agentelic"), idempotency_key="k"))
    assert isinstance(refused, NotFound)
    assert [k for k in market.store.idempotency if k[0] == "source:whs"] == []
    assert not redeem("whs", _payload(raw), idempotency_key="k").replayed


def test_r_tok_03_a_redemption_past_its_deadline_does_not_commit(market: Market) -> None:
    """A redemption whose deadline passed while it ran rolls back and answers UNAVAILABLE
    (retry after); the token stays redeemable, and the retry with the key redeems once."""
    raw, issued = _issued(market)
    before = snapshot(market)
    now = market.clock.now_ms()
    original = market.fp.runtime.clock

    class StallingClock:
        """Time jumps 6 s after the redemption starts: the database "stalled"."""

        def __init__(self) -> None:
            self.calls = 0

        def now_ms(self) -> int:
            self.calls += 1
            return original.now_ms() + (0 if self.calls == 1 else 6_000)

    object.__setattr__(market.fp.runtime, "clock", StallingClock())
    try:
        late = failure(
            lambda: market.fp.redemption.redeem_idempotent(
                "whs", _payload(raw), idempotency_key="k", deadline_ms=now + 5_000
            )
        )
    finally:
        object.__setattr__(market.fp.runtime, "clock", original)
    assert isinstance(late, Unavailable)
    assert late.retry_after_s is not None
    assert late.reason == "deadline_passed"
    assert changes(before, snapshot(market)) == {}
    assert market.store.tokens[issued.token_id].status is InstallTokenStatus.ISSUED
    retried = market.fp.redemption.redeem_idempotent(
        "whs", _payload(raw), idempotency_key="k", deadline_ms=market.clock.now_ms() + 5_000
    )
    assert not retried.replayed
    assert market.store.tokens[issued.token_id].status is InstallTokenStatus.REDEEMED


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\tkey"])
def test_x_red_01_a_malformed_key_is_validation_failed(market: Market, key: str) -> None:
    """The key follows §6 (1..255 printable ASCII); a bad one changes nothing."""
    raw, issued = _issued(market)
    error = failure(
        lambda: market.fp.redemption.redeem_idempotent("whs", _payload(raw), idempotency_key=key)
    )
    assert error.code.value == "VALIDATION_FAILED"
    assert market.store.tokens[issued.token_id].status is InstallTokenStatus.ISSUED

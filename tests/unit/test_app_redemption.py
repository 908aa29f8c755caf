"""Server-to-server redemption (X1, §7) through ``redemption.redeem_signed``: I-INT-01..08."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from test_app_support import (
    REDEEM_KEY,
    VERIFIER,
    audit_count,
    changes,
    error_shape,
    failure,
    redeem_request,
    redeem_signed,
    snapshot,
    strings_in,
    tables_changed,
)

from fleetprompt_adapters.memory import MemoryRateLimiter
from fleetprompt_core import (
    InstallIntentStatus,
    InstallTokenStatus,
    NotFound,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
)
from fleetprompt_core.base.enums import ActorType
from fleetprompt_core.policies.rate_limits import Action, RateLimits, RateRule
from fleetprompt_core.policies.signing import (
    MAX_SKEW_MS,
    UNAUTHENTICATED_MESSAGE,
    RedeemVerifier,
)
from fleetprompt_core.policies.tokens import generate_token, hash_token
from fleetprompt_core.services.views import IssuedToken
from support import Market, new_key


def _issued(market: Market, target: str = "whs") -> tuple[str, IssuedToken]:
    """A published listing, an intent of ``buyer`` for ``target`` and a fresh token."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id, target)
    issued = market.token(buyer, intent.install_intent_id)
    assert issued.install_token is not None
    return issued.install_token, issued


def _token_status(market: Market, issued: IssuedToken) -> InstallTokenStatus:
    return market.store.tokens[issued.token_id].status


# --------------------------------------------------------------------------- I-INT-01


@pytest.mark.parametrize("marker", ["browser_context", "duplicate_header"])
def test_i_int_01_redeem_signed_refuses_browser_requests_without_state_change(
    market: Market, marker: str
) -> None:
    """A signed redeem from a browser context (or with a duplicated delegation header) is
    UNAUTHENTICATED and changes nothing."""
    raw, _ = _issued(market)
    before = snapshot(market)
    error = failure(lambda: redeem_signed(market, raw, **{marker: True}))
    assert isinstance(error, Unauthenticated)
    assert error.message == UNAUTHENTICATED_MESSAGE
    assert changes(before, snapshot(market)) == {}
    assert redeem_signed(market, raw).install_intent.status is InstallIntentStatus.REDEEMED


# --------------------------------------------------------------------------- I-INT-02


def _bad_requests(raw: str, now: int) -> dict[str, dict[str, Any]]:
    body = json.dumps({"installToken": raw, "targetSystem": "whs"}).encode()
    good = redeem_request(raw, sent_at_ms=now)
    return {
        "wrong-key": redeem_request(raw, sent_at_ms=now, key=b"x" * 32),
        "unknown-source": redeem_request(raw, sent_at_ms=now, source="evil"),
        "stale": redeem_request(raw, sent_at_ms=now - MAX_SKEW_MS - 1),
        "future": redeem_request(raw, sent_at_ms=now + MAX_SKEW_MS + 1),
        "no-signature": good | {"signature": None},
        "no-timestamp": good | {"timestamp": None},
        "no-source": good | {"source": None},
        "body-swapped": good | {"body": body.replace(b"whs", b"agentelic")},
        "signature-of-other-body": redeem_request(raw, sent_at_ms=now, body=b"{}") | {"body": body},
    }


def test_i_int_02_bad_authentication_is_one_generic_error_and_changes_nothing(
    market: Market,
) -> None:
    """Every authentication failure is one generic UNAUTHENTICATED with no state change."""
    raw, _issued_token = _issued(market)
    before = snapshot(market)
    shapes = set()
    for name, request in _bad_requests(raw, market.clock.now_ms()).items():
        error = failure(lambda r=request: market.fp.redemption.redeem_signed(VERIFIER, **r))
        assert isinstance(error, Unauthenticated), name
        shapes.add(error_shape(error))
    assert shapes == {error_shape(Unauthenticated(UNAUTHENTICATED_MESSAGE))}
    assert changes(before, snapshot(market)) == {}
    assert redeem_signed(market, raw).install_intent.status is InstallIntentStatus.REDEEMED


def test_i_int_02_rotated_keys_and_skew_window_are_honoured(market: Market) -> None:
    """A rotating verifier accepts the old key, and the ±5 min edge still passes."""
    raw, _ = _issued(market)
    rotating = RedeemVerifier(keys=(b"n" * 32, REDEEM_KEY))
    request = redeem_request(raw, sent_at_ms=market.clock.now_ms() - MAX_SKEW_MS)
    redemption = market.fp.redemption.redeem_signed(rotating, **request)
    assert redemption.install_intent.status is InstallIntentStatus.REDEEMED


def test_i_int_02_authenticated_but_malformed_body_is_validation_failed(market: Market) -> None:
    """An authenticated but malformed body is VALIDATION_FAILED and changes nothing."""
    _issued(market)
    before = snapshot(market)
    for body, fields in (
        (b"not json", ["body", "installToken", "targetSystem"]),
        (b"[]", ["body", "installToken", "targetSystem"]),
        (b'{"installToken": "x"}', ["targetSystem"]),
        (b'{"installToken": "x", "targetSystem": "ftp"}', ["targetSystem"]),
        (b'{"installToken": 5, "targetSystem": "whs"}', ["installToken"]),
    ):
        request = redeem_request("", sent_at_ms=market.clock.now_ms(), body=body)
        error = failure(lambda r=request: market.fp.redemption.redeem_signed(VERIFIER, **r))
        assert isinstance(error, ValidationFailed), body
        assert [f.field_name for f in error.fields] == fields, body
    assert changes(before, snapshot(market)) == {}


# --------------------------------------------------------------------------- I-INT-03


def test_i_int_03_redeem_resolves_references_and_marks_token_and_intent(market: Market) -> None:
    """Redeem answers the references, marks token and intent redeemed, audits once as system."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, release = market.published(publisher)
    listing = view.listing
    intent = market.intent(buyer, listing.listing_id, "agentelic", targetContext={"roomId": "r1"})
    issued = market.token(buyer, intent.install_intent_id)
    assert issued.install_token is not None
    market.clock.advance(30_000)
    before = snapshot(market)
    redemption = redeem_signed(market, issued.install_token, "agentelic", source="agentelic")
    now = market.clock.now_ms()

    assert redemption.install_intent.install_intent_id == intent.install_intent_id
    assert redemption.install_intent.status is InstallIntentStatus.REDEEMED
    assert redemption.install_intent.target_context.room_id == "r1"
    assert (
        redemption.listing.listing_id,
        redemption.listing.asset_kind,
        redemption.listing.name,
    ) == (
        listing.listing_id,
        listing.asset_kind,
        listing.name,
    )
    assert redemption.release.release_id == release.release_id
    assert redemption.release.version == release.version
    assert redemption.release.refs == release.refs
    assert redemption.release.compat == release.compat
    assert redemption.release.artifacts == release.artifacts

    diff = changes(before, snapshot(market))
    assert tables_changed(diff) == {"tokens", "intents", "audit"}
    assert diff["tokens"] == {issued.token_id}
    assert diff["intents"] == {intent.install_intent_id}
    assert diff["audit"] == {len(before["audit"])}
    token = market.store.tokens[issued.token_id]
    assert token.status is InstallTokenStatus.REDEEMED
    assert token.redeemed_at_ms == now
    assert token.redeemed_by_system == "agentelic"
    assert market.store.intents[intent.install_intent_id] == redemption.install_intent
    event = market.store.audit[-1]
    assert event.type == "install_token.redeemed"
    assert event.actor.type is ActorType.SYSTEM
    assert event.actor.system == "agentelic"
    assert event.actor.user_id is None
    assert (event.listing_id, event.release_id, event.install_intent_id) == (
        listing.listing_id,
        release.release_id,
        intent.install_intent_id,
    )
    assert event.publisher_user_id == listing.publisher_user_id
    assert market.fp.installs.get_intent(buyer, intent.install_intent_id).status is (
        InstallIntentStatus.REDEEMED
    )


# --------------------------------------------------------------------------- I-INT-04


def test_i_int_04_expired_token_is_not_found(market: Market) -> None:
    """An expired token is the unknown-token NOT_FOUND, before and after retention."""
    raw, issued = _issued(market)
    unknown = failure(lambda: redeem_signed(market, generate_token("fpit_")))
    market.clock.advance(issued.expires_at_ms - market.clock.now_ms())
    before = snapshot(market)
    error = failure(lambda: redeem_signed(market, raw))
    assert isinstance(error, NotFound)
    assert error_shape(error) == error_shape(unknown)
    assert changes(before, snapshot(market)) == {}
    market.fp.retention.run()
    assert _token_status(market, issued) is InstallTokenStatus.EXPIRED
    assert error_shape(failure(lambda: redeem_signed(market, raw))) == error_shape(unknown)


def test_i_int_04_token_of_an_expired_intent_is_not_found(market: Market) -> None:
    """A token issued late in an intent's life stops working when the intent expires."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id)
    market.clock.set(intent.expires_at_ms - 60_000)
    issued = market.token(buyer, intent.install_intent_id, ttl_ms=3_600_000)
    assert issued.install_token is not None
    market.clock.set(intent.expires_at_ms)
    assert isinstance(failure(lambda: redeem_signed(market, issued.install_token)), NotFound)
    assert market.fp.installs.get_intent(buyer, intent.install_intent_id).status is (
        InstallIntentStatus.EXPIRED
    )


# --------------------------------------------------------------------------- I-INT-05


def test_i_int_05_revoked_tokens_are_not_found(market: Market) -> None:
    """Re-issued, canceled, revoked-release or suspended-listing tokens are one NOT_FOUND."""
    publisher = market.publisher()
    admin = market.admin()
    buyer = market.user("buyer")
    unknown = error_shape(failure(lambda: redeem_signed(market, generate_token("fpit_"))))

    view, release = market.published(publisher)
    listing_id = view.listing.listing_id
    reissued = market.intent(buyer, listing_id)
    first = market.token(buyer, reissued.install_intent_id)
    second = market.token(buyer, reissued.install_intent_id)
    canceled = market.intent(buyer, listing_id)
    canceled_token = market.token(buyer, canceled.install_intent_id)
    market.fp.installs.cancel_intent(buyer, canceled.install_intent_id, idempotency_key=new_key())
    for issued in (first, canceled_token):
        assert issued.install_token is not None
        assert error_shape(failure(lambda t=issued.install_token: redeem_signed(market, t))) == (
            unknown
        )
        assert _token_status(market, issued) is InstallTokenStatus.REVOKED

    suspended_view, _ = market.published(publisher)
    suspended_intent = market.intent(buyer, suspended_view.listing.listing_id)
    suspended_token = market.token(buyer, suspended_intent.install_intent_id)
    market.fp.admin.suspend_listing(
        admin, suspended_view.listing.listing_id, {"reason": "malware"}, idempotency_key=new_key()
    )
    market.fp.publishing.revoke_release(
        publisher, release.release_id, {}, idempotency_key=new_key()
    )
    # A revoked release blocks its tokens; a suspension revokes them (ADR 0025).
    stored = {second: InstallTokenStatus.ISSUED, suspended_token: InstallTokenStatus.REVOKED}
    for issued, status in stored.items():
        assert issued.install_token is not None
        before = snapshot(market)
        assert error_shape(failure(lambda t=issued.install_token: redeem_signed(market, t))) == (
            unknown
        )
        assert changes(before, snapshot(market)) == {}
        assert _token_status(market, issued) is status


# --------------------------------------------------------------------------- I-INT-06


def test_i_int_06_redeem_twice_is_not_found(market: Market) -> None:
    """A second redemption, from any source, is NOT_FOUND and changes nothing."""
    raw, issued = _issued(market)
    assert redeem_signed(market, raw).install_intent.status is InstallIntentStatus.REDEEMED
    after_first = snapshot(market)
    for source in ("whs", "agentelic"):
        error = failure(lambda s=source: redeem_signed(market, raw, source=s))
        assert isinstance(error, NotFound)
    assert changes(after_first, snapshot(market)) == {}
    assert market.store.tokens[issued.token_id].redeemed_by_system == "whs"


def test_i_int_06_concurrent_redemptions_of_one_token_succeed_once(market: Market) -> None:
    """Eight concurrent redemptions of one token: exactly one succeeds and is audited."""
    raw, issued = _issued(market)
    before = audit_count(market)
    barrier = threading.Barrier(8)
    outcomes: list[object] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            result: object = redeem_signed(market, raw)
        except Exception as error:
            result = error
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    successes = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(successes) == 1
    assert all(isinstance(o, NotFound) for o in outcomes if isinstance(o, Exception))
    assert audit_count(market) == before + 1
    assert _token_status(market, issued) is InstallTokenStatus.REDEEMED


# --------------------------------------------------------------------------- I-INT-07


def test_i_int_07_redemption_output_audit_and_errors_are_secret_free(market: Market) -> None:
    """No redemption answer, audit event or refusal holds the raw token or its hash."""
    raw, issued = _issued(market)
    token_hash = hash_token(raw)
    refusals = [
        failure(lambda: redeem_signed(market, raw, "agentelic")),
        failure(lambda: redeem_signed(market, raw, browser_context=True)),
        failure(lambda: market.redeem(raw + "x")),
        failure(lambda: market.redeem(raw, "ftp")),
    ]
    redemption = redeem_signed(market, raw)
    refusals.append(failure(lambda: redeem_signed(market, raw)))
    event = market.store.audit[-1]
    assert event.type == "install_token.redeemed"
    assert event.details["tokenId"] == issued.token_id
    for value in (redemption, event, *refusals):
        for text in strings_in(value):
            assert raw not in text
            assert raw[5:30] not in text  # not even a piece of the secret body
            assert token_hash not in text


# --------------------------------------------------------------------------- I-INT-08


def test_i_int_08_redemption_is_rate_limited_per_source() -> None:
    """Redemption is limited per source with Retry-After and no change, until the window passes."""
    limited = Market.create(
        limiter=MemoryRateLimiter(),
        rate_limits=RateLimits(rules={Action.REDEEM: RateRule(2, 60_000)}),
    )
    raw, issued = _issued(limited)
    for _ in range(2):
        assert isinstance(
            failure(lambda: redeem_signed(limited, generate_token("fpit_"))), NotFound
        )
    before = snapshot(limited)
    error = failure(lambda: redeem_signed(limited, raw))
    assert isinstance(error, RateLimited)
    assert error.retry_after_s == 60
    assert changes(before, snapshot(limited)) == {}
    assert _token_status(limited, issued) is InstallTokenStatus.ISSUED
    other = failure(lambda: redeem_signed(limited, generate_token("fpit_"), source="agentelic"))
    assert isinstance(other, NotFound)
    limited.clock.advance(59_000)
    almost = failure(lambda: redeem_signed(limited, raw))
    assert isinstance(almost, RateLimited)
    assert almost.retry_after_s == 1
    limited.clock.advance(1_000)
    assert redeem_signed(limited, raw).install_intent.status is InstallIntentStatus.REDEEMED

"""The buyer's side of an install (I1–I5) through the installs use cases: I-INST-01..06."""

from __future__ import annotations

import pytest
from test_app_support import audit_count, changes, error_shape, failure, snapshot

from fleetprompt_core import (
    Call,
    Conflict,
    InstallIntentStatus,
    InstallTargetSystem,
    InstallTokenStatus,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from fleetprompt_core.base import limits
from fleetprompt_core.domain.model import TargetContext
from fleetprompt_core.policies.tokens import INSTALL_TOKEN_PREFIX, has_valid_checksum, hash_token
from support import Market, new_key

# --------------------------------------------------------------------------- I-INST-01


def test_i_inst_01_intent_for_the_latest_published_release(market: Market) -> None:
    """An intent is the caller's, on the newest published release, created, 24 h, audited once."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    buyer_id = market.store.users_by_external_id["buyer"]
    view, _old = market.published(publisher, "1.0.0")
    listing_id = view.listing.listing_id
    market.clock.advance(1)
    newest = market.release(publisher, listing_id, "1.1.0")
    before = audit_count(market)
    intent = market.fp.installs.create_intent(
        buyer,
        {
            "listingId": listing_id,
            "targetSystem": "agentelic",
            "targetContext": {"telespaceId": "ts-1", "roomId": " room-7 ", "orgId": "org-9"},
        },
        idempotency_key=new_key(),
    ).value
    now = market.clock.now_ms()
    assert intent.buyer_user_id == buyer_id
    assert intent.listing_id == listing_id
    assert intent.release_id == newest.release_id
    assert intent.target_system is InstallTargetSystem.AGENTELIC
    assert intent.target_context == TargetContext("ts-1", "room-7", "org-9")
    assert intent.status is InstallIntentStatus.CREATED
    assert intent.created_at_ms == intent.updated_at_ms == now
    assert intent.expires_at_ms == now + 24 * 60 * 60 * 1000
    assert market.store.intents[intent.install_intent_id] == intent
    assert [e.type for e in market.store.audit[before:]] == ["install_intent.created"]
    assert market.fp.installs.get_intent(buyer, intent.install_intent_id) == intent


def test_i_inst_01_intent_for_an_explicit_release_and_sign_in_required(market: Market) -> None:
    """A buyer may pick an older release; an anonymous caller is UNAUTHENTICATED, no write."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, old = market.published(publisher, "1.0.0")
    listing_id = view.listing.listing_id
    market.release(publisher, listing_id, "1.1.0")
    intent = market.intent(buyer, listing_id, releaseId=old.release_id)
    assert intent.release_id == old.release_id
    before = snapshot(market)
    error = failure(
        lambda: market.fp.installs.create_intent(
            Call(), {"listingId": listing_id, "targetSystem": "whs"}, idempotency_key=new_key()
        )
    )
    assert isinstance(error, Unauthenticated)
    assert changes(before, snapshot(market)) == {}


# --------------------------------------------------------------------------- I-INST-02


def test_i_inst_02_list_intents_shows_own_intents_by_observed_status(market: Market) -> None:
    """The buyer list holds own intents, newest first, filtered by the status observed now."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    other = market.user("other")
    view, _ = market.published(publisher)
    listing_id = view.listing.listing_id
    market.intent(other, listing_id)
    old = market.intent(buyer, listing_id)
    market.clock.advance(limits.INTENT_TTL_MS - 10)
    issued = market.intent(buyer, listing_id)
    market.token(buyer, issued.install_intent_id)
    canceled = market.intent(buyer, listing_id)
    market.fp.installs.cancel_intent(buyer, canceled.install_intent_id, idempotency_key=new_key())
    market.clock.advance(10)  # ``old`` is now past its expiry, nothing persisted it

    page = market.fp.installs.list_intents(buyer)
    ids = [i.install_intent_id for i in page.items]
    assert ids == [
        canceled.install_intent_id,
        issued.install_intent_id,
        old.install_intent_id,
    ]
    statuses = {i.install_intent_id: i.status for i in page.items}
    assert statuses[old.install_intent_id] is InstallIntentStatus.EXPIRED
    assert statuses[issued.install_intent_id] is InstallIntentStatus.TOKEN_ISSUED
    assert statuses[canceled.install_intent_id] is InstallIntentStatus.CANCELED

    def by_status(status: str) -> list[str]:
        items = market.fp.installs.list_intents(buyer, {"status": status}).items
        return [i.install_intent_id for i in items]

    assert by_status("expired") == [old.install_intent_id]
    assert by_status("created") == []
    assert by_status("token_issued") == [issued.install_intent_id]
    assert by_status("canceled") == [canceled.install_intent_id]
    assert by_status("redeemed") == []
    assert market.fp.installs.get_intent(buyer, old.install_intent_id).status is (
        InstallIntentStatus.EXPIRED
    )
    with pytest.raises(ValidationFailed) as caught:
        market.fp.installs.list_intents(buyer, {"status": "lost"})
    assert [f.field_name for f in caught.value.fields] == ["status"]


# --------------------------------------------------------------------------- I-INST-03


def test_i_inst_03_token_ttl_defaults_to_15_minutes_and_is_bounded(market: Market) -> None:
    """Token TTL defaults to 15 min, accepts 60 s..1 h and refuses anything else on ttlMs."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id)
    intent_id = intent.install_intent_id
    now = market.clock.now_ms()
    issued = market.token(buyer, intent_id)
    assert issued.expires_at_ms == now + 15 * 60 * 1000
    assert issued.target_system is InstallTargetSystem.WHS
    assert issued.install_token is not None
    assert issued.install_token.startswith(INSTALL_TOKEN_PREFIX)
    assert has_valid_checksum(issued.install_token)
    stored = market.store.tokens[issued.token_id]
    assert stored.token_hash == hash_token(issued.install_token)
    assert stored.status is InstallTokenStatus.ISSUED
    assert stored.expires_at_ms == issued.expires_at_ms
    assert market.store.intents[intent_id].status is InstallIntentStatus.TOKEN_ISSUED
    for ttl in (60_000, 3_600_000):
        assert market.token(buyer, intent_id, ttl_ms=ttl).expires_at_ms == now + ttl
    before = snapshot(market)
    for ttl in (59_999, 3_600_001, 0, -1, "60000", 60_000.5, True):
        error = failure(
            lambda t=ttl: market.fp.installs.issue_token(
                buyer, intent_id, {"ttlMs": t}, idempotency_key=new_key()
            )
        )
        assert isinstance(error, ValidationFailed)
        assert [f.field_name for f in error.fields] == ["ttlMs"]
    assert changes(before, snapshot(market)) == {}


def test_i_inst_03_token_never_outlives_its_intent(market: Market) -> None:
    """A token expires no later than its intent; an expired intent gets no token."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id)
    market.clock.advance(limits.INTENT_TTL_MS - 120_000)
    issued = market.token(buyer, intent.install_intent_id, ttl_ms=3_600_000)
    assert issued.expires_at_ms == intent.expires_at_ms
    market.clock.advance(120_000)
    error = failure(lambda: market.token(buyer, intent.install_intent_id))
    assert isinstance(error, Conflict)


# --------------------------------------------------------------------------- I-INST-04


def test_i_inst_04_foreign_intent_is_not_found(market: Market) -> None:
    """Another buyer's read/token/cancel of an intent is the unknown-id NOT_FOUND, no change."""
    publisher = market.publisher()
    owner = market.user("buyer")
    intruder = market.user("intruder")
    view, _ = market.published(publisher)
    intent = market.intent(owner, view.listing.listing_id)
    issued = market.token(owner, intent.install_intent_id)
    installs = market.fp.installs
    before = snapshot(market)
    for operation in (
        lambda iid: installs.get_intent(intruder, iid),
        lambda iid: installs.issue_token(intruder, iid, None, idempotency_key=new_key()),
        lambda iid: installs.cancel_intent(intruder, iid, None, idempotency_key=new_key()),
    ):
        foreign = failure(lambda op=operation: op(intent.install_intent_id))
        unknown = failure(lambda op=operation: op("ii_01JUNKNOWN000000000000000"))
        assert isinstance(foreign, NotFound)
        assert error_shape(foreign) == error_shape(unknown)
    assert changes(before, snapshot(market)) == {}
    assert installs.list_intents(intruder).items == ()
    assert issued.install_token is not None
    assert market.redeem(issued.install_token).install_intent.install_intent_id == (
        intent.install_intent_id
    )


# --------------------------------------------------------------------------- I-INST-05


def test_i_inst_05_bad_listing_release_or_revoked_release_is_refused(market: Market) -> None:
    """Intents need a published release of a published listing; anything else writes nothing."""
    publisher = market.publisher()
    admin = market.admin()
    buyer = market.user("buyer")
    view, release = market.published(publisher)
    listing_id = view.listing.listing_id
    other, other_release = market.published(publisher)
    draft = market.draft(publisher)
    draft_release = market.release(publisher, draft.listing.listing_id)
    unlisted, _ = market.published(publisher)
    market.fp.publishing.change_status(
        publisher, unlisted.listing.listing_id, {"status": "unlisted"}, idempotency_key=new_key()
    )
    suspended, _ = market.published(publisher)
    market.fp.admin.suspend_listing(
        admin, suspended.listing.listing_id, {"reason": "spam"}, idempotency_key=new_key()
    )
    revoked_only, revoked_release = market.published(publisher)
    market.clock.advance(1)
    market.fp.publishing.revoke_release(
        publisher, revoked_release.release_id, {}, idempotency_key=new_key()
    )
    revoked_sibling = market.release(publisher, listing_id, "0.9.0")
    market.fp.publishing.revoke_release(
        publisher, revoked_sibling.release_id, {}, idempotency_key=new_key()
    )

    def attempt(**payload: object) -> Exception:
        body = {"targetSystem": "whs", **payload}
        return failure(
            lambda: market.fp.installs.create_intent(buyer, body, idempotency_key=new_key())
        )

    before = snapshot(market)
    not_found = [
        attempt(listingId="lst_01JUNKNOWN000000000000000"),
        attempt(listingId=draft.listing.listing_id),
        attempt(listingId=draft.listing.listing_id, releaseId=draft_release.release_id),
        attempt(listingId=unlisted.listing.listing_id),
        attempt(listingId=suspended.listing.listing_id),
        attempt(listingId=listing_id, releaseId=other_release.release_id),
        attempt(listingId=listing_id, releaseId=draft_release.release_id),
        attempt(listingId=listing_id, releaseId="rel_01JUNKNOWN000000000000000"),
    ]
    assert all(isinstance(error, NotFound) for error in not_found)
    assert isinstance(attempt(listingId=listing_id, releaseId=revoked_sibling.release_id), Conflict)
    assert isinstance(attempt(listingId=revoked_only.listing.listing_id), Conflict)
    for payload, field in (
        ({"listingId": listing_id, "targetSystem": "github"}, "targetSystem"),
        ({"targetSystem": "whs"}, "listingId"),
        (
            {"listingId": listing_id, "targetSystem": "whs", "targetContext": {"x": 1}},
            "targetContext.x",
        ),
        (
            {"listingId": listing_id, "targetSystem": "whs", "targetContext": {"orgId": "o" * 201}},
            "targetContext.orgId",
        ),
    ):
        error = failure(
            lambda p=payload: market.fp.installs.create_intent(buyer, p, idempotency_key=new_key())
        )
        assert isinstance(error, ValidationFailed)
        assert [f.field_name for f in error.fields] == [field]
    assert changes(before, snapshot(market)) == {}
    assert market.intent(buyer, listing_id).release_id == release.release_id
    assert market.intent(buyer, other.listing.listing_id).release_id == other_release.release_id


# --------------------------------------------------------------------------- I-INST-06


def test_i_inst_06_intent_creation_is_idempotent(market: Market) -> None:
    """Intent create replays under its key, needs the key, and conflicts on another body."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    body = {"listingId": view.listing.listing_id, "targetSystem": "whs"}
    key = new_key()
    before = audit_count(market)
    first = market.fp.installs.create_intent(buyer, body, idempotency_key=key)
    market.clock.advance(5_000)
    again = market.fp.installs.create_intent(buyer, dict(body), idempotency_key=key)
    assert not first.replayed
    assert again.replayed
    assert again.value == first.value
    assert len(market.store.intents) == 1
    assert audit_count(market) == before + 1
    error = failure(
        lambda: market.fp.installs.create_intent(
            buyer, {**body, "targetSystem": "agentelic"}, idempotency_key=key
        )
    )
    assert isinstance(error, Conflict)
    error = failure(lambda: market.fp.installs.create_intent(buyer, body, idempotency_key=None))
    assert isinstance(error, ValidationFailed)
    assert [f.field_name for f in error.fields] == ["Idempotency-Key"]
    assert len(market.store.intents) == 1


def test_i_inst_06_token_issue_and_cancel_are_idempotent(market: Market) -> None:
    """Token issue and cancel replay without a second token, audit event or raw token."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id)
    intent_id = intent.install_intent_id
    key = new_key()
    first = market.fp.installs.issue_token(buyer, intent_id, None, idempotency_key=key)
    again = market.fp.installs.issue_token(buyer, intent_id, None, idempotency_key=key)
    assert again.replayed
    assert again.value.token_id == first.value.token_id
    assert again.value.expires_at_ms == first.value.expires_at_ms
    assert again.value.install_token is None
    assert len(market.store.tokens) == 1
    assert market.store.tokens[first.value.token_id].status is InstallTokenStatus.ISSUED

    cancel_key = new_key()
    before = audit_count(market)
    canceled = market.fp.installs.cancel_intent(buyer, intent_id, idempotency_key=cancel_key)
    replay = market.fp.installs.cancel_intent(buyer, intent_id, idempotency_key=cancel_key)
    assert canceled.value.status is InstallIntentStatus.CANCELED
    assert replay.replayed
    assert replay.value == canceled.value
    assert audit_count(market) == before + 1
    assert market.store.tokens[first.value.token_id].status is InstallTokenStatus.REVOKED
    assert isinstance(
        failure(
            lambda: market.fp.installs.cancel_intent(buyer, intent_id, idempotency_key=new_key())
        ),
        Conflict,
    )

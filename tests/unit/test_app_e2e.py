"""End-to-end journeys through the use cases over the in-memory adapter: E2E-01..04."""

from __future__ import annotations

import json

import pytest
from test_app_support import REDEEM_KEY, VERIFIER, failure

from fleetprompt_core import (
    Call,
    InstallIntentStatus,
    InstallTargetSystem,
    InstallTokenStatus,
    ListingStatus,
    NotFound,
    ReleaseStatus,
    Unauthenticated,
)
from fleetprompt_core.policies.signing import (
    SIGNATURE_HEADER,
    SOURCE_HEADER,
    TIMESTAMP_HEADER,
    signed_headers,
)
from fleetprompt_core.policies.tokens import looks_like_token
from support import Market, listing_payload, new_key, release_payload


def test_e2e_01_browse_and_search_signed_out(market: Market) -> None:
    """A signed-out visitor searches, pages and opens listings, seeing published ones only."""
    publisher = market.publisher()
    market.fp.profiles.put(publisher, {"displayName": "Acme Agents"})
    triage, _ = market.published(
        publisher,
        name="Support Triage",
        description={"markdown": "Routes <b>tickets</b> [docs](https://docs.example.com)"},
    )
    market.clock.advance(1_000)
    market.published(publisher, name="Billing Bot", tags=["billing"], summary="Invoices.")
    market.draft(publisher, name="Secret Support Draft")
    visitor = Call(client="192.0.2.10")

    everything = market.fp.catalog.search({}, visitor)
    assert [item.name for item in everything.items] == ["Billing Bot", "Support Triage"]
    assert {item.status for item in everything.items} == {ListingStatus.PUBLISHED}
    found = market.fp.catalog.search({"q": "support"}, visitor)
    assert [item.listing_id for item in found.items] == [triage.listing.listing_id]
    assert found.items[0].publisher.display_name == "Acme Agents"
    first = market.fp.catalog.search({"limit": 1, "sort": "name"}, visitor)
    rest = market.fp.catalog.search(
        {"limit": 1, "sort": "name", "cursor": first.next_cursor}, visitor
    )
    assert [first.items[0].name, rest.items[0].name] == ["Billing Bot", "Support Triage"]
    assert rest.next_cursor is None

    detail = market.fp.catalog.listing(triage.listing.listing_id, visitor)
    assert detail.listing.name == "Support Triage"
    assert "&lt;b&gt;" in detail.description.html
    assert "<b>" not in detail.description.html
    assert 'rel="noopener noreferrer nofollow"' in detail.description.html
    assert detail.latest_release is not None
    assert detail.latest_release.version == "1.0.0"
    releases = market.fp.catalog.releases(triage.listing.listing_id, None, visitor)
    assert [r.version for r in releases.items] == ["1.0.0"]
    # Signed-out visitors cannot do anything beyond reading.
    error = failure(
        lambda: market.fp.installs.create_intent(
            visitor,
            {"listingId": triage.listing.listing_id, "targetSystem": "whs"},
            idempotency_key=new_key(),
        )
    )
    assert isinstance(error, Unauthenticated)


def test_e2e_02_publisher_flow(market: Market) -> None:
    """Create, patch, release, publish, re-release, revoke, unlist: each step shows as intended."""
    publisher = market.publisher()
    publishing, catalog = market.fp.publishing, market.fp.catalog
    created = publishing.create_listing(
        publisher, listing_payload(name="Flow Agent"), idempotency_key=new_key()
    ).value
    listing_id = created.listing.listing_id
    assert created.listing.status is ListingStatus.DRAFT
    assert catalog.search({}).items == ()

    publishing.update_listing(publisher, listing_id, {"summary": "Now with flows."})
    first = publishing.publish_release(
        publisher, listing_id, release_payload("1.0.0"), idempotency_key=new_key()
    ).value
    published = publishing.change_status(
        publisher, listing_id, {"status": "published"}, idempotency_key=new_key()
    ).value
    assert published.listing.status is ListingStatus.PUBLISHED
    (hit,) = catalog.search({"q": "flow"}).items
    assert hit.summary == "Now with flows."

    market.clock.advance(1_000)
    second = publishing.publish_release(
        publisher, listing_id, release_payload("1.1.0"), idempotency_key=new_key()
    ).value
    latest = catalog.listing(listing_id).latest_release
    assert latest is not None
    assert latest.version == "1.1.0"
    market.clock.advance(1_000)
    publishing.revoke_release(
        publisher, second.release_id, {"reason": "regression"}, idempotency_key=new_key()
    )
    latest = catalog.listing(listing_id).latest_release
    assert latest is not None
    assert latest.release_id == first.release_id
    console = publishing.list_releases(publisher, listing_id).items
    assert [(r.version, r.status) for r in console] == [
        ("1.1.0", ReleaseStatus.REVOKED),
        ("1.0.0", ReleaseStatus.PUBLISHED),
    ]

    publishing.change_status(
        publisher, listing_id, {"status": "unlisted"}, idempotency_key=new_key()
    )
    assert catalog.search({}).items == ()
    with pytest.raises(NotFound):
        catalog.listing(listing_id)
    assert publishing.get_listing(publisher, listing_id).listing.status is ListingStatus.UNLISTED
    flow = [e.type for e in market.store.audit if e.listing_id == listing_id]
    assert flow == [
        "listing.created",
        "listing.updated",
        "release.published",
        "listing.status_changed",
        "release.published",
        "release.revoked",
        "listing.status_changed",
    ]


def test_e2e_03_buyer_creates_an_intent_and_gets_a_token(market: Market) -> None:
    """A buyer finds a listing, creates an intent and gets a token shown exactly once."""
    publisher = market.publisher()
    view, release = market.published(publisher)
    buyer = market.user("buyer")
    (hit,) = market.fp.catalog.search({"q": "triage"}, buyer).items
    detail = market.fp.catalog.listing(hit.listing_id, buyer)
    assert detail.latest_release is not None
    intent = market.fp.installs.create_intent(
        buyer,
        {
            "listingId": hit.listing_id,
            "releaseId": detail.latest_release.release_id,
            "targetSystem": "agentelic",
            "targetContext": {"telespaceId": "ts-42", "roomId": "room-1"},
        },
        idempotency_key=new_key(),
    ).value
    assert intent.status is InstallIntentStatus.CREATED
    assert intent.release_id == release.release_id
    assert [i.install_intent_id for i in market.fp.installs.list_intents(buyer).items] == [
        intent.install_intent_id
    ]
    key = new_key()
    issued = market.fp.installs.issue_token(
        buyer, intent.install_intent_id, {"ttlMs": 300_000}, idempotency_key=key
    ).value
    assert issued.install_token is not None
    assert looks_like_token(issued.install_token)
    assert issued.target_system is InstallTargetSystem.AGENTELIC
    assert issued.expires_at_ms == market.clock.now_ms() + 300_000
    assert market.fp.installs.get_intent(buyer, intent.install_intent_id).status is (
        InstallIntentStatus.TOKEN_ISSUED
    )
    shown_again = market.fp.installs.issue_token(
        buyer, intent.install_intent_id, {"ttlMs": 300_000}, idempotency_key=key
    )
    assert shown_again.replayed
    assert shown_again.value.install_token is None
    assert market.fp.catalog.listing(view.listing.listing_id).listing.install_attempts_30d == 1


def test_e2e_04_server_to_server_redeem_twice(market: Market) -> None:
    """A signed redeem succeeds once; the identical second request is NOT_FOUND, no change."""
    publisher = market.publisher()
    view, release = market.published(publisher)
    buyer = market.user("buyer")
    intent = market.intent(buyer, view.listing.listing_id, "whs")
    issued = market.token(buyer, intent.install_intent_id)
    assert issued.install_token is not None

    body = json.dumps({"installToken": issued.install_token, "targetSystem": "whs"}).encode()
    headers = signed_headers(body, REDEEM_KEY, "whs", market.clock.now_ms())
    request = {
        "body": body,
        "source": headers[SOURCE_HEADER],
        "timestamp": headers[TIMESTAMP_HEADER],
        "signature": headers[SIGNATURE_HEADER],
    }
    redemption = market.fp.redemption.redeem_signed(VERIFIER, **request, request_id="req-whs-1")
    assert redemption.install_intent.status is InstallIntentStatus.REDEEMED
    assert redemption.listing.listing_id == view.listing.listing_id
    assert redemption.release.release_id == release.release_id
    assert redemption.release.refs.whs_agent_id == "agent-123"
    assert market.store.audit[-1].request_id == "req-whs-1"
    audit_after_first = len(market.store.audit)

    market.clock.advance(2_000)
    error = failure(lambda: market.fp.redemption.redeem_signed(VERIFIER, **request))
    assert isinstance(error, NotFound)
    assert len(market.store.audit) == audit_after_first
    assert market.store.tokens[issued.token_id].status is InstallTokenStatus.REDEEMED
    assert market.fp.installs.get_intent(buyer, intent.install_intent_id).status is (
        InstallIntentStatus.REDEEMED
    )

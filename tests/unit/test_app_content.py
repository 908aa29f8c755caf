"""Catalogue content rules through the use cases on the in-memory adapter (issue 14).

X-CAT-03 (latest by semantic-version precedence, ADR 0023), the target systems
each asset kind installs into (item 9, ADR 0024) and what suspension and
withdrawal do to open intents and issued tokens (item 13, ADR 0025). The same
scenarios run over HTTP on SQLite and PostgreSQL in
``tests/contract/test_http_content.py``.
"""

from __future__ import annotations

import attrs
import pytest

from fleetprompt_core import (
    AssetKind,
    Call,
    Conflict,
    InstallIntentStatus,
    InstallTargetSystem,
    InstallTokenStatus,
    NotFound,
    ValidationFailed,
)
from fleetprompt_core.services import views
from support import Market, new_key

# --------------------------------------------------------------------------- X-CAT-03


def test_x_cat_03_a_backport_does_not_become_latest(market: Market) -> None:
    """1.0.0 then 0.9.0: the detail's latest and an intent without releaseId are 1.0.0."""
    publisher, buyer = market.publisher(), market.user("buyer")
    view, first = market.published(publisher, "1.0.0")
    listing_id = view.listing.listing_id
    market.clock.advance(10)
    market.release(publisher, listing_id, "0.9.0")
    market.clock.advance(10)
    market.release(publisher, listing_id, "1.1.0-rc.1")
    detail = market.fp.catalog.listing(listing_id)
    assert detail.latest_release is not None
    assert detail.latest_release.release_id == first.release_id
    assert [r.version for r in detail.releases.items] == ["1.1.0-rc.1", "0.9.0", "1.0.0"]
    intent = market.intent(buyer, listing_id)
    assert intent.release_id == first.release_id


def test_x_cat_03_latest_falls_back_as_releases_are_revoked(market: Market) -> None:
    """Stable by precedence, then non-semver by publish time, then pre-releases."""
    publisher = market.publisher()
    view, first = market.published(publisher, "2.0.0")
    listing_id = view.listing.listing_id
    by_version = {first.version: first}
    for version in ("1.5.0", "v3", "nightly", "3.0.0-beta.2", "3.0.0-beta.10"):
        market.clock.advance(10)
        by_version[version] = market.release(publisher, listing_id, version)

    def latest() -> str | None:
        found = market.fp.catalog.listing(listing_id).latest_release
        return None if found is None else found.version

    expected = ["2.0.0", "1.5.0", "nightly", "v3", "3.0.0-beta.10", "3.0.0-beta.2", None]
    for want in expected:
        assert latest() == want
        if want is None:
            break
        market.fp.publishing.revoke_release(
            publisher, by_version[want].release_id, {"reason": "test"}, idempotency_key=new_key()
        )


def test_x_cat_03_the_publisher_is_told_when_a_version_is_not_semver(market: Market) -> None:
    """A non-semver version is accepted with a warning on ``version``; semver has none."""
    publisher = market.publisher()
    view = market.draft(publisher)
    listing_id = view.listing.listing_id
    loose = market.release(publisher, listing_id, "v1.0")
    strict = market.release(publisher, listing_id, "1.0.0")
    (warning,) = views.release_warnings(loose)
    assert warning.field_name == "version"
    assert "not a semantic version" in warning.message
    assert views.release_warnings(strict) == ()


# --------------------------------------------------------------------------- targets by asset kind


def _listing_of_kind(market: Market, publisher: Call, kind: AssetKind) -> str:
    refs = {
        AssetKind.WHS_AGENT: {"whsAgentId": "agent-1"},
        AssetKind.AGENTROMATIC_WORKFLOW: {"agentromaticWorkflowId": "wf-1"},
        AssetKind.SPEC_ASSET: {"specAssetId": "spec-1"},
    }[kind]
    listing_id = market.draft(publisher, assetKind=kind.value).listing.listing_id
    market.release(publisher, listing_id, "1.0.0", refs=refs)
    market.fp.publishing.change_status(
        publisher, listing_id, {"status": "published"}, idempotency_key=new_key()
    )
    return listing_id


ACCEPTED = {
    AssetKind.WHS_AGENT: {"whs", "agentelic"},
    AssetKind.AGENTROMATIC_WORKFLOW: {"agentromatic", "agentelic"},
    AssetKind.SPEC_ASSET: {"agentelic"},
}


@pytest.mark.parametrize("kind", list(AssetKind))
def test_i_inst_05_intents_only_for_target_systems_that_accept_the_asset_kind(
    market: Market, kind: AssetKind
) -> None:
    """Each kind installs into its accepted targets; any other target fails on targetSystem."""
    publisher, buyer = market.publisher(), market.user("buyer")
    listing_id = _listing_of_kind(market, publisher, kind)
    for target in InstallTargetSystem:
        if target.value in ACCEPTED[kind]:
            assert market.intent(buyer, listing_id, target.value).target_system is target
            continue
        intents_before, audit_before = dict(market.store.intents), len(market.store.audit)
        with pytest.raises(ValidationFailed) as info:
            market.intent(buyer, listing_id, target.value)
        (field,) = info.value.fields
        assert field.field_name == "targetSystem"
        assert all(name in field.message for name in ACCEPTED[kind])
        assert market.store.intents == intents_before
        assert len(market.store.audit) == audit_before


@pytest.mark.parametrize("kind", list(AssetKind))
def test_i_pub_03_listing_views_show_the_accepted_target_systems(
    market: Market, kind: AssetKind
) -> None:
    """The public listing (search and detail) and the owner's view carry the accepted targets."""
    publisher = market.publisher()
    listing_id = _listing_of_kind(market, publisher, kind)
    detail = market.fp.catalog.listing(listing_id)
    assert {t.value for t in detail.listing.target_systems} == ACCEPTED[kind]
    (hit,) = market.fp.catalog.search({"assetKind": kind.value}).items
    assert hit.target_systems == detail.listing.target_systems
    own = market.fp.publishing.get_listing(publisher, listing_id)
    assert own.target_systems == detail.listing.target_systems


def test_i_int_04_an_intent_for_a_target_that_does_not_accept_the_kind_does_not_redeem(
    market: Market,
) -> None:
    """An intent stored before the rule (whs_agent → agentromatic): refused at issue and redeem."""
    publisher, buyer = market.publisher(), market.user("buyer")
    listing_id = _listing_of_kind(market, publisher, AssetKind.WHS_AGENT)
    intent = market.intent(buyer, listing_id, "whs")
    issued = market.token(buyer, intent.install_intent_id)
    # Rewrite the stored intent and token as an older server would have accepted them.
    wrong = InstallTargetSystem.AGENTROMATIC
    market.store.intents[intent.install_intent_id] = attrs.evolve(intent, target_system=wrong)
    token = market.store.tokens[issued.token_id]
    market.store.tokens[issued.token_id] = attrs.evolve(token, target_system=wrong)
    with pytest.raises(NotFound):
        market.redeem(issued.install_token or "", target="agentromatic", source="agentromatic")
    with pytest.raises(Conflict):
        market.token(buyer, intent.install_intent_id)


# --------------------------------------------------------------------------- suspension, withdrawal


def _suspend(market: Market, admin: Call, listing_id: str) -> None:
    market.fp.admin.suspend_listing(
        admin, listing_id, {"reason": "malware report"}, idempotency_key=new_key()
    )


def _status(market: Market, publisher: Call, listing_id: str, status: str) -> None:
    market.fp.publishing.change_status(
        publisher, listing_id, {"status": status}, idempotency_key=new_key()
    )


def test_i_int_04_a_token_minted_before_suspension_never_redeems(market: Market) -> None:
    """Suspension revokes issued tokens: not redeemable then, nor after the suspension is lifted."""
    publisher, buyer, admin = market.publisher(), market.user("buyer"), market.admin()
    view, _ = market.published(publisher)
    listing_id = view.listing.listing_id
    intent = market.intent(buyer, listing_id)
    issued = market.token(buyer, intent.install_intent_id)
    _suspend(market, admin, listing_id)
    assert market.store.tokens[issued.token_id].status is InstallTokenStatus.REVOKED
    suspended_event = market.store.audit[-1]
    assert suspended_event.type == "listing.suspended"
    assert suspended_event.details["revokedTokens"] == 1
    with pytest.raises(NotFound):
        market.redeem(issued.install_token or "")
    with pytest.raises(Conflict):  # no new token while suspended
        market.token(buyer, intent.install_intent_id)
    market.fp.admin.unsuspend_listing(admin, listing_id, None, idempotency_key=new_key())
    with pytest.raises(NotFound):
        market.redeem(issued.install_token or "")
    # The intent stayed open: once lifted (unlisted), a new token redeems.
    fresh = market.token(buyer, intent.install_intent_id)
    assert market.redeem(fresh.install_token or "").install_intent.status is (
        InstallIntentStatus.REDEEMED
    )


def test_i_int_04_a_token_minted_before_the_listing_went_back_to_draft_never_redeems(
    market: Market,
) -> None:
    """Back to draft revokes issued tokens and blocks new ones until published again."""
    publisher, buyer = market.publisher(), market.user("buyer")
    view, _ = market.published(publisher)
    listing_id = view.listing.listing_id
    intent = market.intent(buyer, listing_id)
    issued = market.token(buyer, intent.install_intent_id)
    _status(market, publisher, listing_id, "draft")
    event = market.store.audit[-1]
    assert event.details == {"from": "published", "to": "draft", "revokedTokens": 1}
    with pytest.raises(NotFound):
        market.redeem(issued.install_token or "")
    with pytest.raises(Conflict):
        market.token(buyer, intent.install_intent_id)
    _status(market, publisher, listing_id, "published")
    with pytest.raises(NotFound):
        market.redeem(issued.install_token or "")
    fresh = market.token(buyer, intent.install_intent_id)
    assert market.redeem(fresh.install_token or "").install_intent.install_intent_id == (
        intent.install_intent_id
    )


def test_i_int_04_unlisting_keeps_issued_tokens_redeemable(market: Market) -> None:
    """Unlisted hides a listing from the catalogue; intents and tokens already out keep working."""
    publisher, buyer = market.publisher(), market.user("buyer")
    view, _ = market.published(publisher)
    listing_id = view.listing.listing_id
    intent = market.intent(buyer, listing_id)
    issued = market.token(buyer, intent.install_intent_id)
    _status(market, publisher, listing_id, "unlisted")
    assert "revokedTokens" not in market.store.audit[-1].details
    assert market.redeem(issued.install_token or "").install_intent.status is (
        InstallIntentStatus.REDEEMED
    )


def test_i_int_04_suspension_revokes_only_that_listings_live_tokens(market: Market) -> None:
    """Tokens of other listings stay issued; already expired ones are stored as expired."""
    publisher, buyer, admin = market.publisher(), market.user("buyer"), market.admin()
    view, _ = market.published(publisher)
    other, _ = market.published(publisher)
    listing_id = view.listing.listing_id
    old = market.token(buyer, market.intent(buyer, listing_id).install_intent_id, ttl_ms=60_000)
    market.clock.advance(60_000)
    live = market.token(buyer, market.intent(buyer, listing_id).install_intent_id)
    elsewhere = market.token(
        buyer, market.intent(buyer, other.listing.listing_id).install_intent_id
    )
    _suspend(market, admin, listing_id)
    statuses = {t: market.store.tokens[t].status for t in (old.token_id, live.token_id)}
    assert statuses == {
        old.token_id: InstallTokenStatus.EXPIRED,
        live.token_id: InstallTokenStatus.REVOKED,
    }
    assert market.store.audit[-1].details["revokedTokens"] == 1
    assert market.store.tokens[elsewhere.token_id].status is InstallTokenStatus.ISSUED
    assert market.redeem(elsewhere.install_token or "").install_intent.status is (
        InstallIntentStatus.REDEEMED
    )

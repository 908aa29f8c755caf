"""Catalogue content rules over HTTP on SQLite and PostgreSQL (issue 14).

X-CAT-03: ``latestRelease`` by semantic-version precedence, the intent without
``releaseId`` pinning it, and the publisher's warning for a non-semver version
(ADR 0023); the target systems of each asset kind (ADR 0024); suspension and
withdrawal to draft revoking issued tokens (ADR 0025).
"""

from __future__ import annotations

from typing import Any

from contract.http_checks import assert_error
from contract.http_harness import Api

# --------------------------------------------------------------------------- X-CAT-03


def _latest(api: Api, listing_id: str) -> Any:
    response = api.get(f"/v1/public/listings/{listing_id}")
    assert response.status_code == 200, response.text
    return response.json()["listingDetail"]["latestRelease"]


def test_x_cat_03_latest_release_is_the_highest_version_not_the_newest(api: Api) -> None:
    """1.0.0, then a 0.9.0 backport and a 2.0.0-rc.1: latest stays 1.0.0, and pins intents."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, first = api.published(publisher, "1.0.0")
    listing_id = listing["listingId"]
    for version in ("0.9.0", "2.0.0-rc.1"):
        api.clock.advance(5)
        api.publish_release(publisher, listing_id, version)
    assert _latest(api, listing_id)["releaseId"] == first["releaseId"]
    response = api.post(
        "/v1/install/intents", buyer, {"listingId": listing_id, "targetSystem": "whs"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["installIntent"]["releaseId"] == first["releaseId"]
    # Revoked, the highest remaining stable version takes over; pre-releases come last.
    api.post(f"/v1/publisher/releases/{first['releaseId']}/revoke", publisher, {"reason": "x"})
    assert _latest(api, listing_id)["version"] == "0.9.0"


def test_x_cat_03_a_non_semver_version_is_accepted_with_a_warning(api: Api) -> None:
    """B6 answers ``warnings`` naming ``version`` for ``v1.0``; none for ``1.0.0``."""
    publisher = api.publisher()
    listing_id = api.create_listing(publisher)["listingId"]
    loose = api.publish_release(publisher, listing_id, "v1.0")
    assert [w["fieldName"] for w in loose["warnings"]] == ["version"]
    assert "semantic version" in loose["warnings"][0]["message"]
    strict = api.publish_release(publisher, listing_id, "1.0.0")
    assert strict["warnings"] == []
    owner_list = api.get(f"/v1/publisher/listings/{listing_id}/releases", publisher).json()
    assert {r["version"]: len(r["warnings"]) for r in owner_list["items"]} == {
        "v1.0": 1,
        "1.0.0": 0,
    }
    # Non-semver ranks below every semantic version, whatever the publish order.
    api.set_status(publisher, listing_id, "published")
    assert _latest(api, listing_id)["version"] == "1.0.0"


# --------------------------------------------------------------------------- targets by asset kind


def test_i_inst_05_a_target_that_does_not_accept_the_kind_is_refused(api: Api) -> None:
    """A whs_agent listing shows its targets; an agentromatic intent fails on targetSystem."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, _ = api.published(publisher)
    listing_id = listing["listingId"]
    detail = api.get(f"/v1/public/listings/{listing_id}").json()["listingDetail"]
    assert detail["listing"]["targetSystems"] == ["whs", "agentelic"]
    hits = api.get("/v1/public/listings/search").json()["items"]
    assert [h["targetSystems"] for h in hits] == [["whs", "agentelic"]]
    own = api.get(f"/v1/publisher/listings/{listing_id}", publisher).json()["listing"]
    assert own["targetSystems"] == ["whs", "agentelic"]
    refused = api.post(
        "/v1/install/intents", buyer, {"listingId": listing_id, "targetSystem": "agentromatic"}
    )
    assert_error(refused, 400, "VALIDATION_FAILED")
    fields = refused.json()["error"]["details"]["fields"]
    assert [f["fieldName"] for f in fields] == ["targetSystem"]
    assert api.get("/v1/install/intents", buyer).json()["items"] == []
    accepted = api.post(
        "/v1/install/intents", buyer, {"listingId": listing_id, "targetSystem": "agentelic"}
    )
    assert accepted.status_code == 201, accepted.text


# --------------------------------------------------------------------------- suspension, withdrawal


def test_i_int_04_tokens_minted_before_suspension_or_withdrawal_never_redeem(api: Api) -> None:
    """Suspend, lift; withdraw to draft, republish: the old tokens stay NOT_FOUND, new ones work."""
    publisher, buyer, admin = api.publisher(), api.buyer(), api.admin()
    listing, release = api.published(publisher)
    listing_id = listing["listingId"]
    suspended_intent = api.intent(buyer, listing_id, release["releaseId"])
    before_suspension = api.token(buyer, suspended_intent["installIntentId"])["installToken"]
    withdrawn_intent = api.intent(buyer, listing_id, release["releaseId"])
    before_withdrawal = api.token(buyer, withdrawn_intent["installIntentId"])["installToken"]

    response = api.post(f"/v1/admin/listings/{listing_id}/suspend", admin, {"reason": "abuse"})
    assert response.status_code == 200, response.text
    assert_error(api.redeem(before_suspension), 404, "NOT_FOUND")
    refused = api.post(f"/v1/install/intents/{suspended_intent['installIntentId']}/token", buyer)
    assert_error(refused, 409, "CONFLICT")
    response = api.post(f"/v1/admin/listings/{listing_id}/unsuspend", admin, {})
    assert response.status_code == 200, response.text
    assert_error(api.redeem(before_suspension), 404, "NOT_FOUND")
    assert_error(api.redeem(before_withdrawal), 404, "NOT_FOUND")  # revoked by the suspension

    assert api.set_status(publisher, listing_id, "published").status_code == 200
    again = api.token(buyer, withdrawn_intent["installIntentId"])["installToken"]
    assert api.set_status(publisher, listing_id, "draft").status_code == 200
    assert_error(api.redeem(again), 404, "NOT_FOUND")
    assert api.set_status(publisher, listing_id, "published").status_code == 200
    assert_error(api.redeem(again), 404, "NOT_FOUND")
    fresh = api.token(buyer, withdrawn_intent["installIntentId"])["installToken"]
    redeemed = api.redeem(fresh)
    assert redeemed.status_code == 200, redeemed.text
    assert (
        redeemed.json()["installIntent"]["installIntentId"] == (withdrawn_intent["installIntentId"])
    )

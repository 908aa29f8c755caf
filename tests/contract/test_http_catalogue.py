"""Contract §14's P1 additions over HTTP: ``verified=true`` and ``sort=installs``."""

from __future__ import annotations

from typing import Any

from contract.http_checks import assert_error, walk_pages
from contract.http_harness import Api, Caller

SEARCH = "/v1/public/listings/search"
DAY = 24 * 60 * 60 * 1000


def _verify(api: Api, admin: Caller, publisher: Caller, status: str) -> None:
    response = api.post(
        f"/v1/admin/publishers/{publisher.user_id}/verification",
        admin,
        {"status": status, "reason": "checked"},
    )
    assert response.status_code == 200, response.text


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["listingId"] for item in items]


def _search(api: Api, **params: Any) -> dict[str, Any]:
    response = api.get(SEARCH, params=params)
    assert response.status_code == 200, (params, response.text)
    page: dict[str, Any] = response.json()
    return page


def test_x_cat_01_verified_true_lists_verified_publishers_only(api: Api) -> None:
    """verified=true keeps the listings of verified publishers, whatever the words, filters
    and sort, page by page; a withdrawn verification drops them; verified=false filters
    nothing."""
    admin = api.admin()
    trusted, unknown, failed = api.publisher("Trusted"), api.publisher("Unknown"), api.publisher()
    _verify(api, admin, trusted, "verified")
    _verify(api, admin, failed, "failed")
    mine = {
        publisher.user_id: [
            api.published(publisher, name=f"Agent {n}", tags=["support"])[0]["listingId"]
            for n in range(2)
        ]
        for publisher in (trusted, unknown, failed)
    }
    everything = {listing for listings in mine.values() for listing in listings}
    for params in ({}, {"q": "agent"}, {"tags": "support"}, {"sort": "name"}, {"sort": "installs"}):
        items = walk_pages(api, SEARCH, limit=1, params={**params, "verified": "true"})
        assert set(_ids(items)) == set(mine[trusted.user_id]), params
        assert {item["publisher"]["verified"]["status"] for item in items} == {"verified"}
        unfiltered = walk_pages(api, SEARCH, limit=50, params={**params, "verified": "false"})
        assert set(_ids(unfiltered)) == everything, params
    _verify(api, admin, trusted, "unverified")
    assert _search(api, verified="true") == {"items": [], "nextCursor": None}


def test_x_cat_01_verified_takes_only_true_or_false(api: Api) -> None:
    """Any other value is VALIDATION_FAILED naming the field; a cursor of a verified search
    does not continue an unfiltered one."""
    for value in ("yes", "1", "TRUE", ""):
        assert_error(
            api.get(SEARCH, params={"verified": value}), 400, "VALIDATION_FAILED", "verified"
        )
    publisher = api.publisher()
    admin = api.admin()
    _verify(api, admin, publisher, "verified")
    for n in range(2):
        api.published(publisher, name=f"Agent {n}")
    cursor = _search(api, verified="true", limit=1)["nextCursor"]
    assert cursor
    assert_error(api.get(SEARCH, params={"cursor": cursor}), 400, "VALIDATION_FAILED", "cursor")


def test_x_cat_02_sort_installs_orders_by_attempts_in_30_days_then_id(api: Api) -> None:
    """sort=installs: most install attempts of the last 30 days first (the count the item's
    stats show), ties and listings never installed by id descending; cursors walk every
    listing once; attempts older than 30 days stop counting."""
    publisher, buyer = api.publisher(), api.buyer()
    published = [api.published(publisher, name=f"Agent {n}") for n in range(4)]
    (l0, _), (l1, r1), (l2, r2), (l3, r3) = published
    api.clock.advance(DAY)
    api.intent(buyer, l2["listingId"], r2["releaseId"])
    api.clock.advance(2 * DAY)
    for _ in range(2):
        api.intent(buyer, l1["listingId"], r1["releaseId"])
    api.intent(buyer, l3["listingId"], r3["releaseId"])
    by_id = sorted((l0["listingId"], l2["listingId"], l3["listingId"]), reverse=True)
    tied = [i for i in by_id if i != l0["listingId"]]
    want = [l1["listingId"], *tied, l0["listingId"]]
    for limit in (1, 2, 50):
        items = walk_pages(api, SEARCH, limit=limit, params={"sort": "installs"})
        assert _ids(items) == want, limit
    first = _search(api, sort="installs")["items"]
    assert [item["stats"]["installAttempts30d"] for item in first] == [2, 1, 1, 0]
    assert _ids(_search(api, sort="installs", q="agent")["items"]) == want
    # Just over 30 days after the first attempt it no longer counts: l2 joins the zeros.
    api.clock.advance(28 * DAY + 1)
    later = _search(api, sort="installs")["items"]
    zeros = sorted((l0["listingId"], l2["listingId"]), reverse=True)
    assert _ids(later)[:2] == [l1["listingId"], l3["listingId"]]
    assert _ids(later)[2:] == zeros
    assert [item["stats"]["installAttempts30d"] for item in later] == [2, 1, 0, 0]

"""Keyset pagination of every list endpoint over HTTP (P1, P3, B1, B7, I2, A4) on SQLite
and PostgreSQL: I-PUB-05 (public lists) and R-PAG-01 (stable cursors, every list).

Walking all pages with a small ``limit`` returns every item of the full list exactly
once, in its order, and ends with ``nextCursor: null``. ``limit`` outside 1..200, a
malformed or tampered cursor, a cursor from another endpoint or query, and an unknown
query parameter are each ``VALIDATION_FAILED`` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import httpx

from contract.http_checks import assert_error, walk_pages
from contract.http_harness import Api, Caller

SEARCH = "/v1/public/listings/search"
SORTS = ("updated", "created", "name", "relevance")
DAY_MS = 24 * 60 * 60 * 1000
B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@attrs.frozen
class Endpoint:
    """One list endpoint as a caller sees it."""

    name: str
    path: str
    caller: Caller | None
    params: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Catalogue:
    publisher: Caller
    other_publisher: Caller
    buyer: Caller
    other_buyer: Caller
    admin: Caller
    listing_ids: list[str]
    draft_id: str
    #: The listing with several releases (one of them revoked).
    busy_id: str
    revoked_release_id: str
    intent_ids: list[str]

    def endpoints(self) -> list[Endpoint]:
        """Every list endpoint, each with at least two items."""
        return [
            Endpoint("P1", SEARCH, None),
            Endpoint("P3", f"/v1/public/listings/{self.busy_id}/releases", None),
            Endpoint("B1", "/v1/publisher/listings", self.publisher),
            Endpoint("B7", f"/v1/publisher/listings/{self.busy_id}/releases", self.publisher),
            Endpoint("I2", "/v1/install/intents", self.buyer),
            Endpoint("A4", "/v1/admin/audit", self.admin),
        ]


def _revoke(api: Api, publisher: Caller, release_id: str) -> None:
    response = api.post(f"/v1/publisher/releases/{release_id}/revoke", publisher, {})
    assert response.status_code == 200, response.text


NAMES = ("Echo agent", "alpha agent", "Delta agent", "charlie agent", "Bravo agent")
#: Names that collate differently by byte, by case and by locale, with exact and
#: case-folded duplicates: the name sort's keyset must still be one total order.
TRICKY_NAMES = (
    "Éclair agent",
    "eclair agent",
    "Straße agent",
    "STRASSE agent",
    "ß agent",
    "alpha agent",
    "Alpha agent",
    "alpha agent",
    "_under agent",
    "Ω agent",
)


def _catalogue(
    api: Api,
    *,
    listings: int = 5,
    releases: int = 4,
    intents: int = 5,
    names: tuple[str, ...] = NAMES,
) -> Catalogue:
    """Published listings (some sharing a timestamp), a draft, a listing with several
    releases (one revoked), intents in several states, and the audit trail of it all."""
    publisher, other_publisher = api.publisher(), api.publisher()
    buyer, other_buyer, admin = api.buyer(), api.buyer(), api.admin()
    listing_ids = []
    first_release = {}
    for index in range(listings):
        api.clock.advance(10 if index % 2 else 0)
        listing, release = api.published(
            publisher, name=names[index % len(names)], summary="agent " * (index % 3)
        )
        listing_ids.append(listing["listingId"])
        first_release[listing["listingId"]] = release
    draft = api.create_listing(publisher, name="Zulu agent draft")
    api.create_listing(other_publisher, name="Other agent")
    busy_id = listing_ids[0]
    revoked_release_id = ""
    for minor in range(1, releases):
        api.clock.advance(minor % 2)  # some releases share a timestamp
        release = api.publish_release(publisher, busy_id, f"1.{minor}.0")
        if minor == 2:
            revoked_release_id = release["releaseId"]
            _revoke(api, publisher, revoked_release_id)
    intent_ids = []
    release_id = first_release[listing_ids[-1]]["releaseId"]
    for index in range(intents):
        api.clock.advance(index % 2)
        intent = api.intent(buyer, listing_ids[-1], release_id)
        intent_ids.append(intent["installIntentId"])
        if index == 1:
            api.token(buyer, intent["installIntentId"])
    api.intent(other_buyer, listing_ids[-1], release_id)
    return Catalogue(
        publisher=publisher,
        other_publisher=other_publisher,
        buyer=buyer,
        other_buyer=other_buyer,
        admin=admin,
        listing_ids=listing_ids,
        draft_id=draft["listingId"],
        busy_id=busy_id,
        revoked_release_id=revoked_release_id,
        intent_ids=intent_ids,
    )


def _full(api: Api, path: str, caller: Caller | None, params: dict[str, str]) -> list[Any]:
    response = api.get(path, caller, params={**params, "limit": "200"})
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["nextCursor"] is None
    items: list[Any] = page["items"]
    return items


def _assert_walks(
    api: Api,
    path: str,
    caller: Caller | None,
    params: dict[str, str],
    key: Callable[[dict[str, Any]], str],
    limits: tuple[int, ...] = (1, 2, 3),
) -> list[str]:
    """Walking with each limit gives exactly the full list's ids, once each, in order."""
    full = [key(item) for item in _full(api, path, caller, params)]
    assert len(set(full)) == len(full), full
    for limit in limits:
        walked = [key(item) for item in walk_pages(api, path, caller, limit=limit, params=params)]
        assert walked == full, (path, params, limit)
    return full


def _next_cursor(api: Api, endpoint: Endpoint, **params: str) -> str:
    response = api.get(
        endpoint.path, endpoint.caller, params={**endpoint.params, **params, "limit": "1"}
    )
    assert response.status_code == 200, response.text
    cursor = response.json()["nextCursor"]
    assert isinstance(cursor, str), (endpoint.name, response.text)
    return cursor


#: ``_with_cursor``'s default caller: the endpoint's own.
SAME = Caller("same", "same", "same")


def _with_cursor(
    api: Api,
    endpoint: Endpoint,
    cursor: str,
    caller: Caller | None = SAME,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """One page of ``endpoint`` (limit 1) from ``cursor``, as ``caller`` (default: its own)."""
    who = endpoint.caller if caller is SAME else caller
    return api.get(
        endpoint.path,
        who,
        params={**endpoint.params, **(params or {}), "limit": "1", "cursor": cursor},
    )


def _flip(cursor: str, index: int) -> str:
    """``cursor`` with the character at ``index`` replaced by another base64url one."""
    old = cursor[index]
    new = B64_CHARS[(B64_CHARS.index(old) + 1) % len(B64_CHARS)] if old in B64_CHARS else "A"
    flipped = cursor[:index] + new + cursor[index + 1 :]
    assert flipped != cursor
    return flipped


# --------------------------------------------------------------------------- walks


def test_i_pub_05_search_walks_every_published_listing_once_in_each_sort(api: Api) -> None:
    """P1 with every sort: pages of 1, 2 and 3 return the full ordered result exactly once."""
    catalogue = _catalogue(
        api, listings=len(TRICKY_NAMES), releases=1, intents=0, names=TRICKY_NAMES
    )
    expected = set(catalogue.listing_ids)
    for sort in SORTS:
        params = {"sort": sort}
        if sort == "relevance":
            params["q"] = "agent"
        full_items = _full(api, SEARCH, None, params)
        assert {item["listingId"] for item in full_items} == expected, sort
        if sort == "name":
            names = [item["name"].casefold() for item in full_items]
            assert names == sorted(names)
        if sort in ("updated", "created"):
            field = "updatedAtMs" if sort == "updated" else "createdAtMs"
            keys = [(item[field], item["listingId"]) for item in full_items]
            assert keys == sorted(keys, reverse=True)
        _assert_walks(api, SEARCH, None, params, lambda item: item["listingId"], (1, 4))
    # Filters narrow the walk too: the tag filter with pages of 2.
    walked = walk_pages(api, SEARCH, limit=2, params={"tags": "support", "sort": "name"})
    assert {item["listingId"] for item in walked} == expected


def test_i_pub_05_public_releases_walk_with_and_without_revoked(api: Api) -> None:
    """P3 pages through visible releases, and with includeRevoked through all, exactly once."""
    catalogue = _catalogue(api, listings=1, releases=6, intents=0)
    path = f"/v1/public/listings/{catalogue.busy_id}/releases"
    visible = _assert_walks(api, path, None, {}, lambda r: r["releaseId"])
    everything = _assert_walks(
        api, path, None, {"includeRevoked": "true"}, lambda r: r["releaseId"]
    )
    assert len(visible) == 5
    assert len(everything) == 6
    assert catalogue.revoked_release_id not in visible
    assert [r for r in everything if r != catalogue.revoked_release_id] == visible


def test_r_pag_01_publisher_lists_walk_every_own_item_once(api: Api) -> None:
    """B1 (with and without a status filter) and B7 walk the owner's items exactly once."""
    catalogue = _catalogue(api, listings=4, releases=5, intents=0)
    path = "/v1/publisher/listings"
    own = _assert_walks(api, path, catalogue.publisher, {}, lambda item: item["listingId"])
    assert set(own) == {*catalogue.listing_ids, catalogue.draft_id}
    published = _assert_walks(
        api, path, catalogue.publisher, {"status": "published"}, lambda item: item["listingId"]
    )
    assert set(published) == set(catalogue.listing_ids)
    releases_path = f"/v1/publisher/listings/{catalogue.busy_id}/releases"
    releases = _assert_walks(api, releases_path, catalogue.publisher, {}, lambda r: r["releaseId"])
    assert len(releases) == 5
    assert catalogue.revoked_release_id in releases


def test_r_pag_01_intents_walk_every_own_intent_once(api: Api) -> None:
    """I2 walks the buyer's intents once each, also filtered by a status observed on read."""
    catalogue = _catalogue(api, listings=1, releases=1, intents=3)
    older = catalogue.intent_ids  # [1] holds a token
    api.clock.advance(DAY_MS // 2)
    release_id = _full(api, f"/v1/public/listings/{catalogue.busy_id}/releases", None, {})[0][
        "releaseId"
    ]
    newer = [api.intent(catalogue.buyer, catalogue.busy_id, release_id) for _ in range(4)]
    newer_ids = [intent["installIntentId"] for intent in newer]
    api.token(catalogue.buyer, newer_ids[2])
    api.clock.advance(DAY_MS // 2 + 10)  # the older intents (one with a token) have expired

    def key(intent: dict[str, Any]) -> str:
        return str(intent["installIntentId"])

    path = "/v1/install/intents"
    walked = _assert_walks(api, path, catalogue.buyer, {}, key)
    assert walked == list(reversed(older + newer_ids))
    by_status = {
        status: _assert_walks(api, path, catalogue.buyer, {"status": status}, key, (1, 2))
        for status in ("expired", "created", "token_issued")
    }
    assert by_status == {
        "expired": list(reversed(older)),
        "created": [newer_ids[3], newer_ids[1], newer_ids[0]],
        "token_issued": [newer_ids[2]],
    }
    other = _assert_walks(api, path, catalogue.other_buyer, {}, key)
    assert len(other) == 1
    assert not set(other) & set(walked)


def test_r_pag_01_audit_walks_every_event_once(api: Api) -> None:
    """A4 (unfiltered and by type, listing and actor) walks every event exactly once."""
    catalogue = _catalogue(api, listings=2, releases=3, intents=2)
    path = "/v1/admin/audit"
    events = _assert_walks(api, path, catalogue.admin, {}, lambda e: e["eventId"], limits=(2, 7))
    assert len(events) >= 15
    for params in (
        {"type": "release.published"},
        {"listingId": catalogue.busy_id},
        {"actorUserId": catalogue.buyer.user_id},
    ):
        filtered = _assert_walks(
            api, path, catalogue.admin, params, lambda e: e["eventId"], limits=(1, 2)
        )
        assert len(filtered) >= 2, params
        assert filtered == [e for e in events if e in set(filtered)], params


# --------------------------------------------------------------------------- limit


BAD_LIMITS = ("0", "201", "abc", "-1", "1.5", "", " 5", "1e2", "\uff15", "0x10")


def test_r_pag_01_limit_outside_1_to_200_is_validation_failed(api: Api) -> None:
    """Every list endpoint refuses a limit that is not an integer in 1..200, naming ``limit``."""
    catalogue = _catalogue(api, listings=1, releases=1, intents=1)
    for endpoint in catalogue.endpoints():
        for limit in BAD_LIMITS:
            response = api.get(
                endpoint.path, endpoint.caller, params={**endpoint.params, "limit": limit}
            )
            error = assert_error(response, 400, "VALIDATION_FAILED", "limit")
            names = [f["fieldName"] for f in error["details"]["fields"]]
            assert names == ["limit"], (endpoint.name, limit)


def test_r_pag_01_limit_bounds_are_accepted(api: Api) -> None:
    """limit 1 and 200 are accepted everywhere; a repeated limit is refused."""
    catalogue = _catalogue(api, listings=2, releases=2, intents=2)
    for endpoint in catalogue.endpoints():
        one = api.get(endpoint.path, endpoint.caller, params={"limit": "1"})
        assert one.status_code == 200, (endpoint.name, one.text)
        assert len(one.json()["items"]) == 1, endpoint.name
        assert one.json()["nextCursor"] is not None, endpoint.name
        most = api.get(endpoint.path, endpoint.caller, params={"limit": "200"})
        assert most.status_code == 200, (endpoint.name, most.text)
        assert most.json()["nextCursor"] is None, endpoint.name
        assert len(most.json()["items"]) >= 2, endpoint.name
        default = api.get(endpoint.path, endpoint.caller)
        assert default.json() == most.json(), endpoint.name
        repeated = api.get(endpoint.path, endpoint.caller, params={"limit": ["1", "2"]})
        assert_error(repeated, 400, "VALIDATION_FAILED", "limit")


# --------------------------------------------------------------------------- cursor


def test_r_pag_01_malformed_and_tampered_cursors_are_validation_failed(api: Api) -> None:
    """Garbage, truncated, extended, re-signed and bit-flipped cursors fail on ``cursor``."""
    catalogue = _catalogue(api, listings=3, releases=4, intents=3)
    for endpoint in catalogue.endpoints():
        cursor = _next_cursor(api, endpoint)
        body, mac = cursor.split(".")
        second_page = _with_cursor(api, endpoint, cursor)
        assert second_page.status_code == 200, (endpoint.name, second_page.text)
        other_cursor = second_page.json()["nextCursor"]  # the next page's, equally genuine
        assert isinstance(other_cursor, str), endpoint.name
        assert other_cursor != cursor
        bad = [
            "garbage",
            "a.b",
            ".",
            "!!!.???",
            "x" * 3000,
            cursor[:-1],
            cursor + "A",
            cursor + "=",
            body,
            body + mac,
            body + "." + other_cursor.split(".")[1],  # another page's signature
            other_cursor.split(".")[0] + "." + mac,
            _flip(cursor, 0),
            _flip(cursor, len(body) // 2),
            _flip(cursor, len(body) - 1),
            _flip(cursor, len(body) + 1),
            _flip(cursor, len(cursor) - 1),
            cursor.swapcase(),
        ]
        for tampered in bad:
            response = _with_cursor(api, endpoint, tampered)
            error = assert_error(response, 400, "VALIDATION_FAILED", "cursor")
            assert [f["fieldName"] for f in error["details"]["fields"]] == ["cursor"], (
                endpoint.name,
                tampered,
            )
            assert tampered not in response.text or len(tampered) < 4


def test_r_pag_01_cursor_from_another_endpoint_or_query_is_validation_failed(api: Api) -> None:
    """A cursor continues only its own query: another endpoint, filter, sort or caller fails."""
    catalogue = _catalogue(api, listings=3, releases=3, intents=3)
    endpoints = catalogue.endpoints()
    cursors = {endpoint.name: _next_cursor(api, endpoint) for endpoint in endpoints}
    for endpoint in endpoints:
        for name, cursor in cursors.items():
            if name == endpoint.name:
                continue
            response = _with_cursor(api, endpoint, cursor)
            assert_error(response, 400, "VALIDATION_FAILED", "cursor")

    p1, p3, b1, _b7, i2, a4 = endpoints
    mismatches = [
        # (endpoint, cursor taken with these params, used with those params, caller)
        (p1, {"sort": "updated"}, {"sort": "created"}, SAME),
        (p1, {"sort": "name"}, {"sort": "updated"}, SAME),
        (p1, {"q": "agent"}, {"q": "agent", "sort": "updated"}, SAME),
        (p1, {"q": "agent"}, {"q": "alpha"}, SAME),
        (p1, {}, {"tags": "support"}, SAME),
        (p1, {}, {"assetKind": "whs_agent"}, SAME),
        (p3, {}, {"includeRevoked": "true"}, SAME),
        (b1, {}, {"status": "published"}, SAME),
        (b1, {}, {}, catalogue.other_publisher),
        (i2, {}, {"status": "created"}, SAME),
        (i2, {}, {}, catalogue.other_buyer),
        (a4, {}, {"type": "release.published"}, SAME),
        (a4, {"listingId": catalogue.busy_id}, {"listingId": catalogue.listing_ids[1]}, SAME),
    ]
    for endpoint, taken, used, caller in mismatches:
        cursor = _next_cursor(api, endpoint, **taken)
        assert _with_cursor(api, endpoint, cursor, params=taken).status_code == 200
        response = _with_cursor(api, endpoint, cursor, caller, used)
        assert_error(response, 400, "VALIDATION_FAILED", "cursor")
    # The cursor of another listing's releases does not continue this listing's.
    other_p3 = Endpoint("P3", f"/v1/public/listings/{catalogue.listing_ids[1]}/releases", None)
    api.publish_release(catalogue.publisher, catalogue.listing_ids[1], "9.0.0")
    cursor = _next_cursor(api, other_p3)
    assert_error(_with_cursor(api, p3, cursor), 400, "VALIDATION_FAILED", "cursor")


# --------------------------------------------------------------------------- parameters


def test_r_pag_01_unknown_query_parameters_are_validation_failed(api: Api) -> None:
    """Every list endpoint refuses a parameter it does not define (``offset`` included)."""
    catalogue = _catalogue(api, listings=1, releases=1, intents=1)
    for endpoint in catalogue.endpoints():
        for name in ("bogus", "offset", "page", "Limit"):
            response = api.get(endpoint.path, endpoint.caller, params={name: "1"})
            error = assert_error(response, 400, "VALIDATION_FAILED", name)
            assert [f["fieldName"] for f in error["details"]["fields"]] == [name], endpoint.name
    # Parameters of one list are unknown on another.
    for path, caller, name in (
        ("/v1/publisher/listings/{busy}/releases", catalogue.publisher, "includeRevoked"),
        ("/v1/install/intents", catalogue.buyer, "sort"),
        ("/v1/publisher/listings", catalogue.publisher, "q"),
        ("/v1/public/listings/{busy}/releases", None, "status"),
        ("/v1/admin/audit", catalogue.admin, "status"),
    ):
        response = api.get(path.format(busy=catalogue.busy_id), caller, params={name: "true"})
        assert_error(response, 400, "VALIDATION_FAILED", name)

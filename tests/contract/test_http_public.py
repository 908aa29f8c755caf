"""Public browse and search over HTTP (P1–P3) on SQLite and PostgreSQL: I-PUB-01..05, E2E-01."""

from __future__ import annotations

from typing import Any

from contract.http_checks import assert_error, error_shape, walk_pages
from contract.http_harness import Api, Caller

SEARCH = "/v1/public/listings/search"

#: §5 public listing shape, plus ``targetSystems`` (where it installs, ADR 0024). No
#: ``description`` (the detail carries it beside the listing), no ``moderation``, no
#: ``publisherUserId``.
PUBLIC_LISTING_KEYS = {
    "listingId",
    "assetKind",
    "status",
    "name",
    "summary",
    "tags",
    "categories",
    "publisher",
    "images",
    "links",
    "stats",
    "createdAtMs",
    "updatedAtMs",
    "targetSystems",
}
#: §5 release shape, plus ``revokedAtMs`` (how a revoked release is "marked" beside its
#: status); never ``publisherUserId`` nor ``revokeReason``.
PUBLIC_RELEASE_KEYS = {
    "releaseId",
    "listingId",
    "version",
    "status",
    "compat",
    "refs",
    "artifacts",
    "notes",
    "publishedAtMs",
    "revokedAtMs",
}
PRIVATE_KEYS = {
    "moderation",
    "flagged",
    "publisherUserId",
    "revokeReason",
    "buyerUserId",
    "installIntentId",
    "installToken",
    "email",
    "externalId",
    "roles",
}


def _listing_path(listing_id: str) -> str:
    return f"/v1/public/listings/{listing_id}"


def _search_ids(api: Api, **params: Any) -> list[str]:
    response = api.get(SEARCH, params=params)
    assert response.status_code == 200, (params, response.text)
    return [item["listingId"] for item in response.json()["items"]]


def _moderate(api: Api, admin: Caller, listing_id: str, action: str, reason: str) -> None:
    response = api.post(f"/v1/admin/listings/{listing_id}/{action}", admin, {"reason": reason})
    assert response.status_code == 200, response.text


def _status(api: Api, publisher: Caller, listing_id: str, status: str) -> None:
    response = api.set_status(publisher, listing_id, status)
    assert response.status_code == 200, response.text
    assert response.json()["listing"]["status"] == status


def _revoke(api: Api, publisher: Caller, release_id: str, reason: str = "") -> dict[str, Any]:
    body = {"reason": reason} if reason else {}
    response = api.post(f"/v1/publisher/releases/{release_id}/revoke", publisher, body)
    assert response.status_code == 200, response.text
    release: dict[str, Any] = response.json()["release"]
    return release


def _keys_everywhere(value: object) -> set[str]:
    """Every object key anywhere in a JSON value."""
    if isinstance(value, dict):
        keys = set(value)
        for item in value.values():
            keys |= _keys_everywhere(item)
        return keys
    if isinstance(value, list):
        return set().union(*(_keys_everywhere(item) for item in value)) if value else set()
    return set()


# --------------------------------------------------------------------------- I-PUB-01


def test_i_pub_01_search_returns_published_only(api: Api) -> None:
    """P1 answers published listings only: draft, unlisted, suspended and withdrawn never."""
    publisher, admin = api.publisher(), api.admin()
    published, _ = api.published(publisher, name="Alpha Agent")
    api.create_listing(publisher, name="Alpha Draft")
    unlisted, _ = api.published(publisher, name="Alpha Unlisted")
    _status(api, publisher, unlisted["listingId"], "unlisted")
    suspended, _ = api.published(publisher, name="Alpha Suspended")
    _moderate(api, admin, suspended["listingId"], "suspend", "spam")
    withdrawn, _ = api.published(publisher, name="Alpha Withdrawn")
    _status(api, publisher, withdrawn["listingId"], "draft")

    expected = [published["listingId"]]
    for params in (
        {},
        {"q": "alpha"},
        {"tags": "support"},
        {"categories": "operations"},
        {"assetKind": "whs_agent"},
        {"sort": "name"},
        {"sort": "created"},
        {"sort": "updated"},
        {"q": "alpha", "sort": "relevance"},
    ):
        assert _search_ids(api, **params) == expected, params
    response = api.get(SEARCH)
    assert [item["status"] for item in response.json()["items"]] == ["published"]
    assert _search_ids(api, q="draft") == []
    assert _search_ids(api, q="suspended") == []
    # Signed-in callers, publishers included, see the same public set.
    signed_in = api.get(SEARCH, publisher)
    assert [item["listingId"] for item in signed_in.json()["items"]] == expected


def test_i_pub_01_search_terms_and_filters_narrow_the_published_set(api: Api) -> None:
    """Terms match prefixes of every term; tags (repeated or comma-separated), category and kind."""
    publisher = api.publisher()
    triage, _ = api.published(publisher, name="Support Triage", tags=["support", "triage"])
    billing, _ = api.published(
        publisher,
        name="Billing Helper",
        summary="Answers invoice questions.",
        tags=["billing"],
        categories=["finance"],
    )
    triage_id, billing_id = triage["listingId"], billing["listingId"]
    assert set(_search_ids(api)) == {triage_id, billing_id}
    assert _search_ids(api, q="tri") == [triage_id]
    assert _search_ids(api, q="support triage") == [triage_id]
    assert _search_ids(api, q="support billing") == []
    assert _search_ids(api, tags=["SUPPORT", "triage"]) == [triage_id]
    assert _search_ids(api, tags="support,triage") == [triage_id]
    assert _search_ids(api, tags=["support", "billing"]) == []
    assert _search_ids(api, categories="finance") == [billing_id]
    assert _search_ids(api, assetKind="spec_asset") == []
    assert_error(
        api.get(SEARCH, params={"assetKind": "robot"}), 400, "VALIDATION_FAILED", "assetKind"
    )
    assert_error(api.get(SEARCH, params={"sort": "random"}), 400, "VALIDATION_FAILED", "sort")
    assert_error(api.get(SEARCH, params={"q": "x" * 201}), 400, "VALIDATION_FAILED", "q")


# --------------------------------------------------------------------------- I-PUB-02


def test_i_pub_02_detail_of_a_non_published_listing_is_not_found(api: Api) -> None:
    """P2 and P3 answer one identical NOT_FOUND for draft, unlisted, suspended and unknown ids."""
    publisher, admin = api.publisher(), api.admin()
    draft = api.create_listing(publisher)
    api.publish_release(publisher, draft["listingId"])
    unlisted, _ = api.published(publisher)
    _status(api, publisher, unlisted["listingId"], "unlisted")
    suspended, _ = api.published(publisher)
    _moderate(api, admin, suspended["listingId"], "suspend", "spam")
    visible, _ = api.published(publisher)
    assert api.get(_listing_path(visible["listingId"])).status_code == 200

    hidden = [
        draft["listingId"],
        unlisted["listingId"],
        suspended["listingId"],
        "lst_01JDOESNOTEXIST0000000000",
    ]
    shapes = set()
    for listing_id in hidden:
        for path in (_listing_path(listing_id), _listing_path(listing_id) + "/releases"):
            for caller in (None, publisher):  # even the owner gets no public view
                response = api.get(path, caller)
                assert_error(response, 404, "NOT_FOUND")
                shapes.add(repr(error_shape(response)))
    assert len(shapes) == 1, shapes


def test_i_pub_02_detail_disappears_when_the_publisher_withdraws_it(api: Api) -> None:
    """A published listing moved back to draft stops being publicly readable at once."""
    publisher = api.publisher()
    listing, release = api.published(publisher)
    path = _listing_path(listing["listingId"])
    response = api.get(path)
    assert response.status_code == 200
    detail = response.json()["listingDetail"]
    assert detail["listing"]["listingId"] == listing["listingId"]
    assert detail["latestRelease"]["releaseId"] == release["releaseId"]
    _status(api, publisher, listing["listingId"], "draft")
    assert_error(api.get(path), 404, "NOT_FOUND")
    assert_error(api.get(path + "/releases"), 404, "NOT_FOUND")
    assert _search_ids(api) == []


# --------------------------------------------------------------------------- I-PUB-03


def test_i_pub_03_public_shapes_have_exactly_the_contract_fields(api: Api) -> None:
    """Public listing, detail and release shapes carry exactly §5's keys, nothing private."""
    publisher = api.publisher()
    listing, release = api.published(publisher)
    listing_id = listing["listingId"]
    api.clock.advance(1_000)
    revoked = api.publish_release(publisher, listing_id, "2.0.0")
    _revoke(api, publisher, revoked["releaseId"], "broken")

    (item,) = api.get(SEARCH).json()["items"]
    detail_response = api.get(_listing_path(listing_id))
    detail = detail_response.json()
    assert set(detail) == {"listingDetail"}
    detail = detail["listingDetail"]
    assert set(detail) == {"listing", "description", "latestRelease", "releases"}
    assert set(detail["releases"]) == {"items", "nextCursor"}
    everything = api.get(
        _listing_path(listing_id) + "/releases", params={"includeRevoked": "true"}
    ).json()
    assert set(everything) == {"items", "nextCursor"}

    for public_listing in (item, detail["listing"]):
        assert set(public_listing) == PUBLIC_LISTING_KEYS
        assert set(public_listing["publisher"]) == {"publisherId", "displayName", "verified"}
        assert set(public_listing["publisher"]["verified"]) == {"status", "checkedAtMs", "reason"}
        assert public_listing["publisher"] == {
            "publisherId": publisher.user_id,
            "displayName": "Acme Agents",
            "verified": {"status": "unverified", "checkedAtMs": None, "reason": None},
        }
        assert public_listing["stats"] == {"installAttempts30d": 0}
        assert set(public_listing["links"]) == {"docsUrl", "repoUrl"}
        assert [set(image) for image in public_listing["images"]] == [{"url", "alt"}]
        assert public_listing["status"] == "published"
    assert item == detail["listing"]
    assert set(detail["description"]) == {"format", "markdown", "html"}
    assert detail["description"]["format"] == "markdown"
    assert detail["description"]["html"] == (
        "<h1>Triage</h1>\n<p>It <strong>routes</strong> tickets.</p>\n"
    )

    releases = [detail["latestRelease"], *detail["releases"]["items"], *everything["items"]]
    assert len(releases) == 4
    for public_release in releases:
        assert set(public_release) == PUBLIC_RELEASE_KEYS
        assert set(public_release["notes"]) == {"format", "markdown", "html"}
        assert set(public_release["refs"]) == {
            "whsAgentId",
            "whsDeploymentId",
            "agentromaticWorkflowId",
            "specAssetId",
        }
        assert set(public_release["compat"]) == {
            "minWHSVersion",
            "minAgentromaticVersion",
            "minAgentelicVersion",
        }
        for artifact in public_release["artifacts"]:
            assert set(artifact) == {"kind", "sha256", "sizeBytes", "download"}
            assert set(artifact["download"]) == {"mode", "hint"}
    assert detail["latestRelease"]["releaseId"] == release["releaseId"]
    assert detail["latestRelease"]["refs"]["whsAgentId"] == "agent-123"
    for body in (item, detail, everything):
        assert not PRIVATE_KEYS & _keys_everywhere(body)
    assert "description" not in item
    assert "description" not in detail["listing"]


def test_i_pub_03_private_data_never_reaches_public_output(api: Api) -> None:
    """Moderation and revoke reasons, buyer, intent and token data reach no public response."""
    publisher, admin, buyer = api.publisher(), api.admin(), api.buyer()
    listing, release = api.published(publisher)
    listing_id = listing["listingId"]
    newer = api.publish_release(publisher, listing_id, "2.0.0")
    _revoke(api, publisher, newer["releaseId"], "REVOKE-SECRET-7")
    _moderate(api, admin, listing_id, "suspend", "MODERATION-SECRET-1")
    lifted = api.post(
        f"/v1/admin/listings/{listing_id}/unsuspend", admin, {"reason": "MODERATION-SECRET-2"}
    )
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["listing"]["status"] == "unlisted"  # §4: a lifted suspension is unlisted
    _status(api, publisher, listing_id, "published")
    intent = api.intent(buyer, listing_id, release["releaseId"])
    issued = api.token(buyer, intent["installIntentId"])

    # The secrets are really stored: the owner's console shows the moderation state.
    owner_view = api.get(f"/v1/publisher/listings/{listing_id}", publisher).json()["listing"]
    assert owner_view["moderation"]["reason"] == "MODERATION-SECRET-2"
    console = api.get(f"/v1/publisher/listings/{listing_id}/releases", publisher).json()
    assert "REVOKE-SECRET-7" in [r["revokeReason"] for r in console["items"]]

    responses = [
        api.get(SEARCH),
        api.get(SEARCH, params={"q": "triage"}),
        api.get(SEARCH, buyer, params={"sort": "name"}),
        api.get(_listing_path(listing_id)),
        api.get(_listing_path(listing_id), buyer),
        api.get(_listing_path(listing_id) + "/releases"),
        api.get(_listing_path(listing_id) + "/releases", params={"includeRevoked": "true"}),
    ]
    forbidden = [
        "MODERATION-SECRET-1",
        "MODERATION-SECRET-2",
        "REVOKE-SECRET-7",
        publisher.external_id + '"',  # the identity provider's subject
        publisher.token,
        buyer.user_id,
        buyer.token,
        intent["installIntentId"],
        issued["installToken"],
        "moderation",
        "flagged",
        "publisherUserId",
        "revokeReason",
        "buyerUserId",
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        for secret in forbidden:
            assert secret not in response.text, (secret, str(response.url))
        assert not PRIVATE_KEYS & _keys_everywhere(response.json())
    detail = responses[3].json()["listingDetail"]
    assert detail["listing"]["publisher"]["publisherId"] == publisher.user_id
    assert detail["listing"]["stats"] == {"installAttempts30d": 1}


# --------------------------------------------------------------------------- I-PUB-04


def test_i_pub_04_revoked_releases_are_hidden_unless_asked_for(api: Api) -> None:
    """P2/P3 hide revoked releases; includeRevoked=true lists them marked revoked, no reason."""
    publisher = api.publisher()
    listing, first = api.published(publisher, "1.0.0")
    listing_id = listing["listingId"]
    api.clock.advance(1_000)
    second = api.publish_release(publisher, listing_id, "1.1.0")
    api.clock.advance(1_000)
    third = api.publish_release(publisher, listing_id, "2.0.0")
    api.clock.advance(1_000)
    _revoke(api, publisher, third["releaseId"], "broken build")
    revoked_at = api.clock.now_ms()
    releases_path = _listing_path(listing_id) + "/releases"

    detail = api.get(_listing_path(listing_id)).json()["listingDetail"]
    assert detail["latestRelease"]["releaseId"] == second["releaseId"]
    assert [r["releaseId"] for r in detail["releases"]["items"]] == [
        second["releaseId"],
        first["releaseId"],
    ]
    visible = api.get(releases_path).json()
    assert [r["releaseId"] for r in visible["items"]] == [second["releaseId"], first["releaseId"]]
    assert {r["status"] for r in visible["items"]} == {"published"}
    assert {r["revokedAtMs"] for r in visible["items"]} == {None}
    assert api.get(releases_path, params={"includeRevoked": "false"}).json() == visible

    everything = api.get(releases_path, params={"includeRevoked": "true"})
    assert everything.status_code == 200
    items = everything.json()["items"]
    assert [r["releaseId"] for r in items] == [
        third["releaseId"],
        second["releaseId"],
        first["releaseId"],
    ]
    assert [r["status"] for r in items] == ["revoked", "published", "published"]
    assert items[0]["revokedAtMs"] == revoked_at
    assert items[0]["version"] == "2.0.0"
    assert "broken build" not in everything.text
    assert_error(
        api.get(releases_path, params={"includeRevoked": "yes"}),
        400,
        "VALIDATION_FAILED",
        "includeRevoked",
    )


def test_i_pub_04_listing_whose_releases_are_all_revoked_shows_no_latest(api: Api) -> None:
    """When every release is revoked the detail has no latest release and empty lists."""
    publisher = api.publisher()
    listing, release = api.published(publisher)
    _revoke(api, publisher, release["releaseId"])
    detail = api.get(_listing_path(listing["listingId"])).json()["listingDetail"]
    assert detail["latestRelease"] is None
    assert detail["releases"] == {"items": [], "nextCursor": None}
    releases_path = _listing_path(listing["listingId"]) + "/releases"
    assert api.get(releases_path).json() == {"items": [], "nextCursor": None}
    marked = api.get(releases_path, params={"includeRevoked": "true"}).json()["items"]
    assert [(r["releaseId"], r["status"]) for r in marked] == [(release["releaseId"], "revoked")]


# --------------------------------------------------------------------------- I-PUB-05


def test_i_pub_05_search_pages_end_with_a_null_cursor_and_bounded_limits(api: Api) -> None:
    """Pages of 2 walk 4 listings in two full pages ending in null; limits outside 1..200 fail."""
    publisher = api.publisher()
    ids = []
    for index in range(4):
        api.clock.advance(10 * (index % 2))  # two pairs share a timestamp
        listing, _ = api.published(publisher, name=f"Paged agent {index}")
        ids.append(listing["listingId"])
    first = api.get(SEARCH, params={"limit": "2"}).json()
    assert len(first["items"]) == 2
    assert isinstance(first["nextCursor"], str)
    second = api.get(SEARCH, params={"limit": "2", "cursor": first["nextCursor"]}).json()
    assert len(second["items"]) == 2
    assert second["nextCursor"] is None
    walked = [item["listingId"] for item in first["items"] + second["items"]]
    assert sorted(walked) == sorted(ids)
    assert len(set(walked)) == 4
    full = api.get(SEARCH, params={"limit": "200"}).json()
    assert [item["listingId"] for item in full["items"]] == walked
    assert full["nextCursor"] is None
    assert len(api.get(SEARCH, params={"limit": "3"}).json()["items"]) == 3
    for bad in ("0", "201", "-1", "abc", "2.5", ""):
        assert_error(api.get(SEARCH, params={"limit": bad}), 400, "VALIDATION_FAILED", "limit")


def test_i_pub_05_public_release_pages_walk_every_release_once(api: Api) -> None:
    """P3 pages through every visible release exactly once, newest first, for limits 1..3."""
    publisher = api.publisher()
    listing, _ = api.published(publisher, "0.1.0")
    listing_id = listing["listingId"]
    for minor in range(2, 7):
        api.clock.advance(minor % 2)  # some releases share a timestamp
        api.publish_release(publisher, listing_id, f"0.{minor}.0")
    path = _listing_path(listing_id) + "/releases"
    full = api.get(path).json()
    expected = [r["releaseId"] for r in full["items"]]
    assert len(expected) == 6
    assert full["nextCursor"] is None
    published_at = [r["publishedAtMs"] for r in full["items"]]
    assert published_at == sorted(published_at, reverse=True)
    for limit in (1, 2, 4):
        walked = walk_pages(api, path, limit=limit)
        assert [r["releaseId"] for r in walked] == expected, limit


def test_i_pub_05_detail_release_page_continues_on_the_release_list(api: Api) -> None:
    """P2 embeds the first 50 releases; its nextCursor continues on P3 to the last one."""
    publisher = api.publisher()
    listing, first = api.published(publisher, "0.0.1")
    listing_id = listing["listingId"]
    versions = [f"1.{minor}.0" for minor in range(50)]
    for version in versions:
        api.publish_release(publisher, listing_id, version)
    detail = api.get(_listing_path(listing_id)).json()["listingDetail"]
    page = detail["releases"]
    assert len(page["items"]) == 50
    assert isinstance(page["nextCursor"], str)
    assert detail["latestRelease"] == page["items"][0]
    assert {r["version"] for r in page["items"]} == set(versions)
    rest = api.get(_listing_path(listing_id) + "/releases", params={"cursor": page["nextCursor"]})
    assert rest.status_code == 200, rest.text
    assert rest.json() == {"items": [rest.json()["items"][0]], "nextCursor": None}
    assert rest.json()["items"][0]["releaseId"] == first["releaseId"]
    default_page = api.get(_listing_path(listing_id) + "/releases").json()
    assert default_page == page


# --------------------------------------------------------------------------- E2E-01


def test_e2e_01_browse_and_search_signed_out(api: Api) -> None:
    """A signed-out visitor searches, pages and opens published listings, and cannot write."""
    publisher = api.publisher()
    profile = api.post(
        "/v1/publisher/profile", publisher, {"displayName": "Acme Agents Ltd"}, method="PUT"
    )
    assert profile.status_code == 200, profile.text
    triage, release = api.published(
        publisher,
        name="Support Triage",
        description={"markdown": "Routes <b>tickets</b> [docs](https://docs.example.com)"},
    )
    api.clock.advance(1_000)
    api.published(publisher, name="Billing Bot", tags=["billing"], summary="Invoices.")
    api.create_listing(publisher, name="Secret Support Draft")

    everything = api.get(SEARCH)
    assert everything.status_code == 200
    assert "x-request-id" in everything.headers
    items = everything.json()["items"]
    assert [item["name"] for item in items] == ["Billing Bot", "Support Triage"]
    assert {item["status"] for item in items} == {"published"}
    found = api.get(SEARCH, params={"q": "support"}).json()["items"]
    assert [item["listingId"] for item in found] == [triage["listingId"]]
    assert found[0]["publisher"]["displayName"] == "Acme Agents Ltd"
    by_name = walk_pages(api, SEARCH, limit=1, params={"sort": "name"})
    assert [item["name"] for item in by_name] == ["Billing Bot", "Support Triage"]

    detail_response = api.get(_listing_path(triage["listingId"]))
    assert detail_response.status_code == 200
    detail = detail_response.json()["listingDetail"]
    assert detail["listing"]["name"] == "Support Triage"
    html = detail["description"]["html"]
    assert "&lt;b&gt;" in html
    assert "<b>" not in html
    assert 'href="https://docs.example.com"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert detail["latestRelease"]["version"] == "1.0.0"
    assert detail["latestRelease"]["releaseId"] == release["releaseId"]
    releases = api.get(_listing_path(triage["listingId"]) + "/releases").json()
    assert [r["version"] for r in releases["items"]] == ["1.0.0"]

    # Signed out, nothing beyond reading.
    attempt = api.post(
        "/v1/install/intents",
        None,
        {"listingId": triage["listingId"], "targetSystem": "whs"},
    )
    assert_error(attempt, 401, "UNAUTHENTICATED")
    assert_error(api.get("/v1/install/intents"), 401, "UNAUTHENTICATED")
    assert_error(api.get("/v1/publisher/listings"), 401, "UNAUTHENTICATED")

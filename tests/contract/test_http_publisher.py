"""The publisher console over HTTP (B1–B9) on SQLite and PostgreSQL: I-PUBC-01..06,
I-REL-01..04, E2E-02."""

from __future__ import annotations

import json
from typing import Any

import httpx

from contract.http_checks import assert_error, error_shape
from contract.http_harness import Api, Caller
from support import listing_payload, release_payload

LISTINGS = "/v1/publisher/listings"
PROFILE = "/v1/publisher/profile"
UNKNOWN_LISTING = "lst_01JDOESNOTEXIST0000000000"
UNKNOWN_RELEASE = "rel_01JDOESNOTEXIST0000000000"

#: The owner's listing shape: the public one plus ``description``, ``moderation`` and
#: the owner's own id.
PUBLISHER_LISTING_KEYS = {
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
    "publisherUserId",
    "description",
    "moderation",
}
#: The owner's release shape: the public one plus ``publisherUserId``, ``revokeReason``
#: and ``warnings`` (a version that is not semver, ADR 0023).
RELEASE_KEYS = {
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
    "publisherUserId",
    "revokeReason",
    "warnings",
}
PROFILE_KEYS = {
    "publisherId",
    "displayName",
    "bioMarkdown",
    "bioHtml",
    "verification",
    "createdAtMs",
    "updatedAtMs",
}


def _listing(api: Api, caller: Caller, listing_id: str) -> dict[str, Any]:
    response = api.get(f"{LISTINGS}/{listing_id}", caller)
    assert response.status_code == 200, response.text
    listing: dict[str, Any] = response.json()["listing"]
    return listing


def _releases(api: Api, caller: Caller, listing_id: str) -> list[dict[str, Any]]:
    response = api.get(f"{LISTINGS}/{listing_id}/releases", caller)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _patch(api: Api, caller: Caller | None, listing_id: str, body: object, **kw: Any) -> Any:
    return api.post(f"{LISTINGS}/{listing_id}", caller, body, method="PATCH", key=None, **kw)


def _status(api: Api, caller: Caller, listing_id: str, status: str) -> httpx.Response:
    return api.set_status(caller, listing_id, status)


def _revoke(api: Api, caller: Caller | None, release_id: str, body: object = None) -> Any:
    return api.post(f"/v1/publisher/releases/{release_id}/revoke", caller, body or {})


def _moderate(api: Api, admin: Caller, listing_id: str, action: str) -> dict[str, Any]:
    response = api.post(f"/v1/admin/listings/{listing_id}/{action}", admin, {"reason": "spam"})
    assert response.status_code == 200, response.text
    listing: dict[str, Any] = response.json()["listing"]
    return listing


def _field_names(response: httpx.Response) -> list[str]:
    return [f["fieldName"] for f in response.json()["error"]["details"]["fields"]]


def _audit_types(api: Api, listing_id: str) -> list[str]:
    admin = api.admin()
    response = api.get("/v1/admin/audit", admin, params={"listingId": listing_id})
    assert response.status_code == 200, response.text
    assert response.json()["nextCursor"] is None
    return [event["type"] for event in reversed(response.json()["items"])]


# --------------------------------------------------------------------------- I-PUBC-01


def test_i_pubc_01_create_listing_makes_an_owned_normalised_draft(api: Api) -> None:
    """B2 answers 201 with the caller's normalised, rendered, unflagged draft; B3 reads it back."""
    publisher = api.publisher()
    payload = listing_payload(
        name="  Spaced Name  ",
        tags=[" Support ", "support", "TRIAGE"],
        categories=["Ops", "ops"],
        description={"format": "markdown", "markdown": "Hi <script>x</script> **b**"},
    )
    response = api.post(LISTINGS, publisher, payload)
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"listing"}
    listing = response.json()["listing"]
    assert set(listing) == PUBLISHER_LISTING_KEYS
    now = api.clock.now_ms()
    assert listing["listingId"].startswith("lst_")
    assert listing["status"] == "draft"
    assert listing["publisherUserId"] == publisher.user_id
    assert listing["publisher"]["publisherId"] == publisher.user_id
    assert listing["assetKind"] == "whs_agent"
    assert listing["name"] == "Spaced Name"
    assert listing["tags"] == ["support", "triage"]
    assert listing["categories"] == ["ops"]
    assert listing["description"]["format"] == "markdown"
    assert listing["description"]["markdown"] == "Hi <script>x</script> **b**"
    assert "<script>" not in listing["description"]["html"]
    assert "<strong>b</strong>" in listing["description"]["html"]
    assert listing["moderation"] == {"flagged": False, "reason": None}
    assert listing["createdAtMs"] == listing["updatedAtMs"] == now
    assert _listing(api, publisher, listing["listingId"]) == listing
    assert _audit_types(api, listing["listingId"]) == ["listing.created"]


def test_i_pubc_01_invalid_listing_is_refused_and_stores_nothing(api: Api) -> None:
    """An invalid B2 body is 400 naming every failing field, and no listing appears."""
    publisher = api.publisher()
    payload = listing_payload(
        name=" ",
        assetKind="robot",
        tags=["x" * 33],
        links={"docsUrl": "http://insecure.example.com"},
    )
    response = api.post(LISTINGS, publisher, payload)
    assert_error(response, 400, "VALIDATION_FAILED")
    assert set(_field_names(response)) == {"name", "assetKind", "tags[0]", "links.docsUrl"}
    missing_key = api.post(LISTINGS, publisher, listing_payload(), key=None)
    assert_error(missing_key, 400, "VALIDATION_FAILED", "Idempotency-Key")
    assert api.get(LISTINGS, publisher).json() == {"items": [], "nextCursor": None}


def test_i_pubc_01_console_writes_replay_the_stored_answer(api: Api) -> None:
    """B2, B5, B6 and B8 replay their first answer under one key (same status and bytes,
    Idempotent-Replayed: true), even after the resource changed; nothing runs twice."""
    publisher = api.publisher()
    created = api.post(LISTINGS, publisher, listing_payload(), key="create-1")
    assert created.status_code == 201, created.text
    listing_id = created.json()["listing"]["listingId"]
    api.clock.advance(1_000)
    assert _patch(api, publisher, listing_id, {"name": "Changed"}).status_code == 200

    replayed = api.post(LISTINGS, publisher, listing_payload(), key="create-1")
    assert replayed.status_code == 201
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.content == created.content  # the stored answer, not today's listing
    assert replayed.json()["listing"]["name"] == "Support Triage Agent"
    assert len(api.get(LISTINGS, publisher).json()["items"]) == 1

    path = f"{LISTINGS}/{listing_id}"
    writes = [
        (f"{path}/releases", release_payload("1.0.0"), 201),
        (f"{path}/status", {"status": "published"}, 200),
    ]
    for write_path, body, status in writes:
        first = api.post(write_path, publisher, body, key="same-key")
        again = api.post(write_path, publisher, body, key="same-key")
        assert first.status_code == again.status_code == status, first.text
        assert "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
    release_id = _releases(api, publisher, listing_id)[0]["releaseId"]
    revoke_path = f"/v1/publisher/releases/{release_id}/revoke"
    first = api.post(revoke_path, publisher, {"reason": "oops"}, key="revoke-1")
    again = api.post(revoke_path, publisher, {"reason": "oops"}, key="revoke-1")
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert len(_releases(api, publisher, listing_id)) == 1
    assert _audit_types(api, listing_id) == [
        "listing.created",
        "listing.updated",
        "release.published",
        "listing.status_changed",
        "release.revoked",
    ]
    # The key is scoped to (caller, endpoint template): the path's id is part of the request.
    other = api.create_listing(publisher)
    api.publish_release(publisher, other["listingId"])
    reused = api.post(
        f"{LISTINGS}/{other['listingId']}/status",
        publisher,
        {"status": "published"},
        key="same-key",
    )
    assert_error(reused, 409, "CONFLICT")
    assert _listing(api, publisher, other["listingId"])["status"] == "draft"
    # A refused request stores nothing: the same key then works once the request is valid.
    refused = api.post(LISTINGS, publisher, listing_payload(name=""), key="create-2")
    assert_error(refused, 400, "VALIDATION_FAILED", "name")
    accepted = api.post(LISTINGS, publisher, listing_payload(), key="create-2")
    assert accepted.status_code == 201, accepted.text
    assert "idempotent-replayed" not in accepted.headers


# --------------------------------------------------------------------------- I-PUBC-02


def test_i_pubc_02_list_listings_shows_own_listings_by_status(api: Api) -> None:
    """B1 lists only the caller's listings, newest first, filterable by status."""
    publisher, other = api.publisher(), api.publisher()
    api.create_listing(other)
    draft = api.create_listing(publisher)
    api.clock.advance(5)
    published, _ = api.published(publisher)
    api.clock.advance(5)
    unlisted, _ = api.published(publisher)
    assert _status(api, publisher, unlisted["listingId"], "unlisted").status_code == 200

    page = api.get(LISTINGS, publisher).json()
    assert [item["listingId"] for item in page["items"]] == [
        unlisted["listingId"],
        published["listingId"],
        draft["listingId"],
    ]
    assert page["nextCursor"] is None
    assert all(set(item) == PUBLISHER_LISTING_KEYS for item in page["items"])
    assert {item["publisherUserId"] for item in page["items"]} == {publisher.user_id}
    by_status = {
        status: [
            item["listingId"]
            for item in api.get(LISTINGS, publisher, params={"status": status}).json()["items"]
        ]
        for status in ("draft", "published", "unlisted", "suspended")
    }
    assert by_status == {
        "draft": [draft["listingId"]],
        "published": [published["listingId"]],
        "unlisted": [unlisted["listingId"]],
        "suspended": [],
    }
    assert_error(
        api.get(LISTINGS, publisher, params={"status": "deleted"}),
        400,
        "VALIDATION_FAILED",
        "status",
    )


# --------------------------------------------------------------------------- I-PUBC-03


def test_i_pubc_03_patch_answers_ok_keeps_absent_fields_and_clears_nulls(api: Api) -> None:
    """B4 answers {"ok": true}; absent fields stay, null clears, links patch per field."""
    publisher = api.publisher()
    original = api.create_listing(publisher, links={"docsUrl": "https://docs.example.com/a"})
    listing_id = original["listingId"]
    api.clock.advance(1_000)
    response = _patch(
        api,
        publisher,
        listing_id,
        {"summary": None, "links": {"repoUrl": "https://git.example.com/r"}, "tags": ["New"]},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}
    assert "idempotent-replayed" not in response.headers
    patched = _listing(api, publisher, listing_id)
    assert patched["name"] == original["name"]
    assert patched["description"] == original["description"]
    assert patched["summary"] == ""
    assert patched["tags"] == ["new"]
    assert patched["links"] == {
        "docsUrl": "https://docs.example.com/a",
        "repoUrl": "https://git.example.com/r",
    }
    assert patched["updatedAtMs"] == original["updatedAtMs"] + 1_000
    assert patched["createdAtMs"] == original["createdAtMs"]

    # The key is accepted on PATCH: a retry replays {"ok": true} and changes nothing.
    key = "patch-key-1"
    api.clock.advance(1_000)
    first = api.post(
        f"{LISTINGS}/{listing_id}", publisher, {"name": "Renamed"}, key=key, method="PATCH"
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"ok": True}
    renamed = _listing(api, publisher, listing_id)
    assert renamed["name"] == "Renamed"
    api.clock.advance(1_000)
    again = api.post(
        f"{LISTINGS}/{listing_id}", publisher, {"name": "Renamed"}, key=key, method="PATCH"
    )
    assert again.status_code == 200
    assert again.json() == {"ok": True}
    assert again.headers["idempotent-replayed"] == "true"
    assert _listing(api, publisher, listing_id) == renamed
    other = api.post(
        f"{LISTINGS}/{listing_id}", publisher, {"name": "Other"}, key=key, method="PATCH"
    )
    assert_error(other, 409, "CONFLICT")


def test_i_pubc_03_patch_cannot_touch_status_kind_owner_or_moderation(api: Api) -> None:
    """B4 refuses status, kind, owner, id, moderation and timestamps as unknown fields."""
    publisher = api.publisher()
    listing = api.create_listing(publisher)
    listing_id = listing["listingId"]
    for field, value in (
        ("status", "published"),
        ("assetKind", "spec_asset"),
        ("publisherUserId", "usr_someone_else"),
        ("listingId", "lst_other"),
        ("moderation", {"flagged": False}),
        ("createdAtMs", 1),
    ):
        response = _patch(api, publisher, listing_id, {field: value})
        assert_error(response, 400, "VALIDATION_FAILED")
        assert _field_names(response) == [field]
    assert _listing(api, publisher, listing_id) == listing


# --------------------------------------------------------------------------- I-PUBC-04


def test_i_pubc_04_status_changes_follow_the_listing_state_machine(api: Api) -> None:
    """B5 moves follow §4: publishing needs a release, a suspended listing answers CONFLICT."""
    publisher, admin = api.publisher(), api.admin()
    listing = api.create_listing(publisher)
    listing_id = listing["listingId"]

    def move(status: str) -> str:
        response = _status(api, publisher, listing_id, status)
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"listing"}
        assert set(response.json()["listing"]) == PUBLISHER_LISTING_KEYS
        moved: str = response.json()["listing"]["status"]
        return moved

    assert_error(_status(api, publisher, listing_id, "published"), 409, "CONFLICT")
    assert _listing(api, publisher, listing_id)["status"] == "draft"
    release = api.publish_release(publisher, listing_id)
    assert move("published") == "published"
    assert move("unlisted") == "unlisted"
    assert move("published") == "published"
    assert move("draft") == "draft"
    assert_error(_status(api, publisher, listing_id, "unlisted"), 409, "CONFLICT")
    assert_error(_status(api, publisher, listing_id, "draft"), 409, "CONFLICT")
    assert_error(
        _status(api, publisher, listing_id, "suspended"), 400, "VALIDATION_FAILED", "status"
    )
    missing_key = api.post(
        f"{LISTINGS}/{listing_id}/status", publisher, {"status": "published"}, key=None
    )
    assert_error(missing_key, 400, "VALIDATION_FAILED", "Idempotency-Key")

    # With its only release revoked, the listing cannot be (re)published.
    assert _revoke(api, publisher, release["releaseId"]).status_code == 200
    assert_error(_status(api, publisher, listing_id, "published"), 409, "CONFLICT")
    api.publish_release(publisher, listing_id, "1.0.1")
    assert move("published") == "published"

    assert _moderate(api, admin, listing_id, "suspend")["status"] == "suspended"
    for target in ("draft", "published", "unlisted"):
        assert_error(_status(api, publisher, listing_id, target), 409, "CONFLICT")
    suspended = _listing(api, publisher, listing_id)
    assert suspended["status"] == "suspended"
    assert suspended["moderation"] == {"flagged": True, "reason": "spam"}
    assert _moderate(api, admin, listing_id, "unsuspend")["status"] == "unlisted"
    assert move("published") == "published"


def test_i_pubc_04_profile_get_and_put(api: Api) -> None:
    """B9 GET shows the caller's profile; PUT replaces name and bio, accepts a key and replays."""
    publisher = api.publisher(display_name="Acme Agents")
    response = api.get(PROFILE, publisher)
    assert response.status_code == 200, response.text
    profile = response.json()["profile"]
    assert set(response.json()) == {"profile"}
    assert set(profile) == PROFILE_KEYS
    assert profile["publisherId"] == publisher.user_id
    assert profile["displayName"] == "Acme Agents"
    assert profile["bioMarkdown"] == ""
    assert profile["verification"] == {"status": "unverified", "checkedAtMs": None, "reason": None}

    api.clock.advance(1_000)
    body = {"displayName": "  Acme Labs ", "bioMarkdown": "We build <i>agents</i> **fast**."}
    put = api.post(PROFILE, publisher, body, method="PUT", key="profile-key")
    assert put.status_code == 200, put.text
    updated = put.json()["profile"]
    assert updated["displayName"] == "Acme Labs"
    assert updated["bioMarkdown"] == "We build <i>agents</i> **fast**."
    assert "<i>" not in updated["bioHtml"]
    assert "<strong>fast</strong>" in updated["bioHtml"]
    assert updated["updatedAtMs"] == api.clock.now_ms()
    assert api.get(PROFILE, publisher).json()["profile"] == updated
    replay = api.post(PROFILE, publisher, body, method="PUT", key="profile-key")
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == put.json()
    without_key = api.post(PROFILE, publisher, {"displayName": "Acme"}, method="PUT", key=None)
    assert without_key.status_code == 200, without_key.text
    assert without_key.json()["profile"]["displayName"] == "Acme"
    listing = api.create_listing(publisher)
    assert listing["publisher"]["displayName"] == "Acme"
    for bad, field in (
        ({"displayName": ""}, "displayName"),
        ({"bioMarkdown": "x"}, "displayName"),
        ({"displayName": "x", "verification": {"status": "verified"}}, "verification"),
        ({"displayName": "x", "roles": ["admin"]}, "roles"),
    ):
        refused = api.post(PROFILE, publisher, bad, method="PUT", key=None)
        assert_error(refused, 400, "VALIDATION_FAILED", field)
    assert api.get(PROFILE, publisher).json()["profile"]["verification"]["status"] == "unverified"


# --------------------------------------------------------------------------- I-PUBC-05


def test_i_pubc_05_publisher_b_cannot_touch_publisher_a_listings(api: Api) -> None:
    """Every B3–B8 call of B on A's listing or release is the unknown-id NOT_FOUND, no change."""
    owner, intruder = api.publisher(), api.publisher()
    listing, release = api.published(owner)
    listing_id, release_id = listing["listingId"], release["releaseId"]
    before = (_listing(api, owner, listing_id), _releases(api, owner, listing_id))

    def operations(lid: str, rid: str) -> dict[str, httpx.Response]:
        return {
            "get": api.get(f"{LISTINGS}/{lid}", intruder),
            "patch": _patch(api, intruder, lid, {"name": "Mine"}),
            "status": _status(api, intruder, lid, "unlisted"),
            "release": api.post(f"{LISTINGS}/{lid}/releases", intruder, release_payload("9.9.9")),
            "list_releases": api.get(f"{LISTINGS}/{lid}/releases", intruder),
            "revoke": _revoke(api, intruder, rid, {"reason": "x"}),
        }

    foreign = operations(listing_id, release_id)
    unknown = operations(UNKNOWN_LISTING, UNKNOWN_RELEASE)
    for name, response in foreign.items():
        assert_error(response, 404, "NOT_FOUND")
        assert error_shape(response) == error_shape(unknown[name]), name
        assert listing_id not in response.text
    after = (_listing(api, owner, listing_id), _releases(api, owner, listing_id))
    assert after == before
    assert api.get(LISTINGS, intruder).json() == {"items": [], "nextCursor": None}
    public = api.get(f"/v1/public/listings/{listing_id}").json()["listingDetail"]
    assert public["listing"]["status"] == "published"
    assert public["latestRelease"]["status"] == "published"


# --------------------------------------------------------------------------- I-PUBC-06


def _console_calls(
    api: Api, caller: Caller | None, listing_id: str, release_id: str, *, headers: Any = None
) -> dict[str, httpx.Response]:
    extra = {"headers": headers} if headers else {}
    return {
        "B1": api.get(LISTINGS, caller, **extra),
        "B2": api.post(LISTINGS, caller, listing_payload(), headers=headers),
        "B3": api.get(f"{LISTINGS}/{listing_id}", caller, **extra),
        "B4": api.post(
            f"{LISTINGS}/{listing_id}", caller, {"name": "x"}, method="PATCH", headers=headers
        ),
        "B5": api.post(
            f"{LISTINGS}/{listing_id}/status", caller, {"status": "draft"}, headers=headers
        ),
        "B6": api.post(
            f"{LISTINGS}/{listing_id}/releases", caller, release_payload("3.0.0"), headers=headers
        ),
        "B7": api.get(f"{LISTINGS}/{listing_id}/releases", caller, **extra),
        "B8": api.post(f"/v1/publisher/releases/{release_id}/revoke", caller, {}, headers=headers),
        "B9 GET": api.get(PROFILE, caller, **extra),
        "B9 PUT": api.post(PROFILE, caller, {"displayName": "Me"}, method="PUT", headers=headers),
    }


def test_i_pubc_06_non_publishers_are_unauthorized_and_anonymous_unauthenticated(
    api: Api,
) -> None:
    """Plain users and admins get 403 UNAUTHORIZED on B1–B9; no or bad credentials 401."""
    publisher = api.publisher()
    listing, release = api.published(publisher)
    listing_id, release_id = listing["listingId"], release["releaseId"]
    before = (_listing(api, publisher, listing_id), _releases(api, publisher, listing_id))
    for caller in (api.buyer(), api.admin()):
        for name, response in _console_calls(api, caller, listing_id, release_id).items():
            error = assert_error(response, 403, "UNAUTHORIZED")
            assert error["message"] == "This needs the publisher role.", name
    for headers in (None, {"Authorization": "Bearer fpat_not_a_real_token"}):
        calls = _console_calls(api, None, listing_id, release_id, headers=headers)
        for response in calls.values():
            assert_error(response, 401, "UNAUTHENTICATED")
    # Authentication comes before validation: no key and no body is still 401.
    assert_error(api.post(LISTINGS, None, None, key=None), 401, "UNAUTHENTICATED")
    after = (_listing(api, publisher, listing_id), _releases(api, publisher, listing_id))
    assert after == before
    assert api.get(LISTINGS, publisher).json()["items"] == [before[0]]


def test_i_pubc_06_roles_are_granted_by_admins_only(api: Api) -> None:
    """A user cannot grant itself a role; an admin's A2 grant opens the console."""
    user, admin = api.buyer(), api.admin()
    roles_path = f"/v1/admin/users/{user.user_id}/roles"
    assert_error(api.post(roles_path, user, {"grant": ["publisher"]}), 403, "UNAUTHORIZED")
    assert_error(api.get(LISTINGS, user), 403, "UNAUTHORIZED")
    granted = api.post(roles_path, admin, {"grant": ["publisher"]})
    assert granted.status_code == 200, granted.text
    assert granted.json()["user"]["roles"] == ["publisher"]
    assert api.get(LISTINGS, user).json() == {"items": [], "nextCursor": None}
    assert_error(api.post(roles_path, user, {"grant": ["admin"]}), 403, "UNAUTHORIZED")
    assert_error(api.get("/v1/admin/audit", user), 403, "UNAUTHORIZED")


# --------------------------------------------------------------------------- I-REL-01


def test_i_rel_01_duplicate_version_is_a_conflict_even_after_revocation(api: Api) -> None:
    """B6 with a used version is 409 CONFLICT, even once revoked; other listings may reuse it."""
    publisher = api.publisher()
    listing, release = api.published(publisher, "1.0.0")
    listing_id = listing["listingId"]
    path = f"{LISTINGS}/{listing_id}/releases"
    duplicate = api.post(path, publisher, release_payload("1.0.0", refs={"whsAgentId": "other"}))
    error = assert_error(duplicate, 409, "CONFLICT")
    assert "1.0.0" in error["message"]
    assert _releases(api, publisher, listing_id) == [release]
    assert _revoke(api, publisher, release["releaseId"]).status_code == 200
    assert_error(api.post(path, publisher, release_payload("1.0.0")), 409, "CONFLICT")
    other = api.create_listing(publisher)
    assert api.publish_release(publisher, other["listingId"], "1.0.0")["version"] == "1.0.0"
    # Versions compare exactly: a differently spelled version is another version.
    assert api.publish_release(publisher, listing_id, "1.0.0+build.2")["version"] == "1.0.0+build.2"
    assert [r["version"] for r in _releases(api, publisher, listing_id)] == [
        "1.0.0+build.2",
        "1.0.0",
    ]


def test_i_rel_01_release_is_created_with_the_contract_shape(api: Api) -> None:
    """B6 answers 201 {"release"} owned by the listing's publisher; payload ids are refused."""
    publisher = api.publisher()
    listing = api.create_listing(publisher)
    listing_id = listing["listingId"]
    for field in ("publisherUserId", "listingId", "status", "publishedAtMs"):
        refused = api.post(
            f"{LISTINGS}/{listing_id}/releases", publisher, release_payload(**{field: "x"})
        )
        assert_error(refused, 400, "VALIDATION_FAILED")
        assert _field_names(refused) == [field]
    wrong_refs = api.post(
        f"{LISTINGS}/{listing_id}/releases",
        publisher,
        release_payload(refs={"agentromaticWorkflowId": "wf-1"}),
    )
    assert_error(wrong_refs, 400, "VALIDATION_FAILED")
    response = api.post(f"{LISTINGS}/{listing_id}/releases", publisher, release_payload("1.2.3"))
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"release"}
    release = response.json()["release"]
    assert set(release) == RELEASE_KEYS
    assert release["releaseId"].startswith("rel_")
    assert release["listingId"] == listing_id
    assert release["publisherUserId"] == publisher.user_id
    assert release["status"] == "published"
    assert release["version"] == "1.2.3"
    assert release["publishedAtMs"] == api.clock.now_ms()
    assert release["revokedAtMs"] is None
    assert release["revokeReason"] is None
    assert release["refs"] == {
        "whsAgentId": "agent-123",
        "whsDeploymentId": "dep-9",
        "agentromaticWorkflowId": None,
        "specAssetId": None,
    }
    assert release["notes"] == {
        "format": "markdown",
        "markdown": "First release.",
        "html": "<p>First release.</p>\n",
    }
    assert _releases(api, publisher, listing_id) == [release]


# --------------------------------------------------------------------------- I-REL-02


def test_i_rel_02_revoke_keeps_the_release_visible_to_its_owner(api: Api) -> None:
    """B8 marks the release revoked with time and reason; B7 still lists it; revoked is terminal."""
    publisher = api.publisher()
    listing, release = api.published(publisher)
    listing_id = listing["listingId"]
    api.clock.advance(60_000)
    response = _revoke(api, publisher, release["releaseId"], {"reason": "CVE-2026-0001"})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"release"}
    revoked = response.json()["release"]
    assert set(revoked) == RELEASE_KEYS
    assert revoked["status"] == "revoked"
    assert revoked["revokedAtMs"] == api.clock.now_ms()
    assert revoked["revokeReason"] == "CVE-2026-0001"
    unchanged = {
        k: v for k, v in revoked.items() if k not in ("status", "revokedAtMs", "revokeReason")
    }
    assert unchanged == {
        k: v for k, v in release.items() if k not in ("status", "revokedAtMs", "revokeReason")
    }
    assert _releases(api, publisher, listing_id) == [revoked]
    assert_error(_revoke(api, publisher, release["releaseId"]), 409, "CONFLICT")
    assert _releases(api, publisher, listing_id) == [revoked]
    missing_key = api.post(
        f"/v1/publisher/releases/{release['releaseId']}/revoke", publisher, {}, key=None
    )
    assert_error(missing_key, 400, "VALIDATION_FAILED", "Idempotency-Key")
    public = api.get(f"/v1/public/listings/{listing_id}/releases").json()
    assert public == {"items": [], "nextCursor": None}
    assert _audit_types(api, listing_id)[-1] == "release.revoked"


# --------------------------------------------------------------------------- I-REL-03


def test_i_rel_03_revoked_release_is_not_installable(api: Api) -> None:
    """A revoked release gets no intent (409), no token (409), and its tokens stop redeeming."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, old = api.published(publisher, "1.0.0")
    listing_id = listing["listingId"]
    api.clock.advance(1)
    new = api.publish_release(publisher, listing_id, "2.0.0")
    intent = api.intent(buyer, listing_id, new["releaseId"])
    issued = api.token(buyer, intent["installIntentId"])
    assert _revoke(api, publisher, new["releaseId"]).status_code == 200

    again = api.post(
        "/v1/install/intents",
        buyer,
        {"listingId": listing_id, "releaseId": new["releaseId"], "targetSystem": "whs"},
    )
    assert_error(again, 409, "CONFLICT")
    reissue = api.post(f"/v1/install/intents/{intent['installIntentId']}/token", buyer)
    assert_error(reissue, 409, "CONFLICT")
    assert_error(api.redeem(issued["installToken"]), 404, "NOT_FOUND")
    stored = api.get(f"/v1/install/intents/{intent['installIntentId']}", buyer).json()
    assert stored["installIntent"]["status"] == "token_issued"
    # Without a release id the newest still-published release is chosen.
    fallback = api.post(
        "/v1/install/intents", buyer, {"listingId": listing_id, "targetSystem": "whs"}
    )
    assert fallback.status_code == 201, fallback.text
    assert fallback.json()["installIntent"]["releaseId"] == old["releaseId"]


# --------------------------------------------------------------------------- I-REL-04


def test_i_rel_04_no_endpoint_changes_a_release(api: Api) -> None:
    """The API has no route that edits or deletes a release; republishing or editing the listing
    leaves it byte-identical."""
    publisher = api.publisher()
    listing, release = api.published(publisher)
    listing_id, release_id = listing["listingId"], release["releaseId"]
    before_public = api.get(f"/v1/public/listings/{listing_id}/releases").json()

    # Structurally: release paths take GET (lists) and POST (create, revoke) only.
    every_release_route = {
        (route.path, method)
        for route in api.client.app.routes
        if "release" in route.path
        for method in getattr(route, "methods", ())
        if method not in ("HEAD", "OPTIONS")
    }
    # The web console's forms (POST to publish, POST to revoke) edit nothing either.
    assert {method for _, method in every_release_route} <= {"GET", "POST"}
    release_routes = {(path, m) for path, m in every_release_route if path.startswith("/v1/")}
    assert release_routes == {
        ("/v1/public/listings/{listing_id:str}/releases", "GET"),
        ("/v1/publisher/listings/{listing_id:str}/releases", "GET"),
        ("/v1/publisher/listings/{listing_id:str}/releases", "POST"),
        ("/v1/publisher/releases/{release_id:str}/revoke", "POST"),
    }
    edits = [
        api.post(
            f"/v1/publisher/releases/{release_id}", publisher, {"version": "6.6.6"}, method=method
        )
        for method in ("PUT", "PATCH", "POST")
    ]
    edits += [
        api.client.delete(f"/v1/publisher/releases/{release_id}", headers=publisher.headers()),
        api.post(
            f"{LISTINGS}/{listing_id}/releases", publisher, {"version": "6.6.6"}, method="PUT"
        ),
        api.post(
            f"{LISTINGS}/{listing_id}/releases", publisher, {"version": "6.6.6"}, method="PATCH"
        ),
        api.client.delete(f"{LISTINGS}/{listing_id}/releases", headers=publisher.headers()),
        # Republishing the version with other refs is a conflict, not an edit.
        api.post(
            f"{LISTINGS}/{listing_id}/releases",
            publisher,
            release_payload("1.0.0", refs={"whsAgentId": "agent-evil"}),
        ),
    ]
    for response in edits:
        assert response.status_code in (404, 405, 409), (response.request.method, response.text)
        code = {404: "NOT_FOUND", 405: "UNSUPPORTED", 409: "CONFLICT"}[response.status_code]
        assert_error(response, response.status_code, code)

    assert _patch(api, publisher, listing_id, {"name": "Renamed"}).status_code == 200
    sibling = api.publish_release(publisher, listing_id, "1.1.0")
    assert _revoke(api, publisher, sibling["releaseId"]).status_code == 200
    (kept,) = [r for r in _releases(api, publisher, listing_id) if r["releaseId"] == release_id]
    assert kept == release
    after_public = api.get(f"/v1/public/listings/{listing_id}/releases").json()
    assert after_public == before_public
    latest = api.get(f"/v1/public/listings/{listing_id}").json()["listingDetail"]["latestRelease"]
    assert latest["refs"]["whsAgentId"] == "agent-123"
    assert latest["version"] == "1.0.0"


# --------------------------------------------------------------------------- E2E-02


def test_e2e_02_publisher_flow(api: Api) -> None:
    """Create, patch, release, publish, re-release, revoke, unlist: each step shows as intended."""
    publisher = api.publisher()
    created = api.create_listing(publisher, name="Flow Agent")
    listing_id = created["listingId"]
    assert created["status"] == "draft"
    assert api.get("/v1/public/listings/search").json()["items"] == []

    assert _patch(api, publisher, listing_id, {"summary": "Now with flows."}).json() == {"ok": True}
    first = api.publish_release(publisher, listing_id, "1.0.0")
    published = _status(api, publisher, listing_id, "published")
    assert published.json()["listing"]["status"] == "published"
    (hit,) = api.get("/v1/public/listings/search", params={"q": "flow"}).json()["items"]
    assert hit["listingId"] == listing_id
    assert hit["summary"] == "Now with flows."

    api.clock.advance(1_000)
    second = api.publish_release(publisher, listing_id, "1.1.0")
    detail_path = f"/v1/public/listings/{listing_id}"
    assert api.get(detail_path).json()["listingDetail"]["latestRelease"]["version"] == "1.1.0"
    api.clock.advance(1_000)
    assert _revoke(api, publisher, second["releaseId"], {"reason": "regression"}).status_code == 200
    latest = api.get(detail_path).json()["listingDetail"]["latestRelease"]
    assert latest["releaseId"] == first["releaseId"]
    console = _releases(api, publisher, listing_id)
    assert [(r["version"], r["status"]) for r in console] == [
        ("1.1.0", "revoked"),
        ("1.0.0", "published"),
    ]

    assert _status(api, publisher, listing_id, "unlisted").status_code == 200
    assert api.get("/v1/public/listings/search").json()["items"] == []
    assert_error(api.get(detail_path), 404, "NOT_FOUND")
    assert _listing(api, publisher, listing_id)["status"] == "unlisted"
    assert _audit_types(api, listing_id) == [
        "listing.created",
        "listing.updated",
        "release.published",
        "listing.status_changed",
        "release.published",
        "release.revoked",
        "listing.status_changed",
    ]


def test_i_rel_01_signed_url_artifacts_are_a_feature_not_offered(api: Api) -> None:
    """B6 with a ``fleetprompt_signed_url`` artifact is 501 UNSUPPORTED and stores nothing."""
    publisher = api.publisher()
    listing = api.create_listing(publisher)
    artifact = {
        "kind": "manifest",
        "sha256": "b" * 64,
        "sizeBytes": 10,
        "download": {"mode": "fleetprompt_signed_url"},
    }
    path = f"{LISTINGS}/{listing['listingId']}/releases"
    response = api.post(path, publisher, release_payload("2.0.0", artifacts=[artifact]))
    error = assert_error(response, 501, "UNSUPPORTED")
    assert "fleetprompt_signed_url" in error["details"]["hint"]
    assert _releases(api, publisher, listing["listingId"]) == []


def test_i_pubc_01_a_body_not_in_utf8_is_refused_and_creates_nothing(api: Api) -> None:
    """JSON on the wire is UTF-8 (RFC 8259): a UTF-16 body is 400 naming ``body``."""
    publisher = api.publisher()
    body = json.dumps(listing_payload()).encode("utf-16")
    response = api.client.post(
        LISTINGS,
        content=body,
        headers={**publisher.headers("utf16-key"), "Content-Type": "application/json"},
    )
    assert_error(response, 400, "VALIDATION_FAILED", field="body")
    listed = api.get(LISTINGS, publisher)
    assert listed.json()["items"] == []

"""The publisher console (B1–B9) through the publishing use cases: I-PUBC-01..06, I-REL-01..04."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
from test_app_support import (
    audit_count,
    changes,
    error_shape,
    failure,
    snapshot,
    tables_changed,
)

from fleetprompt_core import (
    AssetKind,
    Call,
    Conflict,
    DomainError,
    ListingStatus,
    NotFound,
    ReleaseStatus,
    Role,
    Unauthenticated,
    Unauthorized,
    ValidationFailed,
)
from fleetprompt_core.domain.model import Links, Moderation
from support import Market, listing_payload, new_key, release_payload


def _status(market: Market, publisher: Call, listing_id: str, status: str) -> ListingStatus:
    view = market.fp.publishing.change_status(
        publisher, listing_id, {"status": status}, idempotency_key=new_key()
    ).value
    return view.listing.status


def _field_names(error: DomainError) -> list[str]:
    return [f.field_name for f in error.fields]


# --------------------------------------------------------------------------- I-PUBC-01


def test_i_pubc_01_create_listing_makes_an_owned_normalised_draft(market: Market) -> None:
    """A created listing is the caller's normalised, rendered, unflagged draft, audited once."""
    publisher = market.publisher()
    owner = market.store.users[market.store.users_by_external_id["pub-a"]]
    before = audit_count(market)
    payload = listing_payload(
        name="  Spaced Name  ",
        tags=[" Support ", "support", "TRIAGE"],
        categories=["Ops", "ops"],
        description={"format": "markdown", "markdown": "Hi <script>x</script> **b**"},
    )
    view = market.fp.publishing.create_listing(publisher, payload, idempotency_key=new_key()).value
    listing = view.listing
    assert listing.status is ListingStatus.DRAFT
    assert listing.publisher_user_id == owner.user_id
    assert listing.asset_kind is AssetKind.WHS_AGENT
    assert listing.name == "Spaced Name"
    assert listing.tags == ("support", "triage")
    assert listing.categories == ("ops",)
    assert listing.description.markdown == "Hi <script>x</script> **b**"
    assert "<script>" not in listing.description.html
    assert "<strong>b</strong>" in listing.description.html
    assert listing.moderation == Moderation()
    assert listing.created_at_ms == listing.updated_at_ms == market.clock.now_ms()
    assert market.store.listings[listing.listing_id] == listing
    assert market.fp.publishing.get_listing(publisher, listing.listing_id) == view
    assert [e.type for e in market.store.audit[before:]] == ["listing.created"]


def test_i_pubc_01_invalid_listing_is_refused_and_stores_nothing(market: Market) -> None:
    """A listing that breaks the rules is refused with every failing field and leaves no trace."""
    publisher = market.publisher()
    before = snapshot(market)
    payload = listing_payload(
        name=" ",
        assetKind="robot",
        tags=["x" * 33],
        links={"docsUrl": "http://insecure.example.com"},
    )
    error = failure(
        lambda: market.fp.publishing.create_listing(publisher, payload, idempotency_key=new_key())
    )
    assert isinstance(error, ValidationFailed)
    assert set(_field_names(error)) == {"name", "assetKind", "tags[0]", "links.docsUrl"}
    assert changes(before, snapshot(market)) == {}


# --------------------------------------------------------------------------- I-PUBC-02


def test_i_pubc_02_list_listings_shows_own_listings_by_status(market: Market) -> None:
    """The publisher list holds only the caller's listings, newest first, filterable by status."""
    publisher = market.publisher()
    other = market.publisher("pub-b")
    market.draft(other)
    draft = market.draft(publisher)
    market.clock.advance(5)
    published, _ = market.published(publisher)
    market.clock.advance(5)
    unlisted, _ = market.published(publisher)
    _status(market, publisher, unlisted.listing.listing_id, "unlisted")

    everything = market.fp.publishing.list_listings(publisher)
    assert [v.listing.listing_id for v in everything.items] == [
        unlisted.listing.listing_id,
        published.listing.listing_id,
        draft.listing.listing_id,
    ]
    assert everything.next_cursor is None
    by_status = {
        status: [
            v.listing.listing_id
            for v in market.fp.publishing.list_listings(publisher, {"status": status}).items
        ]
        for status in ("draft", "published", "unlisted", "suspended")
    }
    assert by_status == {
        "draft": [draft.listing.listing_id],
        "published": [published.listing.listing_id],
        "unlisted": [unlisted.listing.listing_id],
        "suspended": [],
    }
    with pytest.raises(ValidationFailed) as caught:
        market.fp.publishing.list_listings(publisher, {"status": "deleted"})
    assert _field_names(caught.value) == ["status"]


# --------------------------------------------------------------------------- I-PUBC-03


def test_i_pubc_03_patch_keeps_absent_fields_and_clears_nulls(market: Market) -> None:
    """PATCH keeps absent fields, null clears, links patch per field, no-op changes nothing."""
    publisher = market.publisher()
    view = market.draft(publisher, links={"docsUrl": "https://docs.example.com/a"})
    listing_id = view.listing.listing_id
    original = view.listing
    market.clock.advance(1_000)
    patched = market.fp.publishing.update_listing(
        publisher,
        listing_id,
        {"summary": None, "links": {"repoUrl": "https://git.example.com/r"}, "tags": ["New"]},
    ).value.listing
    assert patched.name == original.name
    assert patched.description == original.description
    assert patched.summary == ""
    assert patched.tags == ("new",)
    assert patched.links == Links(
        docs_url="https://docs.example.com/a", repo_url="https://git.example.com/r"
    )
    assert patched.updated_at_ms == original.updated_at_ms + 1_000
    assert patched.created_at_ms == original.created_at_ms
    assert market.store.listings[listing_id] == patched

    market.clock.advance(1_000)
    before = audit_count(market)
    same = market.fp.publishing.update_listing(publisher, listing_id, {"tags": ["new"]})
    assert same.value.listing == patched  # nothing changed: no new update time, no audit event
    assert audit_count(market) == before


def test_i_pubc_03_patch_cannot_touch_status_kind_owner_or_moderation(market: Market) -> None:
    """Status, asset kind, ownership and moderation are not patchable: unknown fields refused."""
    publisher = market.publisher()
    view = market.draft(publisher)
    listing_id = view.listing.listing_id
    before = snapshot(market)
    for field, value in (
        ("status", "published"),
        ("assetKind", "spec_asset"),
        ("publisherUserId", "usr_someone_else"),
        ("listingId", "lst_other"),
        ("moderation", {"flagged": False}),
        ("createdAtMs", 1),
    ):
        error = failure(
            lambda f=field, v=value: market.fp.publishing.update_listing(
                publisher, listing_id, {f: v}
            )
        )
        assert isinstance(error, ValidationFailed)
        assert _field_names(error) == [field]
    assert changes(before, snapshot(market)) == {}


# --------------------------------------------------------------------------- I-PUBC-04


def test_i_pubc_04_status_changes_follow_the_listing_state_machine(market: Market) -> None:
    """Publisher status moves follow §4: publish needs a release, suspended answers CONFLICT."""
    publisher = market.publisher()
    admin = market.admin()
    view = market.draft(publisher)
    listing_id = view.listing.listing_id
    error = failure(lambda: _status(market, publisher, listing_id, "published"))
    assert isinstance(error, Conflict)
    assert market.store.listings[listing_id].status is ListingStatus.DRAFT
    release = market.release(publisher, listing_id)
    assert _status(market, publisher, listing_id, "published") is ListingStatus.PUBLISHED
    assert _status(market, publisher, listing_id, "unlisted") is ListingStatus.UNLISTED
    assert _status(market, publisher, listing_id, "published") is ListingStatus.PUBLISHED
    assert _status(market, publisher, listing_id, "draft") is ListingStatus.DRAFT
    assert isinstance(failure(lambda: _status(market, publisher, listing_id, "unlisted")), Conflict)
    assert isinstance(failure(lambda: _status(market, publisher, listing_id, "draft")), Conflict)
    error = failure(lambda: _status(market, publisher, listing_id, "suspended"))
    assert isinstance(error, ValidationFailed)
    assert _field_names(error) == ["status"]

    # With its only release revoked, the listing cannot be (re)published.
    market.fp.publishing.revoke_release(
        publisher, release.release_id, {}, idempotency_key=new_key()
    )
    assert isinstance(
        failure(lambda: _status(market, publisher, listing_id, "published")), Conflict
    )
    market.release(publisher, listing_id, "1.0.1")
    assert _status(market, publisher, listing_id, "published") is ListingStatus.PUBLISHED

    market.fp.admin.suspend_listing(
        admin, listing_id, {"reason": "spam"}, idempotency_key=new_key()
    )
    for target in ("draft", "published", "unlisted"):
        error = failure(lambda t=target: _status(market, publisher, listing_id, t))
        assert isinstance(error, Conflict)
    assert market.store.listings[listing_id].status is ListingStatus.SUSPENDED
    market.fp.admin.unsuspend_listing(admin, listing_id, {}, idempotency_key=new_key())
    assert market.store.listings[listing_id].status is ListingStatus.UNLISTED
    assert _status(market, publisher, listing_id, "published") is ListingStatus.PUBLISHED


# --------------------------------------------------------------------------- I-PUBC-05


def test_i_pubc_05_publisher_b_cannot_touch_publisher_a_listings(market: Market) -> None:
    """Every console call of B on A's listing/release is the unknown-id NOT_FOUND, no change."""
    owner = market.publisher("pub-a")
    intruder = market.publisher("pub-b")
    view, release = market.published(owner)
    listing_id = view.listing.listing_id
    publishing = market.fp.publishing
    operations: dict[str, Callable[[str, str], object]] = {
        "get": lambda lid, _rid: publishing.get_listing(intruder, lid),
        "patch": lambda lid, _rid: publishing.update_listing(intruder, lid, {"name": "Mine"}),
        "status": lambda lid, _rid: publishing.change_status(
            intruder, lid, {"status": "unlisted"}, idempotency_key=new_key()
        ),
        "release": lambda lid, _rid: publishing.publish_release(
            intruder, lid, release_payload("9.9.9"), idempotency_key=new_key()
        ),
        "list_releases": lambda lid, _rid: publishing.list_releases(intruder, lid),
        "revoke": lambda _lid, rid: publishing.revoke_release(
            intruder, rid, {"reason": "x"}, idempotency_key=new_key()
        ),
    }
    before = snapshot(market)
    for name, operation in operations.items():
        foreign = failure(lambda op=operation: op(listing_id, release.release_id))
        unknown = failure(lambda op=operation: op("lst_unknown", "rel_unknown"))
        assert isinstance(foreign, NotFound), name
        assert error_shape(foreign) == error_shape(unknown), name
    assert changes(before, snapshot(market)) == {}
    assert publishing.get_listing(owner, listing_id) == view


# --------------------------------------------------------------------------- I-PUBC-06


def _publisher_operations(market: Market, caller: Call, listing_id: str, release_id: str):  # type: ignore[no-untyped-def]
    publishing, profiles = market.fp.publishing, market.fp.profiles
    return {
        "list": lambda: publishing.list_listings(caller),
        "create": lambda: publishing.create_listing(
            caller, listing_payload(), idempotency_key=new_key()
        ),
        "get": lambda: publishing.get_listing(caller, listing_id),
        "patch": lambda: publishing.update_listing(caller, listing_id, {"name": "x"}),
        "status": lambda: publishing.change_status(
            caller, listing_id, {"status": "draft"}, idempotency_key=new_key()
        ),
        "release": lambda: publishing.publish_release(
            caller, listing_id, release_payload("3.0.0"), idempotency_key=new_key()
        ),
        "list_releases": lambda: publishing.list_releases(caller, listing_id),
        "revoke": lambda: publishing.revoke_release(
            caller, release_id, {}, idempotency_key=new_key()
        ),
        "profile_get": lambda: profiles.get(caller),
        "profile_put": lambda: profiles.put(caller, {"displayName": "Me"}),
    }


def test_i_pubc_06_non_publishers_are_unauthorized_and_anonymous_unauthenticated(
    market: Market,
) -> None:
    """Non-publishers get UNAUTHORIZED, anonymous callers UNAUTHENTICATED; nothing stored."""
    publisher = market.publisher()
    view, release = market.published(publisher)
    listing_id, release_id = view.listing.listing_id, release.release_id
    for caller, expected in (
        (market.user("plain"), Unauthorized),
        (market.admin(), Unauthorized),
        (Call(), Unauthenticated),
    ):
        before = snapshot(market)
        for name, operation in _publisher_operations(
            market, caller, listing_id, release_id
        ).items():
            error = failure(operation)
            assert type(error) is expected, (name, caller)
        assert changes(before, snapshot(market)) == {}


def test_i_pubc_06_roles_are_never_self_assigned(market: Market) -> None:
    """No user grants itself a role, directly or through the profile; only admins grant."""
    user = market.user("plain")
    user_id = market.store.users_by_external_id["plain"]
    error = failure(
        lambda: market.fp.admin.change_roles(
            user, user_id, {"grant": ["publisher"]}, idempotency_key=new_key()
        )
    )
    assert isinstance(error, Unauthorized)
    assert isinstance(
        failure(lambda: market.fp.profiles.put(user, {"displayName": "x"})), Unauthorized
    )
    assert market.store.users[user_id].roles == frozenset()
    market.fp.operator.set_roles("plain", grant=[Role.PUBLISHER])
    assert market.fp.publishing.list_listings(user).items == ()
    for field in ("roles", "verification"):
        error = failure(
            lambda f=field: market.fp.profiles.put(user, {"displayName": "x", f: ["admin"]})
        )
        assert isinstance(error, ValidationFailed)
        assert _field_names(error) == [field]
    error = failure(
        lambda: market.fp.admin.change_roles(
            user, user_id, {"grant": ["admin"]}, idempotency_key=new_key()
        )
    )
    assert isinstance(error, Unauthorized)
    assert market.store.users[user_id].roles == frozenset({Role.PUBLISHER})


def test_i_pubc_06_an_admin_grants_the_publisher_role_and_the_console_opens(
    market: Market,
) -> None:
    """A2 grants the publisher role (one audit event, replayable) and opens the console."""
    user = market.user("plain")
    user_id = market.store.users_by_external_id["plain"]
    admin = market.admin()
    assert isinstance(failure(lambda: market.fp.publishing.list_listings(user)), Unauthorized)
    before = audit_count(market)
    grant_key = new_key()
    granted = market.fp.admin.change_roles(
        admin, user_id, {"grant": ["publisher"]}, idempotency_key=grant_key
    )
    assert granted.value.roles == frozenset({Role.PUBLISHER})
    assert [e.type for e in market.store.audit[before:]] == ["user.roles_changed"]
    replay = market.fp.admin.change_roles(
        admin, user_id, {"grant": ["publisher"]}, idempotency_key=grant_key
    )
    assert replay.replayed
    assert replay.value == granted.value
    assert market.fp.publishing.list_listings(user).items == ()


# --------------------------------------------------------------------------- I-REL-01


def test_i_rel_01_duplicate_version_is_a_conflict_even_after_revocation(market: Market) -> None:
    """A version is used once per listing, ever: duplicates, even of revoked ones, CONFLICT."""
    publisher = market.publisher()
    view, release = market.published(publisher, "1.0.0")
    listing_id = view.listing.listing_id
    before = snapshot(market)
    error = failure(lambda: market.release(publisher, listing_id, "1.0.0"))
    assert isinstance(error, Conflict)
    assert "1.0.0" in error.message
    assert changes(before, snapshot(market)) == {}
    market.fp.publishing.revoke_release(
        publisher, release.release_id, {}, idempotency_key=new_key()
    )
    assert isinstance(failure(lambda: market.release(publisher, listing_id, "1.0.0")), Conflict)
    other = market.draft(publisher)
    assert market.release(publisher, other.listing.listing_id, "1.0.0").version == "1.0.0"
    # Versions compare exactly: a differently spelled version is a different version.
    assert market.release(publisher, listing_id, "1.0.0+build.2").version == "1.0.0+build.2"


# --------------------------------------------------------------------------- I-REL-02


def test_i_rel_02_revoke_changes_state_and_deletes_nothing(market: Market) -> None:
    """Revocation is a terminal state change with time and reason; nothing is deleted."""
    publisher = market.publisher()
    view, release = market.published(publisher)
    listing_id = view.listing.listing_id
    market.clock.advance(60_000)
    before = snapshot(market)
    revoked = market.fp.publishing.revoke_release(
        publisher, release.release_id, {"reason": "CVE-2026-0001"}, idempotency_key=new_key()
    ).value
    diff = changes(before, snapshot(market))
    assert tables_changed(diff) == {"releases", "audit", "idempotency"}
    assert diff["releases"] == {release.release_id}
    assert len(market.store.releases) == len(before["releases"])
    assert revoked.status is ReleaseStatus.REVOKED
    assert revoked.revoked_at_ms == market.clock.now_ms()
    assert revoked.revoke_reason == "CVE-2026-0001"
    assert attrs.evolve(revoked, status=release.status, revoked_at_ms=None, revoke_reason=None) == (
        release
    )
    assert market.store.releases[release.release_id] == revoked
    assert market.store.release_versions[(listing_id, "1.0.0")] == release.release_id
    assert market.store.audit[-1].type == "release.revoked"
    listed = market.fp.publishing.list_releases(publisher, listing_id).items
    assert listed == (revoked,)
    error = failure(
        lambda: market.fp.publishing.revoke_release(
            publisher, release.release_id, {}, idempotency_key=new_key()
        )
    )
    assert isinstance(error, Conflict)
    assert market.store.releases[release.release_id] == revoked


# --------------------------------------------------------------------------- I-REL-03


def test_i_rel_03_revoked_release_is_not_installable(market: Market) -> None:
    """A revoked release gets no intent, no token, and its issued tokens stop redeeming."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, old = market.published(publisher, "1.0.0")
    listing_id = view.listing.listing_id
    market.clock.advance(1)
    new = market.release(publisher, listing_id, "2.0.0")
    intent = market.intent(buyer, listing_id)
    assert intent.release_id == new.release_id
    issued = market.token(buyer, intent.install_intent_id)
    market.fp.publishing.revoke_release(publisher, new.release_id, {}, idempotency_key=new_key())

    error = failure(lambda: market.intent(buyer, listing_id, releaseId=new.release_id))
    assert isinstance(error, Conflict)
    assert isinstance(failure(lambda: market.token(buyer, intent.install_intent_id)), Conflict)
    assert issued.install_token is not None
    assert isinstance(failure(lambda: market.redeem(issued.install_token)), NotFound)
    assert market.store.intents[intent.install_intent_id].status.value == "token_issued"
    # Without a release id the newest still-published release is chosen.
    assert market.intent(buyer, listing_id).release_id == old.release_id


# --------------------------------------------------------------------------- I-REL-04


def test_i_rel_04_releases_are_immutable(market: Market) -> None:
    """A release never changes: frozen, no edit path, the store refuses edits, siblings leave it."""
    publisher = market.publisher()
    view, release = market.published(publisher)
    listing_id = view.listing.listing_id
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        release.version = "6.6.6"  # type: ignore[misc]
    assert not any("update_release" in name or "edit" in name for name in dir(market.fp.publishing))
    changed = release_payload("1.0.0", refs={"whsAgentId": "agent-evil"})
    assert isinstance(
        failure(
            lambda: market.fp.publishing.publish_release(
                publisher, listing_id, changed, idempotency_key=new_key()
            )
        ),
        Conflict,
    )
    market.fp.publishing.update_listing(publisher, listing_id, {"name": "Renamed"})
    sibling = market.release(publisher, listing_id, "1.1.0")
    market.fp.publishing.revoke_release(
        publisher, sibling.release_id, {}, idempotency_key=new_key()
    )
    assert market.store.releases[release.release_id] == release
    with market.store.unit_of_work() as uow, pytest.raises(ValueError, match="immutable"):
        uow.releases.update(
            attrs.evolve(release, refs=attrs.evolve(release.refs, whs_agent_id="agent-evil")),
            ReleaseStatus.PUBLISHED,
        )
    assert market.store.releases[release.release_id] == release
    detail = market.fp.catalog.listing(listing_id)
    assert detail.latest_release is not None
    assert detail.latest_release.refs == release.refs
    assert detail.latest_release.version == "1.0.0"


def test_i_rel_04_release_publisher_comes_from_the_listing_not_the_payload(
    market: Market,
) -> None:
    """A release's owner and listing come from the listing; payload ids are refused."""
    publisher = market.publisher()
    view = market.draft(publisher)
    listing_id = view.listing.listing_id
    for field in ("publisherUserId", "listingId", "status", "publishedAtMs"):
        error = failure(
            lambda f=field: market.fp.publishing.publish_release(
                publisher, listing_id, release_payload(**{f: "x"}), idempotency_key=new_key()
            )
        )
        assert isinstance(error, ValidationFailed)
        assert _field_names(error) == [field]
    release = market.release(publisher, listing_id)
    assert release.publisher_user_id == view.listing.publisher_user_id
    assert release.listing_id == listing_id
    assert release.status is ReleaseStatus.PUBLISHED
    assert release.published_at_ms == market.clock.now_ms()

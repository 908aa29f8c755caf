"""Public browse and search (P1–P3) through the catalog use cases: I-PUB-01..05."""

from __future__ import annotations

import json
from typing import Any

import attrs
import cattrs
import pytest
from test_app_support import error_shape, failure, walk

from fleetprompt_core import (
    Call,
    ListingStatus,
    NotFound,
    Principal,
    ReleaseStatus,
    Role,
    ValidationFailed,
)
from fleetprompt_core.services.catalog import short_search
from fleetprompt_core.services.views import (
    PublicListing,
    PublicListingDetail,
    PublicRelease,
    PublisherSummary,
)
from support import Market, new_key

#: Field names a public shape must never have (moderation, private notes, install and
#: auth data, description edit history).
PRIVATE_FIELD_WORDS = (
    "moderation",
    "flagged",
    "revoke_reason",
    "token",
    "intent",
    "buyer",
    "external_id",
    "email",
    "roles",
    "request_id",
    "claim",
    "idempotency",
    "secret",
    "edit",
    "history",
    "source_markdown",
)


def _set_status(market: Market, publisher: Call, listing_id: str, status: str) -> None:
    market.fp.publishing.change_status(
        publisher, listing_id, {"status": status}, idempotency_key=new_key()
    )


def _search_ids(market: Market, params: dict[str, Any] | None = None) -> list[str]:
    page = market.fp.catalog.search(params or {})
    return [item.listing_id for item in page.items]


def _unstructured(value: object) -> str:
    return json.dumps(cattrs.Converter().unstructure(value), default=str)


def _field_names(value: object) -> set[str]:
    """Every attrs field name reachable from ``value``."""
    names: set[str] = set()
    if attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            names.add(field.name)
            names |= _field_names(getattr(value, field.name))
    elif isinstance(value, list | tuple):
        for item in value:
            names |= _field_names(item)
    return names


# --------------------------------------------------------------------------- I-PUB-01


def test_i_pub_01_search_returns_published_only(market: Market) -> None:
    """Search answers published listings only; draft, unlisted and suspended never appear."""
    publisher = market.publisher()
    admin = market.admin()
    published, _ = market.published(publisher, name="Alpha Agent")
    draft = market.draft(publisher, name="Alpha Draft")
    unlisted, _ = market.published(publisher, name="Alpha Unlisted")
    _set_status(market, publisher, unlisted.listing.listing_id, "unlisted")
    suspended, _ = market.published(publisher, name="Alpha Suspended")
    market.fp.admin.suspend_listing(
        admin, suspended.listing.listing_id, {"reason": "spam"}, idempotency_key=new_key()
    )
    back_to_draft, _ = market.published(publisher, name="Alpha Withdrawn")
    _set_status(market, publisher, back_to_draft.listing.listing_id, "draft")

    expected = [published.listing.listing_id]
    assert _search_ids(market) == expected
    for params in (
        {"q": "alpha"},
        {"tags": ["support"]},
        {"categories": "operations"},
        {"assetKind": "whs_agent"},
        {"sort": "name"},
        {"sort": "created"},
        {"q": "alpha", "sort": "relevance"},
    ):
        assert _search_ids(market, params) == expected, params
    page = market.fp.catalog.search({})
    assert all(item.status is ListingStatus.PUBLISHED for item in page.items)
    assert draft.listing.listing_id not in _search_ids(market, {"q": "draft"})


def test_i_pub_01_search_filters_and_terms_narrow_the_published_set(market: Market) -> None:
    """Terms are prefix matches over every term; tag, category and kind filters must all hold."""
    publisher = market.publisher()
    triage, _ = market.published(publisher, name="Support Triage", tags=["support", "triage"])
    billing, _ = market.published(
        publisher,
        name="Billing Helper",
        summary="Answers invoice questions.",
        tags=["billing"],
        categories=["finance"],
    )
    triage_id, billing_id = triage.listing.listing_id, billing.listing.listing_id
    assert set(_search_ids(market)) == {triage_id, billing_id}
    assert _search_ids(market, {"q": "tri"}) == [triage_id]
    assert _search_ids(market, {"q": "support triage"}) == [triage_id]
    assert _search_ids(market, {"q": "support billing"}) == []
    assert _search_ids(market, {"tags": ["SUPPORT", "triage"]}) == [triage_id]
    assert _search_ids(market, {"tags": ["support", "billing"]}) == []
    assert _search_ids(market, {"categories": ["finance"]}) == [billing_id]
    assert _search_ids(market, {"assetKind": "spec_asset"}) == []


# --------------------------------------------------------------------------- I-PUB-02


def test_i_pub_02_detail_of_a_non_published_listing_is_not_found(market: Market) -> None:
    """Draft, unlisted, suspended and unknown listings answer one identical NOT_FOUND."""
    publisher = market.publisher()
    admin = market.admin()
    draft = market.draft(publisher)
    market.release(publisher, draft.listing.listing_id)
    unlisted, _ = market.published(publisher)
    _set_status(market, publisher, unlisted.listing.listing_id, "unlisted")
    suspended, _ = market.published(publisher)
    market.fp.admin.suspend_listing(
        admin, suspended.listing.listing_id, {"reason": "spam"}, idempotency_key=new_key()
    )
    hidden = [
        draft.listing.listing_id,
        unlisted.listing.listing_id,
        suspended.listing.listing_id,
        "lst_01JDOESNOTEXIST0000000000",
    ]
    shapes = set()
    for listing_id in hidden:
        error = failure(lambda lid=listing_id: market.fp.catalog.listing(lid))
        assert isinstance(error, NotFound)
        shapes.add(error_shape(error))
        error = failure(lambda lid=listing_id: market.fp.catalog.releases(lid))
        assert isinstance(error, NotFound)
        shapes.add(error_shape(error))
    assert len(shapes) == 1


def test_i_pub_02_detail_disappears_when_the_publisher_withdraws_it(market: Market) -> None:
    """A published listing moved back to draft stops being readable by the public at once."""
    publisher = market.publisher()
    view, release = market.published(publisher)
    listing_id = view.listing.listing_id
    detail = market.fp.catalog.listing(listing_id)
    assert detail.listing.listing_id == listing_id
    assert detail.latest_release is not None
    assert detail.latest_release.release_id == release.release_id
    _set_status(market, publisher, listing_id, "draft")
    with pytest.raises(NotFound):
        market.fp.catalog.listing(listing_id)


# --------------------------------------------------------------------------- I-PUB-03


def test_i_pub_03_public_types_have_no_private_fields() -> None:
    """The public read models have no field for moderation, install, auth or edit data."""
    for public_type in (PublicListing, PublicRelease, PublicListingDetail, PublisherSummary):
        for field in attrs.fields(public_type):
            for word in PRIVATE_FIELD_WORDS:
                assert word not in field.name, (public_type.__name__, field.name)
    assert "description" not in attrs.fields_dict(PublicListing)
    assert "revoke_reason" not in attrs.fields_dict(PublicRelease)
    assert "publisher_user_id" not in attrs.fields_dict(PublicRelease)


def test_i_pub_03_private_data_never_reaches_public_output(market: Market) -> None:
    """Moderation and revoke reasons, e-mails and install data reach no public output."""
    # A publisher whose identity provider handed over an e-mail address.
    market.fp.operator.ensure_user("pub-a", display_name="Pub A")
    secret_email = "private-pub@example.com"
    publisher = Call(Principal("pub-mail", "Pub Mail", secret_email), "req-p")
    market.fp.installs.list_intents(publisher)  # first sight creates the user with the e-mail
    market.fp.operator.set_roles("pub-mail", grant=[Role.PUBLISHER])
    admin = market.admin()
    buyer = market.user("buyer")

    view, _ = market.published(publisher)
    listing_id = view.listing.listing_id
    newer = market.release(publisher, listing_id, "2.0.0")
    market.fp.publishing.revoke_release(
        publisher, newer.release_id, {"reason": "REVOKE-SECRET-7"}, idempotency_key=new_key()
    )
    market.fp.admin.suspend_listing(
        admin, listing_id, {"reason": "MODERATION-SECRET-1"}, idempotency_key=new_key()
    )
    market.fp.admin.unsuspend_listing(
        admin, listing_id, {"reason": "MODERATION-SECRET-2"}, idempotency_key=new_key()
    )
    _set_status(market, publisher, listing_id, "published")
    intent = market.intent(buyer, listing_id)
    market.token(buyer, intent.install_intent_id)
    stored = market.store.listings[listing_id]
    assert stored.moderation.reason == "MODERATION-SECRET-2"  # the secret is really there
    assert market.fp.publishing.get_listing(publisher, listing_id).moderation.reason == (
        "MODERATION-SECRET-2"
    )

    outputs: list[object] = [
        market.fp.catalog.search({}),
        market.fp.catalog.search({"q": "triage"}),
        market.fp.catalog.listing(listing_id),
        market.fp.catalog.releases(listing_id),
        market.fp.catalog.releases(listing_id, {"includeRevoked": True}),
    ]
    buyer_user = market.store.users[market.store.users_by_external_id["buyer"]]
    publisher_user = market.store.users[market.store.users_by_external_id["pub-mail"]]
    forbidden = [
        "MODERATION-SECRET-1",
        "MODERATION-SECRET-2",
        "REVOKE-SECRET-7",
        secret_email,
        "pub-mail",  # the identity provider's subject
        buyer_user.user_id,
        intent.install_intent_id,
        "flagged",
        "moderation",
    ]
    for output in outputs:
        rendered = repr(output) + _unstructured(output)
        for secret in forbidden:
            assert secret not in rendered, (secret, type(output).__name__)
        assert not {"moderation", "flagged", "revoke_reason", "email"} & _field_names(output)
    detail = market.fp.catalog.listing(listing_id)
    assert detail.listing.publisher.publisher_id == publisher_user.user_id
    assert detail.listing.install_attempts_30d == 1


# --------------------------------------------------------------------------- I-PUB-04


def test_i_pub_04_revoked_releases_are_hidden_unless_asked_for(market: Market) -> None:
    """Revoked releases are hidden unless includeRevoked, then marked revoked without reason."""
    publisher = market.publisher()
    view, first = market.published(publisher, "1.0.0")
    listing_id = view.listing.listing_id
    market.clock.advance(1_000)
    second = market.release(publisher, listing_id, "1.1.0")
    market.clock.advance(1_000)
    third = market.release(publisher, listing_id, "2.0.0")
    market.clock.advance(1_000)
    market.fp.publishing.revoke_release(
        publisher, third.release_id, {"reason": "broken build"}, idempotency_key=new_key()
    )
    detail = market.fp.catalog.listing(listing_id)
    assert detail.latest_release is not None
    assert detail.latest_release.release_id == second.release_id
    assert [r.release_id for r in detail.releases.items] == [second.release_id, first.release_id]
    visible = market.fp.catalog.releases(listing_id)
    assert [r.release_id for r in visible.items] == [second.release_id, first.release_id]
    assert all(r.status is ReleaseStatus.PUBLISHED for r in visible.items)
    for flag in (True, "true"):
        everything = market.fp.catalog.releases(listing_id, {"includeRevoked": flag})
        assert [r.release_id for r in everything.items] == [
            third.release_id,
            second.release_id,
            first.release_id,
        ]
        revoked = everything.items[0]
        assert revoked.status is ReleaseStatus.REVOKED
        assert revoked.revoked_at_ms == market.clock.now_ms()
        assert "broken build" not in repr(everything) + _unstructured(everything)
    assert market.fp.catalog.releases(listing_id, {"includeRevoked": "false"}) == visible
    with pytest.raises(ValidationFailed) as caught:
        market.fp.catalog.releases(listing_id, {"includeRevoked": "yes"})
    assert [f.field_name for f in caught.value.fields] == ["includeRevoked"]


def test_i_pub_04_listing_whose_releases_are_all_revoked_shows_no_latest(market: Market) -> None:
    """When every release is revoked the detail has no latest release and an empty list."""
    publisher = market.publisher()
    view, release = market.published(publisher)
    listing_id = view.listing.listing_id
    market.fp.publishing.revoke_release(
        publisher, release.release_id, {}, idempotency_key=new_key()
    )
    detail = market.fp.catalog.listing(listing_id)
    assert detail.latest_release is None
    assert detail.releases.items == ()
    assert market.fp.catalog.releases(listing_id).items == ()


# --------------------------------------------------------------------------- I-PUB-05


@pytest.mark.parametrize("sort", ["updated", "created", "name", "relevance"])
def test_i_pub_05_search_pages_walk_every_listing_once(market: Market, sort: str) -> None:
    """With limit 1, 2 and 3 every published listing is returned exactly once, in sort order."""
    publisher = market.publisher()
    names = ["Echo agent", "alpha agent", "Delta agent", "charlie agent", "Bravo agent"]
    expected_ids = set()
    for index, name in enumerate(names):
        market.clock.advance(10 if index % 2 else 0)  # some listings share a timestamp
        view, _ = market.published(publisher, name=name, summary="agent " * (index % 3))
        expected_ids.add(view.listing.listing_id)
    market.draft(publisher, name="Zulu agent draft")
    params: dict[str, Any] = {"sort": sort}
    if sort == "relevance":
        params["q"] = "agent"
    full = market.fp.catalog.search(params).items
    assert {item.listing_id for item in full} == expected_ids
    if sort == "name":
        assert [item.name.casefold() for item in full] == sorted(n.casefold() for n in names)
    if sort in ("updated", "created"):
        attr = "updated_at_ms" if sort == "updated" else "created_at_ms"
        keys = [(getattr(item, attr), item.listing_id) for item in full]
        assert keys == sorted(keys, reverse=True)
    for limit in (1, 2, 3):
        items = walk(
            lambda cursor, limit=limit: market.fp.catalog.search(
                {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
            )
        )
        assert [item.listing_id for item in items] == [item.listing_id for item in full]


def test_i_pub_05_last_page_has_no_cursor_and_limits_are_bounded(market: Market) -> None:
    """An exact last page ends the walk, and limits outside 1..200 are refused on ``limit``."""
    publisher = market.publisher()
    for _ in range(4):
        market.published(publisher)
    first = market.fp.catalog.search({"limit": 2})
    assert len(first.items) == 2
    assert first.next_cursor is not None
    second = market.fp.catalog.search({"limit": 2, "cursor": first.next_cursor})
    assert len(second.items) == 2
    assert second.next_cursor is None
    assert len(market.fp.catalog.search({"limit": 200}).items) == 4
    assert len(market.fp.catalog.search({"limit": "3"}).items) == 3
    for bad in (0, 201, -1, "x", 2.5, True):
        with pytest.raises(ValidationFailed) as caught:
            market.fp.catalog.search({"limit": bad})
        assert [f.field_name for f in caught.value.fields] == ["limit"]


def test_i_pub_05_release_pages_walk_every_release_once(market: Market) -> None:
    """Public release lists page through every visible release exactly once."""
    publisher = market.publisher()
    view, _ = market.published(publisher, "0.1.0")
    listing_id = view.listing.listing_id
    for minor in range(2, 8):
        market.clock.advance(minor % 2)
        market.release(publisher, listing_id, f"0.{minor}.0")
    expected = [r.release_id for r in market.fp.catalog.releases(listing_id).items]
    assert len(expected) == 7
    for limit in (1, 2, 3):
        items = walk(
            lambda cursor, limit=limit: market.fp.catalog.releases(
                listing_id, {"limit": limit, "cursor": cursor}
            )
        )
        assert [r.release_id for r in items] == expected


@pytest.mark.parametrize(
    ("params", "short"),
    [
        ({}, True),
        ({"sort": "updated", "cursor": "abc", "limit": "50"}, True),
        ({"sort": "created"}, True),
        ({"limit": "51"}, False),
        ({"limit": "x"}, False),
        ({"limit": ["10", "20"]}, False),
        ({"sort": "installs"}, False),
        ({"q": "agent"}, False),
        ({"tags": "a"}, False),
        ({"categories": "a"}, False),
        ({"assetKind": "whs_agent"}, False),
        ({"verified": "true"}, False),
        ({"unknown": "1"}, False),
    ],
)
def test_short_search_is_a_browse_of_at_most_one_default_page(
    params: dict[str, object], short: bool
) -> None:
    """ADR 0044: only a sort other than installs, a cursor and a default-sized page."""
    assert short_search(params) is short

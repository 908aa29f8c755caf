"""The web pages' own reads (``fp.storefront``) over the in-memory adapter: a
publisher's public page, install attempts per day and release, finding a user."""

from __future__ import annotations

import pytest

from fleetprompt_core import NotFound, Unauthorized
from fleetprompt_core.base import limits
from support import Market


def test_publisher_page_shows_published_listings_only_and_hides_the_rest(
    market: Market,
) -> None:
    """A publisher's page lists its published listings; a user without one, a draft-only
    publisher and an unknown id are all NOT_FOUND (user ids cannot be probed)."""
    pub = market.publisher("pub-a")
    shown, _ = market.published(pub, name="Shown Agent")
    market.draft(pub, name="Hidden Draft")
    page = market.fp.storefront.publisher(shown.listing.publisher_user_id)
    assert [item.name for item in page.listings] == ["Shown Agent"]
    assert page.profile.publisher_id == shown.listing.publisher_user_id
    drafty = market.publisher("pub-b")
    only_draft = market.draft(drafty, name="Draft Only")
    buyer = market.user("buyer")
    for publisher_id in (
        only_draft.listing.publisher_user_id,
        market.fp.operator.ensure_user("buyer").user_id,
        "usr_unknown",
    ):
        with pytest.raises(NotFound):
            market.fp.storefront.publisher(publisher_id, buyer)


def test_install_activity_counts_attempts_per_day_and_release_for_the_owner(
    market: Market,
) -> None:
    """Intents created over the last 30 days are counted per UTC day and release; older
    ones are not; another publisher's listing is NOT_FOUND; a buyer is UNAUTHORIZED."""
    pub = market.publisher("pub-a")
    view, first = market.published(pub)
    listing_id = view.listing.listing_id
    buyer = market.user("buyer")
    market.intent(buyer, listing_id)  # 40 days ago: outside the window
    market.clock.advance(10 * limits.DAY_MS)
    for _ in range(2):
        market.intent(buyer, listing_id)
    second = market.release(pub, listing_id, "2.0.0")
    market.clock.advance(30 * limits.DAY_MS - 1)
    for _ in range(3):
        market.intent(buyer, listing_id, releaseId=second.release_id)
    activity = market.fp.storefront.install_activity(pub, listing_id)
    assert activity.days == 30
    assert sum(activity.total) == 5
    assert sum(activity.per_release[first.release_id]) == 2
    assert activity.per_release[second.release_id][-1] == 3
    assert len(activity.per_release[first.release_id]) == 30
    with pytest.raises(NotFound):
        market.fp.storefront.install_activity(market.publisher("pub-b"), listing_id)
    with pytest.raises(Unauthorized):
        market.fp.storefront.install_activity(buyer, listing_id)


def test_find_user_is_for_admins_and_knows_usernames_and_emails(market: Market) -> None:
    """An admin finds a user by external id, user id or an account's e-mail (any case);
    anyone else is UNAUTHORIZED; unknown names and garbage are NOT_FOUND."""
    admin = market.admin()
    carol = market.fp.operator.ensure_user("carol")
    market.fp.accounts.set_password("carol", "a password for carol's account", email="c@x.io")
    for name in ("carol", carol.user_id, "C@X.IO", " carol "):
        assert market.fp.storefront.find_user(admin, name).user_id == carol.user_id
    for name in ("nobody", "", "x" * 300, "a\x00b"):
        with pytest.raises(NotFound):
            market.fp.storefront.find_user(admin, name)
    with pytest.raises(Unauthorized):
        market.fp.storefront.find_user(market.user("carol"), "carol")

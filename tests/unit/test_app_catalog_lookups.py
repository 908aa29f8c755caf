"""Public lookups by id the MCP tools need (contract §13): one release, one publisher.

Both answer ``NOT_FOUND`` for anything the public may not see (ADR 0002), exactly
as for an id that does not exist (M-TOOL-04 over the use cases).
"""

from __future__ import annotations

import pytest

from fleetprompt_core import NotFound, ReleaseStatus
from fleetprompt_core.services.views import PublicPublisher, PublicRelease
from support import Market, new_key


def test_m_tool_03_release_by_id_of_a_published_listing(market: Market) -> None:
    """A release of a published listing is public by id; a revoked one stays, marked revoked."""
    publisher = market.publisher()
    view, release = market.published(publisher)
    found = market.fp.catalog.release(release.release_id)
    assert isinstance(found, PublicRelease)
    assert (found.release_id, found.listing_id, found.version) == (
        release.release_id,
        view.listing.listing_id,
        "1.0.0",
    )
    market.fp.publishing.revoke_release(
        publisher, release.release_id, {"reason": "bad build"}, idempotency_key=new_key()
    )
    revoked = market.fp.catalog.release(release.release_id)
    assert revoked.status is ReleaseStatus.REVOKED
    assert revoked.revoked_at_ms is not None


def test_m_tool_04_release_of_a_draft_or_unknown_is_not_found(market: Market) -> None:
    """A release whose listing is not published answers like an unknown id."""
    publisher = market.publisher()
    draft = market.draft(publisher)
    hidden = market.release(publisher, draft.listing.listing_id)
    with pytest.raises(NotFound) as hidden_error:
        market.fp.catalog.release(hidden.release_id)
    with pytest.raises(NotFound) as unknown_error:
        market.fp.catalog.release("rel_unknown")
    assert hidden_error.value.message == unknown_error.value.message


def test_m_tool_03_publisher_with_a_published_listing(market: Market) -> None:
    """A publisher with a published listing has a public profile: name, bio, verification."""
    publisher = market.publisher("pub-a")
    view, _ = market.published(publisher)
    market.fp.profiles.put(
        publisher,
        {"displayName": "Agents & Co", "bioMarkdown": "We build **agents**."},
        idempotency_key=new_key(),
    )
    found = market.fp.catalog.publisher(view.listing.publisher_user_id)
    assert isinstance(found, PublicPublisher)
    assert found.display_name == "Agents & Co"
    assert "<strong>agents</strong>" in found.bio.html
    assert found.publisher_id == view.listing.publisher_user_id


def test_m_tool_04_publisher_without_published_listing_is_not_found(market: Market) -> None:
    """A buyer, a publisher with drafts only, or an unknown id: the same NOT_FOUND."""
    publisher = market.publisher("pub-drafts")
    draft = market.draft(publisher)
    buyer = market.fp.operator.ensure_user("buyer")
    messages = set()
    for publisher_id in (draft.listing.publisher_user_id, buyer.user_id, "usr_unknown"):
        with pytest.raises(NotFound) as error:
            market.fp.catalog.publisher(publisher_id)
        messages.add(error.value.message)
    assert messages == {"Publisher not found."}

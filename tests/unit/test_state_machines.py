"""The state machines of §4: every (from, to) pair of every machine, via tables and entities.

The expected tables below are written from the contract's text, not imported
from ``fleetprompt_core.domain.states``:

* Listing (publisher): ``draft → published``, ``published → unlisted | draft``,
  ``unlisted → published | draft``.
* Listing (admin): ``any → suspended`` (from every other status), only an admin
  lifts a suspension, back to ``unlisted``.
* Release: ``published → revoked``; ``revoked`` is terminal.
* Install intent: ``created → token_issued``, ``token_issued → token_issued``,
  ``created | token_issued → redeemed | canceled | expired``; ``redeemed``,
  ``canceled`` and ``expired`` are terminal.
* Install token: ``issued → redeemed | expired | revoked``.
"""

from __future__ import annotations

import enum
import itertools
from typing import Any

import attrs
import pytest

from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import (
    AssetKind,
    InstallIntentStatus,
    InstallTargetSystem,
    InstallTokenStatus,
    ListingStatus,
    ReleaseStatus,
)
from fleetprompt_core.base.errors import Conflict, ErrorCode, NotFound, ValidationFailed
from fleetprompt_core.domain import states
from fleetprompt_core.domain.model import (
    Compat,
    InstallIntent,
    InstallToken,
    Links,
    Listing,
    Moderation,
    Release,
    ReleaseRefs,
    TargetContext,
)
from fleetprompt_core.domain.states import IllegalTransition
from fleetprompt_core.policies.markdown import rendered
from support import Market, new_key

LS = ListingStatus
RS = ReleaseStatus
IIS = InstallIntentStatus
ITS = InstallTokenStatus

T0 = 1_767_225_600_000
LATER = T0 + 1_000

EXPECTED_LISTING_BY_PUBLISHER = {
    (LS.DRAFT, LS.PUBLISHED),
    (LS.PUBLISHED, LS.UNLISTED),
    (LS.PUBLISHED, LS.DRAFT),
    (LS.UNLISTED, LS.PUBLISHED),
    (LS.UNLISTED, LS.DRAFT),
}
EXPECTED_LISTING_BY_ADMIN = {
    (LS.DRAFT, LS.SUSPENDED),
    (LS.PUBLISHED, LS.SUSPENDED),
    (LS.UNLISTED, LS.SUSPENDED),
    (LS.SUSPENDED, LS.UNLISTED),
}
EXPECTED_RELEASE = {(RS.PUBLISHED, RS.REVOKED)}
_OPEN = (IIS.CREATED, IIS.TOKEN_ISSUED)
EXPECTED_INSTALL_INTENT = {
    (IIS.CREATED, IIS.TOKEN_ISSUED),
    (IIS.TOKEN_ISSUED, IIS.TOKEN_ISSUED),
    *((source, IIS.REDEEMED) for source in _OPEN),
    *((source, IIS.CANCELED) for source in _OPEN),
    *((source, IIS.EXPIRED) for source in _OPEN),
}
EXPECTED_INSTALL_TOKEN = {
    (ITS.ISSUED, ITS.REDEEMED),
    (ITS.ISSUED, ITS.EXPIRED),
    (ITS.ISSUED, ITS.REVOKED),
}

MACHINES: list[tuple[str, states.StateMachine[Any], type[enum.Enum], set[Any]]] = [
    ("listing_by_publisher", states.LISTING_BY_PUBLISHER, LS, EXPECTED_LISTING_BY_PUBLISHER),
    ("listing_by_admin", states.LISTING_BY_ADMIN, LS, EXPECTED_LISTING_BY_ADMIN),
    ("release", states.RELEASE, RS, EXPECTED_RELEASE),
    ("install_intent", states.INSTALL_INTENT, IIS, EXPECTED_INSTALL_INTENT),
    ("install_token", states.INSTALL_TOKEN, ITS, EXPECTED_INSTALL_TOKEN),
]

ALL_PAIRS = [
    pytest.param(
        machine, source, target, (source, target) in expected, id=f"{name}-{source}-{target}"
    )
    for name, machine, status_enum, expected in MACHINES
    for source, target in itertools.product(status_enum, status_enum)
]


def pairs(status_enum: type[enum.Enum], expected: set[Any]) -> list[Any]:
    return [
        pytest.param(source, target, (source, target) in expected, id=f"{source}-{target}")
        for source, target in itertools.product(status_enum, status_enum)
    ]


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize(("machine", "source", "target", "allowed"), ALL_PAIRS)
def test_machine_allows_exactly_the_contract_pairs(
    machine: states.StateMachine[Any], source: Any, target: Any, allowed: bool
) -> None:
    """``allows`` is true exactly for the contract's pairs; ``require`` raises CONFLICT else."""
    assert machine.allows(source, target) is allowed
    if allowed:
        assert machine.require(source, target) is None
    else:
        with pytest.raises(IllegalTransition) as info:
            machine.require(source, target)
        assert info.value.code is ErrorCode.CONFLICT
        assert isinstance(info.value, Conflict)
        assert source.value in info.value.message
        assert target.value in info.value.message


@pytest.mark.parametrize(("name", "machine", "status_enum", "expected"), MACHINES)
def test_machine_table_has_no_extra_pairs(
    name: str, machine: states.StateMachine[Any], status_enum: type[enum.Enum], expected: set[Any]
) -> None:
    """Each machine's table equals the contract's table (no pair more, none less)."""
    allowed = {
        pair for pair in itertools.product(status_enum, status_enum) if machine.allows(*pair)
    }
    assert allowed == expected, name


def test_terminal_statuses_have_no_way_out() -> None:
    """Revoked releases, redeemed/canceled/expired intents and used tokens are terminal."""
    assert not any(states.RELEASE.allows(RS.REVOKED, t) for t in RS)
    for terminal in (IIS.REDEEMED, IIS.CANCELED, IIS.EXPIRED):
        assert [t for t in IIS if states.INSTALL_INTENT.allows(terminal, t)] == []
    for terminal in (ITS.REDEEMED, ITS.EXPIRED, ITS.REVOKED):
        assert [t for t in ITS if states.INSTALL_TOKEN.allows(terminal, t)] == []


# --------------------------------------------------------------------------- entities


def make_listing(status: ListingStatus) -> Listing:
    return Listing(
        listing_id="lst_1",
        publisher_user_id="usr_1",
        asset_kind=AssetKind.WHS_AGENT,
        status=status,
        name="Agent",
        summary="",
        description=rendered(""),
        tags=(),
        categories=(),
        images=(),
        links=Links(),
        moderation=Moderation(),
        created_at_ms=T0,
        updated_at_ms=T0,
    )


def make_release(status: ReleaseStatus) -> Release:
    return Release(
        release_id="rel_1",
        listing_id="lst_1",
        publisher_user_id="usr_1",
        version="1.0.0",
        status=status,
        refs=ReleaseRefs(whs_agent_id="a"),
        compat=Compat(),
        artifacts=(),
        notes=rendered(""),
        published_at_ms=T0,
    )


def make_intent(status: InstallIntentStatus) -> InstallIntent:
    return InstallIntent(
        install_intent_id="ii_1",
        buyer_user_id="usr_2",
        listing_id="lst_1",
        release_id="rel_1",
        target_system=InstallTargetSystem.WHS,
        target_context=TargetContext(),
        status=status,
        expires_at_ms=T0 + limits.INTENT_TTL_MS,
        created_at_ms=T0,
        updated_at_ms=T0,
    )


def make_token(status: InstallTokenStatus) -> InstallToken:
    return InstallToken(
        token_id="itk_1",
        install_intent_id="ii_1",
        buyer_user_id="usr_2",
        target_system=InstallTargetSystem.WHS,
        token_hash="h" * 64,
        status=status,
        issued_at_ms=T0,
        expires_at_ms=T0 + limits.TOKEN_TTL_DEFAULT_MS,
    )


def assert_illegal(entity: Any, move: Any) -> None:
    """``move(entity)`` raises IllegalTransition and leaves ``entity`` exactly as it was."""
    before = attrs.evolve(entity)
    with pytest.raises(IllegalTransition) as info:
        move(entity)
    assert info.value.code is ErrorCode.CONFLICT
    assert entity == before


def test_entities_are_frozen() -> None:
    """Entities cannot be changed in place: assigning a status raises."""
    for entity, status in (
        (make_listing(LS.DRAFT), LS.PUBLISHED),
        (make_release(RS.PUBLISHED), RS.REVOKED),
        (make_intent(IIS.CREATED), IIS.REDEEMED),
        (make_token(ITS.ISSUED), ITS.REDEEMED),
    ):
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            entity.status = status  # type: ignore[misc]
        assert entity.status is not status


@pytest.mark.parametrize(("source", "target", "allowed"), pairs(LS, EXPECTED_LISTING_BY_PUBLISHER))
def test_listing_moved_by_publisher(source: LS, target: LS, allowed: bool) -> None:
    """``moved_by_publisher`` follows the publisher table and never mutates the original."""
    listing = make_listing(source)
    if allowed:
        moved = listing.moved_by_publisher(target, LATER)
        assert (moved.status, moved.updated_at_ms) == (target, LATER)
        assert attrs.evolve(moved, status=source, updated_at_ms=T0) == listing
        assert listing.status is source
    else:
        assert_illegal(listing, lambda e: e.moved_by_publisher(target, LATER))


@pytest.mark.parametrize("source", list(LS))
def test_listing_suspended(source: LS) -> None:
    """An admin suspends from any other status (flagged, reason kept); twice conflicts."""
    listing = make_listing(source)
    if source is LS.SUSPENDED:
        assert_illegal(listing, lambda e: e.suspended("spam", LATER))
        return
    suspended = listing.suspended("spam", LATER)
    assert suspended.status is LS.SUSPENDED
    assert suspended.moderation == Moderation(flagged=True, reason="spam")
    assert suspended.updated_at_ms == LATER
    assert listing.status is source
    assert listing.moderation == Moderation()


@pytest.mark.parametrize("source", list(LS))
def test_listing_unsuspended(source: LS) -> None:
    """Only a suspended listing can be unsuspended, and it comes back ``unlisted``."""
    listing = make_listing(source)
    if source is not LS.SUSPENDED:
        assert_illegal(listing, lambda e: e.unsuspended(None, LATER))
        return
    suspended = attrs.evolve(listing, moderation=Moderation(flagged=True, reason="spam"))
    lifted = suspended.unsuspended("fixed", LATER)
    assert lifted.status is LS.UNLISTED
    assert lifted.moderation == Moderation(flagged=False, reason="fixed")
    assert suspended.status is LS.SUSPENDED


def test_publisher_cannot_lift_a_suspension() -> None:
    """A suspended listing cannot be moved by its publisher to any status."""
    listing = make_listing(LS.SUSPENDED)
    for target in LS:
        assert_illegal(listing, lambda e, t=target: e.moved_by_publisher(t, LATER))


@pytest.mark.parametrize("source", list(RS))
def test_release_revoked(source: RS) -> None:
    """A published release revokes (time and reason recorded); a revoked one cannot."""
    release = make_release(source)
    if source is RS.REVOKED:
        assert_illegal(release, lambda e: e.revoked("again", LATER))
        return
    revoked = release.revoked("bad build", LATER)
    assert (revoked.status, revoked.revoked_at_ms, revoked.revoke_reason) == (
        RS.REVOKED,
        LATER,
        "bad build",
    )
    assert release.status is RS.PUBLISHED
    assert release.revoked_at_ms is None


INTENT_MOVES = {
    IIS.TOKEN_ISSUED: lambda intent, now: intent.token_issued(now),
    IIS.REDEEMED: lambda intent, now: intent.redeemed(now),
    IIS.CANCELED: lambda intent, now: intent.canceled(now),
}


@pytest.mark.parametrize("target", list(INTENT_MOVES))
@pytest.mark.parametrize("source", list(IIS))
def test_intent_transition_methods(source: IIS, target: IIS) -> None:
    """token_issued, redeemed and canceled follow the intent table before expiry."""
    intent = make_intent(source)
    move = INTENT_MOVES[target]
    if (source, target) in EXPECTED_INSTALL_INTENT:
        moved = move(intent, LATER)
        assert (moved.status, moved.updated_at_ms) == (target, LATER)
        assert intent.status is source
    else:
        assert_illegal(intent, lambda e: move(e, LATER))


@pytest.mark.parametrize("target", list(INTENT_MOVES))
@pytest.mark.parametrize("source", list(_OPEN))
def test_intent_past_expiry_cannot_move(source: IIS, target: IIS) -> None:
    """Once its 24 h are over an open intent is expired: issuing, redeeming, canceling conflict."""
    intent = make_intent(source)
    assert_illegal(intent, lambda e: INTENT_MOVES[target](e, intent.expires_at_ms))


@pytest.mark.parametrize("source", list(IIS))
def test_intent_expired(source: IIS) -> None:
    """``expired`` is legal only for an open intent at or after its expiry time."""
    intent = make_intent(source)
    due = intent.expires_at_ms
    assert_illegal(intent, lambda e: e.expired(due - 1))
    if source in _OPEN:
        expired = intent.expired(due)
        assert (expired.status, expired.updated_at_ms) == (IIS.EXPIRED, due)
        assert intent.status is source
    else:
        assert_illegal(intent, lambda e: e.expired(due))


@pytest.mark.parametrize("source", list(IIS))
def test_intent_observed(source: IIS) -> None:
    """``observed`` expires an open intent exactly at its expiry; terminal ones never change."""
    intent = make_intent(source)
    due = intent.expires_at_ms
    assert intent.observed(due - 1) is intent
    observed = intent.observed(due)
    if source in _OPEN:
        assert (observed.status, observed.updated_at_ms) == (IIS.EXPIRED, due)
        assert intent.observed(due + 10**9).updated_at_ms == due
    else:
        assert observed is intent


TOKEN_MOVES = {
    ITS.REDEEMED: lambda token, now: token.redeemed("whs", now),
    ITS.REVOKED: lambda token, now: token.revoked(now),
}


@pytest.mark.parametrize("target", list(TOKEN_MOVES))
@pytest.mark.parametrize("source", list(ITS))
def test_token_transition_methods(source: ITS, target: ITS) -> None:
    """redeemed and revoked follow the token table while the token is unexpired."""
    token = make_token(source)
    move = TOKEN_MOVES[target]
    if (source, target) in EXPECTED_INSTALL_TOKEN:
        moved = move(token, LATER)
        assert moved.status is target
        assert token.status is source
        if target is ITS.REDEEMED:
            assert (moved.redeemed_at_ms, moved.redeemed_by_system) == (LATER, "whs")
    else:
        assert_illegal(token, lambda e: move(e, LATER))


@pytest.mark.parametrize("target", list(TOKEN_MOVES))
def test_token_past_expiry_cannot_be_redeemed_or_revoked(target: ITS) -> None:
    """At its expiry an issued token is expired: redeeming or revoking it conflicts."""
    token = make_token(ITS.ISSUED)
    assert_illegal(token, lambda e: TOKEN_MOVES[target](e, token.expires_at_ms))
    assert TOKEN_MOVES[target](token, token.expires_at_ms - 1).status is target


@pytest.mark.parametrize("source", list(ITS))
def test_token_expired_and_observed(source: ITS) -> None:
    """A token expires only when issued and due; observed flips exactly at expiresAt."""
    token = make_token(source)
    due = token.expires_at_ms
    assert_illegal(token, lambda e: e.expired(due - 1))
    assert token.observed(due - 1) is token
    assert token.is_usable(due - 1) is (source is ITS.ISSUED)
    assert token.is_usable(due) is False
    if source is ITS.ISSUED:
        assert token.expired(due).status is ITS.EXPIRED
        assert token.observed(due).status is ITS.EXPIRED
    else:
        assert_illegal(token, lambda e: e.expired(due))
        assert token.observed(due) is token


# --------------------------------------------------------------------------- use cases


def _status(market: Market, pub: Any, listing_id: str, status: str) -> Any:
    return market.fp.publishing.change_status(
        pub, listing_id, {"status": status}, idempotency_key=new_key()
    )


@pytest.mark.parametrize("target", ["draft", "published", "unlisted"])
def test_publisher_status_request_on_suspended_listing_conflicts(
    market: Market, target: str
) -> None:
    """A publisher status request on a suspended listing answers CONFLICT and changes nothing."""
    pub, admin = market.publisher(), market.admin()
    view, _ = market.published(pub)
    listing_id = view.listing.listing_id
    market.fp.admin.suspend_listing(
        admin, listing_id, {"reason": "spam"}, idempotency_key=new_key()
    )
    suspended = market.store.listings[listing_id]
    with pytest.raises(Conflict) as info:
        _status(market, pub, listing_id, target)
    assert info.value.code is ErrorCode.CONFLICT
    assert market.store.listings[listing_id] == suspended
    assert suspended.status is LS.SUSPENDED


def test_publisher_cannot_request_suspended(market: Market) -> None:
    """``suspended`` is not a publisher status: VALIDATION_FAILED on ``status``."""
    pub = market.publisher()
    listing_id = market.draft(pub).listing.listing_id
    with pytest.raises(ValidationFailed) as info:
        _status(market, pub, listing_id, "suspended")
    assert [f.field_name for f in info.value.fields] == ["status"]
    assert market.store.listings[listing_id].status is LS.DRAFT


def test_draft_to_published_needs_a_published_release(market: Market) -> None:
    """draft → published without a published release (none, or only revoked) is CONFLICT."""
    pub = market.publisher()
    listing_id = market.draft(pub).listing.listing_id
    with pytest.raises(Conflict):
        _status(market, pub, listing_id, "published")
    assert market.store.listings[listing_id].status is LS.DRAFT
    release = market.release(pub, listing_id)
    market.fp.publishing.revoke_release(pub, release.release_id, {}, idempotency_key=new_key())
    with pytest.raises(Conflict):
        _status(market, pub, listing_id, "published")
    assert market.store.listings[listing_id].status is LS.DRAFT
    market.release(pub, listing_id, "1.0.1")
    assert _status(market, pub, listing_id, "published").value.listing.status is LS.PUBLISHED


def test_publisher_walks_the_allowed_listing_moves(market: Market) -> None:
    """published → unlisted → published → draft → published succeed; same-status moves conflict."""
    pub = market.publisher()
    view, _ = market.published(pub)
    listing_id = view.listing.listing_id
    for target in ("unlisted", "published", "draft", "published", "unlisted", "draft"):
        assert _status(market, pub, listing_id, target).value.listing.status.value == target
    with pytest.raises(Conflict):
        _status(market, pub, listing_id, "draft")


def test_unsuspend_returns_unlisted(market: Market) -> None:
    """Admin unsuspend of a suspended (formerly published) listing answers ``unlisted``."""
    pub, admin = market.publisher(), market.admin()
    view, _ = market.published(pub)
    listing_id = view.listing.listing_id
    market.fp.admin.suspend_listing(
        admin, listing_id, {"reason": "spam"}, idempotency_key=new_key()
    )
    lifted = market.fp.admin.unsuspend_listing(admin, listing_id, idempotency_key=new_key()).value
    assert lifted.listing.status is LS.UNLISTED
    assert market.store.listings[listing_id].status is LS.UNLISTED
    assert market.store.listings[listing_id].moderation.flagged is False


def test_admin_suspend_twice_and_unsuspend_unsuspended_conflict(market: Market) -> None:
    """Suspending a suspended listing, or unsuspending one that is not, is CONFLICT."""
    pub, admin = market.publisher(), market.admin()
    listing_id = market.draft(pub).listing.listing_id
    with pytest.raises(Conflict):
        market.fp.admin.unsuspend_listing(admin, listing_id, idempotency_key=new_key())
    market.fp.admin.suspend_listing(admin, listing_id, {"reason": "a"}, idempotency_key=new_key())
    with pytest.raises(Conflict):
        market.fp.admin.suspend_listing(
            admin, listing_id, {"reason": "b"}, idempotency_key=new_key()
        )
    assert market.store.listings[listing_id].moderation.reason == "a"


def test_revoked_release_cannot_be_revoked_again(market: Market) -> None:
    """Revoking a revoked release is CONFLICT; the first revocation stays as recorded."""
    pub = market.publisher()
    listing_id = market.draft(pub).listing.listing_id
    release = market.release(pub, listing_id)
    market.fp.publishing.revoke_release(
        pub, release.release_id, {"reason": "first"}, idempotency_key=new_key()
    )
    revoked = market.store.releases[release.release_id]
    market.clock.advance(1_000)
    with pytest.raises(Conflict) as info:
        market.fp.publishing.revoke_release(
            pub, release.release_id, {"reason": "second"}, idempotency_key=new_key()
        )
    assert info.value.code is ErrorCode.CONFLICT
    assert market.store.releases[release.release_id] == revoked
    assert (revoked.status, revoked.revoke_reason) == (RS.REVOKED, "first")


def test_intent_expires_24h_after_creation(market: Market) -> None:
    """An intent reads ``created`` at created+24h-1ms and ``expired`` at exactly created+24h."""
    pub, buyer = market.publisher(), market.user("buyer")
    view, _ = market.published(pub)
    intent = market.intent(buyer, view.listing.listing_id)
    assert intent.expires_at_ms == intent.created_at_ms + 24 * 60 * 60 * 1000
    market.clock.set(intent.created_at_ms + 24 * 60 * 60 * 1000 - 1)
    assert market.fp.installs.get_intent(buyer, intent.install_intent_id).status is IIS.CREATED
    market.clock.advance(1)
    observed = market.fp.installs.get_intent(buyer, intent.install_intent_id)
    assert observed.status is IIS.EXPIRED
    listed = market.fp.installs.list_intents(buyer, {"status": "expired"}).items
    assert [i.install_intent_id for i in listed] == [intent.install_intent_id]
    with pytest.raises(Conflict):
        market.token(buyer, intent.install_intent_id)
    with pytest.raises(Conflict):
        market.fp.installs.cancel_intent(buyer, intent.install_intent_id, idempotency_key=new_key())


def test_terminal_intent_rejects_further_moves(market: Market) -> None:
    """A canceled intent cannot get a token or be canceled again (CONFLICT); its token is dead."""
    pub, buyer = market.publisher(), market.user("buyer")
    view, _ = market.published(pub)
    intent = market.intent(buyer, view.listing.listing_id)
    issued = market.token(buyer, intent.install_intent_id)
    market.fp.installs.cancel_intent(buyer, intent.install_intent_id, idempotency_key=new_key())
    with pytest.raises(Conflict):
        market.token(buyer, intent.install_intent_id)
    with pytest.raises(Conflict):
        market.fp.installs.cancel_intent(buyer, intent.install_intent_id, idempotency_key=new_key())
    assert issued.install_token is not None
    with pytest.raises(NotFound):
        market.redeem(issued.install_token)
    assert market.store.intents[intent.install_intent_id].status is IIS.CANCELED

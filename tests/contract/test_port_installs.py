"""InstallIntentRepository and InstallTokenRepository: round trips, uniqueness, CAS,
the buyer's list (observed status), counts and expiry batches."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import attrs
import pytest

from contract import entities
from contract.entities import T0, Family
from contract.harness import Adapter, assert_identical, expected_page, walk_pages
from fleetprompt_core.base.enums import InstallIntentStatus, InstallTokenStatus
from fleetprompt_core.base.errors import DuplicateError
from fleetprompt_core.domain.model import InstallIntent, InstallToken, Listing, Release
from fleetprompt_core.ports import CreatedKey, UniqueConstraint

NOW = T0 + 1_000_000
IIS = InstallIntentStatus
ITS = InstallTokenStatus


def _family(adapter: Adapter) -> Family:
    family = entities.family()
    adapter.add(*family)
    return family


def _intent(family: Family, **overrides: object) -> InstallIntent:
    return entities.intent(
        buyer_user_id=family.buyer.user_id,
        listing_id=family.listing.listing_id,
        release_id=family.release.release_id,
        **overrides,
    )


def _token(intent: InstallIntent, **overrides: object) -> InstallToken:
    return entities.token(
        install_intent_id=intent.install_intent_id,
        buyer_user_id=intent.buyer_user_id,
        target_system=intent.target_system,
        **overrides,
    )


def _key(intent: InstallIntent) -> CreatedKey:
    return (intent.created_at_ms, intent.install_intent_id)


# --------------------------------------------------------------------------- intents

INTENT_BUILDERS = {
    "typical": entities.intent,
    "at_limits": entities.intent_at_limits,
    "minimal": entities.intent_minimal,
}


@pytest.mark.parametrize("builder", INTENT_BUILDERS.values(), ids=list(INTENT_BUILDERS))
def test_intents_add_get_round_trip(
    adapter: Adapter, builder: Callable[..., InstallIntent]
) -> None:
    """A stored intent reads back identical; an unknown id reads as None."""
    family = _family(adapter)
    intent = builder(
        buyer_user_id=family.buyer.user_id,
        listing_id=family.listing.listing_id,
        release_id=family.release.release_id,
    )
    adapter.add(intent)
    assert_identical(adapter.read(lambda uow: uow.intents.get(intent.install_intent_id)), intent)
    assert adapter.read(lambda uow: uow.intents.get("ii_unknown")) is None


def test_intents_primary_key_is_unique(adapter: Adapter) -> None:
    """Adding an intent id twice is DuplicateError(PRIMARY_KEY) and keeps the first."""
    family = _family(adapter)
    with pytest.raises(DuplicateError) as raised:
        adapter.add(attrs.evolve(family.intent, created_at_ms=T0 + 7))
    assert raised.value.constraint == UniqueConstraint.PRIMARY_KEY
    assert_identical(
        adapter.read(lambda uow: uow.intents.get(family.intent.install_intent_id)), family.intent
    )


def test_intents_update_moves_when_status_matches(adapter: Adapter) -> None:
    """update(new, stored status) stores new and is True."""
    family = _family(adapter)
    new = family.intent.token_issued(T0 + 5)
    assert adapter.write(lambda uow: uow.intents.update(new, IIS.CREATED)) is True
    assert_identical(adapter.read(lambda uow: uow.intents.get(new.install_intent_id)), new)


def test_intents_update_refuses_when_status_differs(adapter: Adapter) -> None:
    """update with any other expected status is False and changes nothing."""
    family = _family(adapter)
    new = family.intent.canceled(T0 + 5)
    for expected in (s for s in IIS if s is not IIS.CREATED):
        assert adapter.write(lambda uow, e=expected: uow.intents.update(new, e)) is False
    assert_identical(
        adapter.read(lambda uow: uow.intents.get(family.intent.install_intent_id)), family.intent
    )


def _buyer_history(adapter: Adapter) -> tuple[Family, list[InstallIntent]]:
    """A buyer's intents in every stored status, with expiries before, at and after NOW."""
    family = _family(adapter)
    other_buyer = entities.user()
    adapter.add(other_buyer)
    specs = [
        # (stored status, expires relative to NOW, created offset)
        (IIS.CREATED, +1, 3),
        (IIS.CREATED, 0, 1),  # due exactly now: observed expired
        (IIS.CREATED, -5, 3),
        (IIS.TOKEN_ISSUED, +10, 2),
        (IIS.TOKEN_ISSUED, -1, 1),
        (IIS.REDEEMED, -100, 3),  # terminal statuses do not expire
        (IIS.CANCELED, -100, 0),
        (IIS.EXPIRED, -100, 2),
        (IIS.CREATED, +50, 0),
        (IIS.REDEEMED, +50, 1),
    ]
    ids = [f"ii_{c}" for c in "hcjadgbfei"]
    intents = [
        _intent(
            family,
            install_intent_id=intent_id,
            status=status,
            created_at_ms=T0 + created,
            updated_at_ms=T0 + created,
            expires_at_ms=NOW + expires,
        )
        for intent_id, (status, expires, created) in zip(ids, specs, strict=True)
    ]
    foreign = [
        entities.intent(
            buyer_user_id=other_buyer.user_id,
            listing_id=family.listing.listing_id,
            release_id=family.release.release_id,
            created_at_ms=T0 + 2,
        )
        for _ in range(3)
    ]
    adapter.add(*intents, *foreign)
    return family, [family.intent, *intents]


def test_intents_list_for_buyer_orders_by_created_then_id_descending(adapter: Adapter) -> None:
    """Without a status: every intent of the buyer, (created_at, id) descending."""
    family, intents = _buyer_history(adapter)
    got = adapter.read(
        lambda uow: uow.intents.list_for_buyer(family.buyer.user_id, None, NOW, None, 100)
    )
    assert [i.install_intent_id for i in got] == [
        i.install_intent_id for i in expected_page(intents, _key, None, 100)
    ]


@pytest.mark.parametrize("status", list(IIS))
def test_intents_list_for_buyer_filters_on_the_observed_status(
    adapter: Adapter, status: InstallIntentStatus
) -> None:
    """The status filter applies to the status observed at now_ms (open + past expiry ⇒ expired)."""
    family, intents = _buyer_history(adapter)
    wanted = [i for i in intents if i.observed(NOW).status is status]
    got = adapter.read(
        lambda uow: uow.intents.list_for_buyer(family.buyer.user_id, status, NOW, None, 100)
    )
    assert [i.install_intent_id for i in got] == [
        i.install_intent_id for i in expected_page(wanted, _key, None, 100)
    ]


def test_intents_list_for_buyer_expiry_boundary(adapter: Adapter) -> None:
    """An open intent expiring exactly at now_ms is expired; one ms later than now it is not."""
    family, _ = _buyer_history(adapter)
    buyer = family.buyer.user_id

    def ids(status: InstallIntentStatus, now: int) -> set[str]:
        rows = adapter.read(lambda uow: uow.intents.list_for_buyer(buyer, status, now, None, 100))
        return {i.install_intent_id for i in rows}

    assert "ii_c" in ids(IIS.EXPIRED, NOW)  # created, expires at NOW
    assert "ii_c" not in ids(IIS.CREATED, NOW)
    assert "ii_c" in ids(IIS.CREATED, NOW - 1)
    assert "ii_c" not in ids(IIS.EXPIRED, NOW - 1)
    assert "ii_d" in ids(IIS.EXPIRED, NOW)  # token_issued, past expiry
    assert "ii_d" not in ids(IIS.TOKEN_ISSUED, NOW)
    assert {"ii_g", "ii_i"} <= ids(IIS.REDEEMED, NOW)  # terminal: stays redeemed


@pytest.mark.parametrize("status", [None, IIS.EXPIRED, IIS.CREATED])
def test_intents_list_for_buyer_is_strictly_after_the_keyset(
    adapter: Adapter, status: InstallIntentStatus | None
) -> None:
    """For every position and limit the page is exactly the reference page."""
    family, intents = _buyer_history(adapter)
    wanted = [i for i in intents if status is None or i.observed(NOW).status is status]
    positions: list[CreatedKey] = [_key(i) for i in intents]
    positions += [(at, s) for at in range(T0 - 1, T0 + 5) for s in ("", "ii_c5", "ii_zz")]
    for after, limit in itertools.product(positions, (1, 2, 5)):
        got = adapter.read(
            lambda uow, a=after, n=limit: uow.intents.list_for_buyer(
                family.buyer.user_id, status, NOW, a, n
            )
        )
        want = expected_page(wanted, _key, after, limit)
        assert [i.install_intent_id for i in got] == [i.install_intent_id for i in want], (
            after,
            limit,
        )


@pytest.mark.parametrize(("status", "limit"), [(None, 1), (None, 3), (IIS.EXPIRED, 2)])
def test_intents_list_for_buyer_pages_yield_each_intent_once(
    adapter: Adapter, status: InstallIntentStatus | None, limit: int
) -> None:
    """Walking pages by the last key yields every matching intent exactly once, in order."""
    family, intents = _buyer_history(adapter)
    wanted = [i for i in intents if status is None or i.observed(NOW).status is status]

    def fetch(after: CreatedKey | None, n: int) -> list[InstallIntent]:
        return list(
            adapter.read(
                lambda uow: uow.intents.list_for_buyer(family.buyer.user_id, status, NOW, after, n)
            )
        )

    walked = walk_pages(fetch, _key, limit)
    assert [i.install_intent_id for i in walked] == [
        i.install_intent_id for i in expected_page(wanted, _key, None, len(wanted))
    ]


def _more_listings(adapter: Adapter, family: Family, count: int) -> list[tuple[Listing, Release]]:
    pairs = []
    for _ in range(count):
        listing = entities.listing(publisher_user_id=family.publisher.user_id)
        release = entities.release(
            listing_id=listing.listing_id, publisher_user_id=family.publisher.user_id
        )
        adapter.add(listing, release)
        pairs.append((listing, release))
    return pairs


def test_intents_count_created_since_counts_per_listing_from_since(adapter: Adapter) -> None:
    """Counts intents created at or after since_ms, per requested listing, any status or buyer."""
    family = _family(adapter)  # its intent is created at T0 on family.listing
    (a, ra), (b, rb), (c, _), (d, rd) = _more_listings(adapter, family, 4)
    since = T0 + 100

    def on(
        listing: Listing, release: Release, at: int, status: InstallIntentStatus
    ) -> InstallIntent:
        return entities.intent(
            buyer_user_id=family.buyer.user_id,
            listing_id=listing.listing_id,
            release_id=release.release_id,
            created_at_ms=at,
            status=status,
        )

    adapter.add(
        on(a, ra, since - 1, IIS.CREATED),
        on(a, ra, since, IIS.REDEEMED),
        on(a, ra, since + 5, IIS.CANCELED),
        on(a, ra, since + 5, IIS.EXPIRED),
        on(b, rb, since + 1, IIS.CREATED),
        on(d, rd, since + 1, IIS.CREATED),  # not asked for
        on(d, rd, since + 2, IIS.CREATED),
    )
    asked = [a.listing_id, b.listing_id, c.listing_id, family.listing.listing_id, "lst_unknown"]
    counts = adapter.read(lambda uow: dict(uow.intents.count_created_since(iter(asked), since)))
    assert counts.get(a.listing_id, 0) == 3
    assert counts.get(b.listing_id, 0) == 1
    assert counts.get(c.listing_id, 0) == 0
    assert counts.get(family.listing.listing_id, 0) == 0
    assert counts.get("lst_unknown", 0) == 0
    assert set(counts) <= set(asked)
    everything = adapter.read(
        lambda uow: dict(uow.intents.count_created_since([family.listing.listing_id], T0))
    )
    assert everything == {family.listing.listing_id: 1}
    assert dict(adapter.read(lambda uow: uow.intents.count_created_since([], T0))) == {}


def _expiry_mix(adapter: Adapter) -> tuple[Family, set[str]]:
    """Intents around NOW; returns the ids of those due for expiry at NOW."""
    family = _family(adapter)  # its intent expires at T0 + 24 h, after NOW: not due
    specs = [
        (IIS.CREATED, -1, True),
        (IIS.CREATED, 0, True),
        (IIS.CREATED, +1, False),
        (IIS.TOKEN_ISSUED, -10, True),
        (IIS.TOKEN_ISSUED, 0, True),
        (IIS.TOKEN_ISSUED, +10, False),
        (IIS.REDEEMED, -10, False),
        (IIS.CANCELED, -10, False),
        (IIS.EXPIRED, -10, False),
    ]
    due: set[str] = set()
    intents = []
    for status, offset, is_due in specs:
        intent = _intent(family, status=status, expires_at_ms=NOW + offset)
        intents.append(intent)
        if is_due:
            due.add(intent.install_intent_id)
    adapter.add(*intents)
    return family, due


def test_intents_due_for_expiry_returns_open_intents_at_or_past_expiry(adapter: Adapter) -> None:
    """Only created/token_issued intents whose expiry ≤ now_ms are due."""
    _, due = _expiry_mix(adapter)
    got = adapter.read(lambda uow: uow.intents.due_for_expiry(NOW, 100))
    assert sorted(i.install_intent_id for i in got) == sorted(due)
    assert all(i.status in {IIS.CREATED, IIS.TOKEN_ISSUED} and i.expires_at_ms <= NOW for i in got)


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_intents_due_for_expiry_is_bounded_by_limit(adapter: Adapter, limit: int) -> None:
    """At most limit due intents, each distinct and really due."""
    _, due = _expiry_mix(adapter)
    got = adapter.read(lambda uow: uow.intents.due_for_expiry(NOW, limit))
    ids = [i.install_intent_id for i in got]
    assert len(ids) == min(limit, len(due))
    assert len(set(ids)) == len(ids)
    assert set(ids) <= due


def test_intents_due_for_expiry_drains_once_expired(adapter: Adapter) -> None:
    """Persisting expiry batch by batch empties the due set and touches nothing else."""
    _, due = _expiry_mix(adapter)
    expired: list[str] = []
    for _ in range(10):
        batch = adapter.read(lambda uow: uow.intents.due_for_expiry(NOW, 2))
        if not batch:
            break
        for intent in batch:
            moved = adapter.write(
                lambda uow, i=intent: uow.intents.update(i.expired(NOW), i.status)
            )
            assert moved is True
            expired.append(intent.install_intent_id)
    assert sorted(expired) == sorted(due)
    assert list(adapter.read(lambda uow: uow.intents.due_for_expiry(NOW, 100))) == []


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    "builder", [entities.token, entities.token_redeemed], ids=["issued", "redeemed"]
)
def test_tokens_add_get_by_hash_round_trip(
    adapter: Adapter, builder: Callable[..., InstallToken]
) -> None:
    """A stored token reads back identical by its hash; an unknown hash reads as None."""
    family = _family(adapter)
    token = builder(
        install_intent_id=family.intent.install_intent_id, buyer_user_id=family.buyer.user_id
    )
    adapter.add(token)
    assert_identical(adapter.read(lambda uow: uow.tokens.get_by_hash(token.token_hash)), token)
    assert adapter.read(lambda uow: uow.tokens.get_by_hash("0" * 64)) is None
    assert adapter.read(lambda uow: uow.tokens.get_by_hash(token.token_hash.upper())) is None


@pytest.mark.parametrize(
    "builder", [entities.token, entities.token_redeemed], ids=["issued", "redeemed"]
)
def test_tokens_get_for_redemption_reads_token_intent_release_and_listing(
    adapter: Adapter, builder: Callable[..., InstallToken]
) -> None:
    """get_for_redemption is the token by hash with its intent, release and listing exactly as
    their own lookups read them (one query on a database); an unknown hash is None."""
    family = _family(adapter)
    token = builder(
        install_intent_id=family.intent.install_intent_id, buyer_user_id=family.buyer.user_id
    )
    adapter.add(token)
    found = adapter.read(lambda uow: uow.tokens.get_for_redemption(token.token_hash))
    assert found is not None
    assert_identical(found.token, token)
    assert_identical(found.intent, family.intent)
    assert_identical(
        found.release, adapter.read(lambda uow: uow.releases.get(family.release.release_id))
    )
    assert_identical(
        found.listing, adapter.read(lambda uow: uow.listings.get(family.listing.listing_id))
    )
    for unknown in ("0" * 64, token.token_hash.upper(), "a\x00b"):
        assert adapter.read(lambda uow, h=unknown: uow.tokens.get_for_redemption(h)) is None


def test_tokens_hash_is_unique(adapter: Adapter) -> None:
    """A second token with a stored hash is DuplicateError(TOKEN_HASH) and keeps the first."""
    family = _family(adapter)
    with pytest.raises(DuplicateError) as raised:
        adapter.add(_token(family.intent, token_hash=family.token.token_hash))
    assert raised.value.constraint == UniqueConstraint.TOKEN_HASH
    assert_identical(
        adapter.read(lambda uow: uow.tokens.get_by_hash(family.token.token_hash)), family.token
    )
    issued = adapter.read(
        lambda uow: uow.tokens.list_issued_for_intent(family.intent.install_intent_id)
    )
    assert [t.token_id for t in issued] == [family.token.token_id]


def test_tokens_primary_key_is_unique(adapter: Adapter) -> None:
    """A second token with a stored id (other hash) is DuplicateError(PRIMARY_KEY)."""
    family = _family(adapter)
    with pytest.raises(DuplicateError) as raised:
        adapter.add(attrs.evolve(family.token, token_hash="f" * 64))
    assert raised.value.constraint == UniqueConstraint.PRIMARY_KEY
    assert adapter.read(lambda uow: uow.tokens.get_by_hash("f" * 64)) is None


def test_tokens_update_moves_when_status_matches(adapter: Adapter) -> None:
    """update(redeemed, ISSUED) stores the redemption and is True; a replay is False."""
    family = _family(adapter)
    redeemed = family.token.redeemed("whs", T0 + 3)
    assert adapter.write(lambda uow: uow.tokens.update(redeemed, ITS.ISSUED)) is True
    assert_identical(
        adapter.read(lambda uow: uow.tokens.get_by_hash(redeemed.token_hash)), redeemed
    )
    again = attrs.evolve(redeemed, redeemed_at_ms=T0 + 4, redeemed_by_system="other")
    assert adapter.write(lambda uow: uow.tokens.update(again, ITS.ISSUED)) is False
    assert_identical(
        adapter.read(lambda uow: uow.tokens.get_by_hash(redeemed.token_hash)), redeemed
    )


def test_tokens_update_refuses_when_status_differs(adapter: Adapter) -> None:
    """update with any other expected status is False and changes nothing."""
    family = _family(adapter)
    revoked = family.token.revoked(T0 + 3)
    for expected in (s for s in ITS if s is not ITS.ISSUED):
        assert adapter.write(lambda uow, e=expected: uow.tokens.update(revoked, e)) is False
    assert_identical(
        adapter.read(lambda uow: uow.tokens.get_by_hash(family.token.token_hash)), family.token
    )


def test_tokens_list_issued_for_intent_is_stored_status_issued_only(adapter: Adapter) -> None:
    """Only the intent's tokens whose STORED status is issued (even if past expiry)."""
    family = _family(adapter)
    other_intent = _intent(family)
    adapter.add(other_intent)
    intent = family.intent
    past_expiry = _token(intent, issued_at_ms=T0 - 10_000, expires_at_ms=T0 - 1)
    redeemed = entities.token_redeemed(
        install_intent_id=intent.install_intent_id, buyer_user_id=intent.buyer_user_id
    )
    adapter.add(
        past_expiry,
        redeemed,
        _token(intent, status=ITS.REVOKED),
        _token(intent, status=ITS.EXPIRED),
        _token(other_intent),
    )
    got = adapter.read(lambda uow: uow.tokens.list_issued_for_intent(intent.install_intent_id))
    assert sorted(t.token_id for t in got) == sorted([family.token.token_id, past_expiry.token_id])
    for token in got:
        want = family.token if token.token_id == family.token.token_id else past_expiry
        assert_identical(token, want)
    assert list(adapter.read(lambda uow: uow.tokens.list_issued_for_intent("ii_unknown"))) == []


def test_tokens_list_issued_for_intent_follows_updates(adapter: Adapter) -> None:
    """A token moved out of issued leaves the list; the list shows the updated values."""
    family = _family(adapter)
    second = _token(family.intent)
    adapter.add(second)
    adapter.write(lambda uow: uow.tokens.update(family.token.revoked(T0 + 1), ITS.ISSUED))
    got = adapter.read(
        lambda uow: uow.tokens.list_issued_for_intent(family.intent.install_intent_id)
    )
    assert [t.token_id for t in got] == [second.token_id]


def test_tokens_list_issued_for_listing_spans_its_intents_only(adapter: Adapter) -> None:
    """Issued tokens of every intent of the listing, (issued_at, id) ascending; no others."""
    family = _family(adapter)
    second_intent = _intent(family)
    ((other_listing, other_release),) = _more_listings(adapter, family, 1)
    foreign_intent = entities.intent(
        buyer_user_id=family.buyer.user_id,
        listing_id=other_listing.listing_id,
        release_id=other_release.release_id,
    )
    adapter.add(second_intent, foreign_intent)
    early = _token(second_intent, issued_at_ms=T0 - 5, expires_at_ms=T0 + 10)
    adapter.add(
        early,
        _token(second_intent, status=ITS.REVOKED),
        _token(second_intent, status=ITS.EXPIRED),
        entities.token_redeemed(
            install_intent_id=second_intent.install_intent_id,
            buyer_user_id=second_intent.buyer_user_id,
        ),
        _token(foreign_intent),
    )
    got = list(
        adapter.read(lambda uow: uow.tokens.list_issued_for_listing(family.listing.listing_id))
    )
    want = sorted([family.token, early], key=lambda t: (t.issued_at_ms, t.token_id))
    assert [t.token_id for t in got] == [t.token_id for t in want]
    for token, expected in zip(got, want, strict=True):
        assert_identical(token, expected)
    assert list(adapter.read(lambda uow: uow.tokens.list_issued_for_listing("lst_unknown"))) == []
    # A revoked token leaves the list.
    adapter.write(lambda uow: uow.tokens.update(early.revoked(T0), ITS.ISSUED))
    got = adapter.read(lambda uow: uow.tokens.list_issued_for_listing(family.listing.listing_id))
    assert [t.token_id for t in got] == [family.token.token_id]


def _token_expiry_mix(adapter: Adapter) -> set[str]:
    family = _family(adapter)  # its token expires at T0 + 15 min, before NOW: due
    due = {family.token.token_id}
    specs = [
        (ITS.ISSUED, -1, True),
        (ITS.ISSUED, 0, True),
        (ITS.ISSUED, +1, False),
        (ITS.REDEEMED, -5, False),
        (ITS.REVOKED, -5, False),
        (ITS.EXPIRED, -5, False),
    ]
    tokens = []
    for status, offset, is_due in specs:
        token = _token(
            family.intent, status=status, issued_at_ms=NOW - 60_000, expires_at_ms=NOW + offset
        )
        tokens.append(token)
        if is_due:
            due.add(token.token_id)
    adapter.add(*tokens)
    return due


def test_tokens_due_for_expiry_returns_issued_tokens_at_or_past_expiry(adapter: Adapter) -> None:
    """Only issued tokens whose expiry ≤ now_ms are due."""
    due = _token_expiry_mix(adapter)
    got = adapter.read(lambda uow: uow.tokens.due_for_expiry(NOW, 100))
    assert sorted(t.token_id for t in got) == sorted(due)


@pytest.mark.parametrize("limit", [1, 2])
def test_tokens_due_for_expiry_is_bounded_by_limit(adapter: Adapter, limit: int) -> None:
    """At most limit due tokens, each distinct and really due."""
    due = _token_expiry_mix(adapter)
    ids = [t.token_id for t in adapter.read(lambda uow: uow.tokens.due_for_expiry(NOW, limit))]
    assert len(ids) == min(limit, len(due))
    assert len(set(ids)) == len(ids)
    assert set(ids) <= due

"""IdempotencyRepository: round trips, the (user, endpoint, key) triple, claim-guarded
replace and delete, and bounded retention."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from contract import entities
from contract.entities import T0
from contract.harness import Adapter, assert_identical
from fleetprompt_core.base.errors import DuplicateError
from fleetprompt_core.domain.model import IdempotencyRecord, User
from fleetprompt_core.ports import UniqueConstraint, UnitOfWork


def _users(adapter: Adapter, count: int = 1) -> list[User]:
    users = [entities.user() for _ in range(count)]
    adapter.add(*users)
    return users


def _get(adapter: Adapter, record: IdempotencyRecord) -> IdempotencyRecord | None:
    return adapter.read(
        lambda uow: uow.idempotency.get(record.scope_user_id, record.endpoint, record.key)
    )


@pytest.mark.parametrize(
    "builder",
    [entities.idempotency_record, entities.idempotency_record_at_limits],
    ids=["claim", "completed_at_limits"],
)
def test_idempotency_add_get_round_trip(
    adapter: Adapter, builder: Callable[..., IdempotencyRecord]
) -> None:
    """A stored record (in flight with no response, or completed and large) reads back identical."""
    (owner,) = _users(adapter)
    record = builder(scope_user_id=owner.user_id)
    adapter.add(record)
    assert_identical(_get(adapter, record), record)


def test_idempotency_get_unknown_is_none(adapter: Adapter) -> None:
    """Changing any part of the triple finds nothing."""
    owner, other = _users(adapter, 2)
    record = entities.idempotency_record(scope_user_id=owner.user_id, key="k1")
    adapter.add(record)
    for user_id, endpoint, key in [
        (other.user_id, record.endpoint, "k1"),
        (owner.user_id, "POST /v1/other", "k1"),
        (owner.user_id, record.endpoint, "K1"),
        (owner.user_id, record.endpoint, "k1 "),
    ]:
        got = adapter.read(lambda uow, u=user_id, e=endpoint, k=key: uow.idempotency.get(u, e, k))
        assert got is None


def test_idempotency_triple_is_unique(adapter: Adapter) -> None:
    """A second record with a stored (user, endpoint, key) is DuplicateError(IDEMPOTENCY_KEY)."""
    (owner,) = _users(adapter)
    first = entities.idempotency_record(scope_user_id=owner.user_id, key="same")
    adapter.add(first)
    second = entities.idempotency_record(
        scope_user_id=owner.user_id, key="same", request_hash="b" * 64, created_at_ms=T0 + 1
    )
    with pytest.raises(DuplicateError) as raised:
        adapter.add(second)
    assert raised.value.constraint == UniqueConstraint.IDEMPOTENCY_KEY
    assert_identical(_get(adapter, first), first)


def test_idempotency_same_key_elsewhere_is_fine(adapter: Adapter) -> None:
    """The same key under another user or another endpoint is a different record."""
    owner, other = _users(adapter, 2)
    records = [
        entities.idempotency_record(scope_user_id=owner.user_id, key="k"),
        entities.idempotency_record(scope_user_id=other.user_id, key="k"),
        entities.idempotency_record(scope_user_id=owner.user_id, key="k", endpoint="POST /v1/x"),
    ]
    adapter.add(*records)
    for record in records:
        assert_identical(_get(adapter, record), record)


def test_idempotency_replace_with_the_current_claim_overwrites(adapter: Adapter) -> None:
    """replace(record, stored claim id) stores record (new claim, response) and is True."""
    (owner,) = _users(adapter)
    claim = entities.idempotency_record(scope_user_id=owner.user_id)
    adapter.add(claim)
    done = attrs.evolve(claim, response_json='{"ok":"\U0001f98a"}')
    assert adapter.write(lambda uow: uow.idempotency.replace(done, claim.claim_id)) is True
    assert_identical(_get(adapter, claim), done)
    taken_over = attrs.evolve(
        claim, claim_id="idm_new", request_hash="c" * 64, response_json=None, lease_until_ms=T0 + 9
    )
    assert adapter.write(lambda uow: uow.idempotency.replace(taken_over, claim.claim_id)) is True
    assert_identical(_get(adapter, claim), taken_over)


def test_idempotency_replace_with_a_stale_claim_is_refused(adapter: Adapter) -> None:
    """replace with a claim id that is no longer stored is False and changes nothing."""
    (owner,) = _users(adapter)
    claim = entities.idempotency_record(scope_user_id=owner.user_id)
    adapter.add(claim)
    other = attrs.evolve(claim, claim_id="idm_other", response_json="{}")
    assert adapter.write(lambda uow: uow.idempotency.replace(other, "idm_stale")) is False
    assert_identical(_get(adapter, claim), claim)
    # After a successful take-over, the old claim can no longer complete.
    assert adapter.write(lambda uow: uow.idempotency.replace(other, claim.claim_id)) is True
    late = attrs.evolve(claim, response_json='{"late":true}')
    assert adapter.write(lambda uow: uow.idempotency.replace(late, claim.claim_id)) is False
    assert_identical(_get(adapter, claim), other)


def test_idempotency_replace_of_a_missing_record_is_refused(adapter: Adapter) -> None:
    """replace never inserts: without a stored record it is False and nothing appears."""
    (owner,) = _users(adapter)
    record = entities.idempotency_record(scope_user_id=owner.user_id)
    assert adapter.write(lambda uow: uow.idempotency.replace(record, record.claim_id)) is False
    assert _get(adapter, record) is None


def test_idempotency_delete_with_the_current_claim_removes(adapter: Adapter) -> None:
    """delete(record) removes the stored record when its claim id matches; the key is free again."""
    (owner,) = _users(adapter)
    claim = entities.idempotency_record(scope_user_id=owner.user_id)
    keep = entities.idempotency_record(scope_user_id=owner.user_id)
    adapter.add(claim, keep)
    adapter.write(lambda uow: uow.idempotency.delete(claim))
    assert _get(adapter, claim) is None
    assert_identical(_get(adapter, keep), keep)
    again = attrs.evolve(claim, claim_id="idm_again")
    adapter.add(again)
    assert_identical(_get(adapter, claim), again)


def test_idempotency_delete_with_a_stale_claim_keeps_the_record(adapter: Adapter) -> None:
    """delete with a claim id that no longer matches removes nothing (and does not fail)."""
    (owner,) = _users(adapter)
    claim = entities.idempotency_record(scope_user_id=owner.user_id)
    adapter.add(claim)
    stale = attrs.evolve(claim, claim_id="idm_stale")
    adapter.write(lambda uow: uow.idempotency.delete(stale))
    assert_identical(_get(adapter, claim), claim)
    missing = entities.idempotency_record(scope_user_id=owner.user_id)
    adapter.write(lambda uow: uow.idempotency.delete(missing))  # absent: a no-op
    assert _get(adapter, missing) is None


NOW = T0 + 10_000_000


def _retention_mix(adapter: Adapter) -> tuple[list[IdempotencyRecord], list[IdempotencyRecord]]:
    """Records expiring before, at and after NOW; returns (expired, kept)."""
    (owner,) = _users(adapter)
    expired = [
        entities.idempotency_record(scope_user_id=owner.user_id, expires_at_ms=NOW + offset)
        for offset in (-1_000, -1, 0, -5, 0)
    ]
    kept = [
        entities.idempotency_record(scope_user_id=owner.user_id, expires_at_ms=NOW + offset)
        for offset in (1, 2, 1_000)
    ]
    kept.append(
        entities.idempotency_record(
            scope_user_id=owner.user_id, expires_at_ms=NOW + 1, response_json='{"a":1}'
        )
    )
    adapter.add(*expired[:2], *kept[:2], *expired[2:], *kept[2:])
    return expired, kept


def test_idempotency_delete_expired_drops_records_at_or_past_retention(adapter: Adapter) -> None:
    """delete_expired removes exactly the records with expires_at ≤ now and returns how many."""
    expired, kept = _retention_mix(adapter)
    assert adapter.write(lambda uow: uow.idempotency.delete_expired(NOW, 100)) == len(expired)
    for record in expired:
        assert _get(adapter, record) is None
    for record in kept:
        assert_identical(_get(adapter, record), record)
    assert adapter.write(lambda uow: uow.idempotency.delete_expired(NOW, 100)) == 0


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_idempotency_delete_expired_is_bounded_by_limit(adapter: Adapter, limit: int) -> None:
    """Each call drops at most limit records; repeated calls drain exactly the expired ones."""
    expired, kept = _retention_mix(adapter)
    counts: list[int] = []
    for _ in range(20):
        dropped = adapter.write(lambda uow: uow.idempotency.delete_expired(NOW, limit))
        assert 0 <= dropped <= limit
        still = sum(_get(adapter, r) is not None for r in expired)
        assert still == len(expired) - sum(counts) - dropped
        counts.append(dropped)
        if dropped == 0:
            break
    assert counts[:-1] == [min(limit, len(expired) - limit * i) for i in range(len(counts) - 1)]
    assert sum(counts) == len(expired)
    for record in kept:
        assert_identical(_get(adapter, record), record)


def test_idempotency_changes_are_visible_in_the_same_unit_of_work(adapter: Adapter) -> None:
    """add, replace and delete are seen by get in the same unit of work before commit."""
    (owner,) = _users(adapter)
    claim = entities.idempotency_record(scope_user_id=owner.user_id)
    done = attrs.evolve(claim, response_json="{}")

    def steps(uow: UnitOfWork) -> None:
        uow.idempotency.add(claim)
        assert uow.idempotency.get(claim.scope_user_id, claim.endpoint, claim.key) == claim
        assert uow.idempotency.replace(done, claim.claim_id) is True
        assert uow.idempotency.get(claim.scope_user_id, claim.endpoint, claim.key) == done
        uow.idempotency.delete(done)
        assert uow.idempotency.get(claim.scope_user_id, claim.endpoint, claim.key) is None

    adapter.write(steps)
    assert _get(adapter, claim) is None

"""IdempotencyRepository: round trips, the (user, endpoint, key) triple, claim-guarded
replace and delete, and bounded retention; ``UnitOfWork.hold_key``, and the idempotency
helper over every adapter while a first request is still running (§6)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import attrs
import pytest

from contract import entities
from contract.entities import T0
from contract.harness import Adapter, assert_identical
from fleetprompt_adapters.system import (
    ManualClock,
    SecretTokenGenerator,
    Sha256TokenHasher,
    UlidIdGenerator,
)
from fleetprompt_core.base.errors import Conflict, DuplicateError, KeyHeld, ValidationFailed
from fleetprompt_core.domain.model import IdempotencyRecord, User
from fleetprompt_core.policies.pagination import CursorCodec
from fleetprompt_core.ports import UniqueConstraint, UnitOfWork
from fleetprompt_core.services import _idempotency as idempotency
from fleetprompt_core.services.runtime import Outcome, Runtime
from support import CURSOR_KEY

#: Longest a test waits for a thread it expects to finish (it fails instead of hanging).
JOIN_S = 30.0


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


# --------------------------------------------------------------------------- hold_key


class _Holder:
    """A unit of work holding ``key`` open in a thread of its own until told how to end."""

    def __init__(self, adapter: Adapter, key: tuple[str, str, str], ending: str) -> None:
        self.entered, self.finish = threading.Event(), threading.Event()
        self.errors: list[BaseException] = []
        self._adapter, self._key, self._ending = adapter, key, ending
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        assert self.entered.wait(JOIN_S), self.errors

    def _run(self) -> None:
        try:
            uow = self._adapter.uow()
            uow.hold_key(*self._key)
            with uow:
                uow.users.add(entities.user())
                self.entered.set()
                assert self.finish.wait(JOIN_S)
                if self._ending == "raises":
                    raise ValidationFailed.single("x", "the holder fails")
                if self._ending == "commits":
                    uow.commit()
        except ValidationFailed:
            pass
        except BaseException as error:  # pragma: no cover - reported by the test
            self.errors.append(error)

    def end(self) -> None:
        self.finish.set()
        self.thread.join(JOIN_S)
        assert not self.thread.is_alive()
        assert self.errors == []


def _enter_holding(adapter: Adapter, key: tuple[str, str, str]) -> None:
    uow = adapter.uow()
    uow.hold_key(*key)
    with uow:
        pass


@pytest.mark.parametrize("ending", ["commits", "rolls_back", "raises"])
def test_idempotency_a_held_key_refuses_another_unit_of_work_until_it_ends(
    adapter: Adapter, ending: str
) -> None:
    """While one unit of work holds a key, another asking for it fails to enter with
    KeyHeld at once (it does not queue behind the holder: the holder is still open when
    it is refused); the key is free again however the holder ends."""
    (owner,) = _users(adapter)
    key = (owner.user_id, "listing.create", "k-held")
    holder = _Holder(adapter, key, ending)
    try:
        for _ in range(2):
            with pytest.raises(KeyHeld):
                _enter_holding(adapter, key)
        assert holder.thread.is_alive()  # refused while the holder was open
    finally:
        holder.end()
    _enter_holding(adapter, key)
    _enter_holding(adapter, key)  # and once more: the last one released it too


def test_idempotency_a_held_key_is_only_that_triple(adapter: Adapter) -> None:
    """Units of work holding another user's, another endpoint's or another key are not
    refused (they enter, once the holder ends where writers are serialised)."""
    owner, other = _users(adapter, 2)
    held = (owner.user_id, "listing.create", "k")
    holder = _Holder(adapter, held, "commits")
    elsewhere = [
        (other.user_id, "listing.create", "k"),
        (owner.user_id, "release.publish", "k"),
        (owner.user_id, "listing.create", "K"),
    ]
    errors: list[BaseException] = []

    def enter(key: tuple[str, str, str]) -> None:
        try:
            _enter_holding(adapter, key)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=enter, args=(key,)) for key in elsewhere]
    try:
        for thread in threads:
            thread.start()
    finally:
        holder.end()
    for thread in threads:
        thread.join(JOIN_S)
        assert not thread.is_alive()
    assert errors == []


# --------------------------------------------------------------------------- R-IDEMP-02


def _runtime(adapter: Adapter) -> Runtime:
    clock = ManualClock()
    return Runtime(
        uow=adapter.uow,
        clock=clock,
        ids=UlidIdGenerator(clock),
        tokens=SecretTokenGenerator(),
        hasher=Sha256TokenHasher(),
        cursors=CursorCodec(CURSOR_KEY),
    )


@pytest.mark.parametrize("first_ends", ["commits", "fails"])
def test_r_idemp_02_a_duplicate_while_the_first_runs_is_in_progress_then_replays(
    adapter: Adapter, first_ends: str
) -> None:
    """§6 on every adapter: while the first request's operation runs (held in its unit of
    work), a duplicate from another thread is CONFLICT (in progress, retry after 1 s) at
    once and runs nothing. Once the first committed, the same request replays its answer
    and exactly one resource exists; once it failed, the key is free and the retry runs."""
    (owner,) = _users(adapter)
    rt = _runtime(adapter)
    running, proceed = threading.Event(), threading.Event()
    calls: list[str] = []
    created: list[str] = []

    def send(name: str) -> Outcome[str] | Conflict:
        def operation(uow: UnitOfWork) -> str:
            calls.append(name)
            resource = entities.user()
            uow.users.add(resource)
            if name == "first":
                running.set()
                assert proceed.wait(JOIN_S)
                if first_ends == "fails":
                    raise ValidationFailed.single("name", "the first request fails")
            created.append(resource.user_id)
            return resource.user_id

        try:
            return idempotency.run(
                rt,
                scope_user_id=owner.user_id,
                scope=idempotency.Operation.LISTING_CREATE,
                key="k-running",
                required=True,
                target={},
                body={"name": "one"},
                codec=idempotency.ResultCodec(str),
                operation=operation,
            )
        except Conflict as error:
            return error

    results: dict[str, Outcome[str] | Conflict | ValidationFailed] = {}

    def first() -> None:
        try:
            results["first"] = send("first")
        except ValidationFailed as error:
            results["first"] = error

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert running.wait(JOIN_S)
        duplicates = [
            threading.Thread(target=lambda i=i: results.update({f"dup{i}": send(f"dup{i}")}))
            for i in range(2)
        ]
        for duplicate in duplicates:
            duplicate.start()
        for duplicate in duplicates:
            duplicate.join(JOIN_S)
            assert not duplicate.is_alive(), "the duplicate waited for the first request"
        assert thread.is_alive()  # answered while the first was still running
    finally:
        proceed.set()
        thread.join(JOIN_S)
    for name in ("dup0", "dup1"):
        refused = results[name]
        assert isinstance(refused, Conflict), refused
        assert refused.hint == "in progress"
        assert refused.retry_after_s == idempotency.IN_PROGRESS_RETRY_AFTER_S
    assert calls == ["first"]
    again = send("again")
    if first_ends == "commits":
        assert results["first"] == Outcome(created[0])
        assert again == Outcome(created[0], replayed=True)
        assert calls == ["first"]
    else:
        assert isinstance(results["first"], ValidationFailed)
        assert again == Outcome(created[0])
        assert calls == ["first", "again"]
    (resource,) = created
    assert adapter.read(lambda uow: uow.users.get(resource)) is not None
    record = adapter.read(
        lambda uow: uow.idempotency.get(owner.user_id, "listing.create", "k-running")
    )
    assert record is not None
    assert record.response_json == idempotency.ResultCodec(str).encode(resource)

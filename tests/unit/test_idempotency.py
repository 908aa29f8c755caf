"""Idempotency (§6, ADR 0007/0037; U-IDEMP-01..03): replay, conflict, in progress, retention."""

from __future__ import annotations

import string
import threading
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import attrs
import pytest

from fleetprompt_adapters.memory import MemoryStore
from fleetprompt_adapters.memory import store as memory_store
from fleetprompt_core import Call, Outcome, Role
from fleetprompt_core.base import limits
from fleetprompt_core.base.errors import (
    Conflict,
    DomainError,
    DuplicateError,
    ErrorCode,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from fleetprompt_core.domain.model import IdempotencyRecord
from fleetprompt_core.ports import Principal, UniqueConstraint
from fleetprompt_core.services import _idempotency as idempotency
from support import Market, listing_payload, new_key, release_payload, store_open_claim

CREATE = idempotency.Operation.LISTING_CREATE
DAY_MS = 24 * 60 * 60 * 1000
LEASE_MS = 120_000


def user_id(market: Market, external_id: str) -> str:
    return market.store.users_by_external_id[external_id]


def open_claim(market: Market, external_id: str, key: str, digest: str) -> IdempotencyRecord:
    """An unanswered claim for ``key`` (what ADR 0007's design left when its holder died)."""
    return store_open_claim(market.fp.runtime, user_id(market, external_id), CREATE, key, digest)


def create(market: Market, call: Call, key: str | None, **overrides: Any) -> Outcome[Any]:
    return market.fp.publishing.create_listing(
        call, listing_payload(**overrides), idempotency_key=key
    )


def field_names(error: DomainError) -> list[str]:
    return [f.field_name for f in error.fields]


def snapshot(store: MemoryStore) -> dict[str, Any]:
    """Every table of the store, copied (entities are frozen, so a shallow copy suffices)."""
    tables: dict[str, Any] = {}
    for name, table in vars(store).items():
        if isinstance(table, dict):
            tables[name] = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
        elif isinstance(table, list):
            tables[name] = tuple(table)
    return tables


# --------------------------------------------------------------------------- U-IDEMP-01


def test_u_idemp_01_same_key_same_request_replays_stored_response(market: Market) -> None:
    """Same key + same request: stored value, ``replayed``, one listing and one audit event."""
    pub = market.publisher()
    key = new_key()
    first = create(market, pub, key)
    market.clock.advance(5_000)
    second = create(market, pub, key)
    assert (first.replayed, second.replayed) == (False, True)
    assert second.value == first.value
    assert list(market.store.listings) == [first.value.listing.listing_id]
    assert market.audit_types().count("listing.created") == 1
    (record,) = market.store.idempotency.values()
    assert (record.key, record.endpoint, record.completed) == (key, CREATE, True)


def test_u_idemp_01_replay_answers_the_original_even_after_changes(market: Market) -> None:
    """A replay answers the response as it was stored, not the listing's current state."""
    pub = market.publisher()
    key = new_key()
    first = create(market, pub, key)
    listing_id = first.value.listing.listing_id
    market.clock.advance(1_000)
    market.fp.publishing.update_listing(pub, listing_id, {"name": "Renamed"})
    replay = create(market, pub, key)
    assert replay.replayed is True
    assert replay.value.listing.name == "Support Triage Agent"
    assert market.store.listings[listing_id].name == "Renamed"


def _scenarios() -> dict[str, Callable[[Market], Callable[[str], Outcome[Any]]]]:
    """For each idempotent endpoint: prepare a market, return ``call(key)``."""

    def listing_create(m: Market) -> Callable[[str], Outcome[Any]]:
        pub = m.publisher()
        return lambda key: create(m, pub, key)

    def listing_update(m: Market) -> Callable[[str], Outcome[Any]]:
        pub = m.publisher()
        lid = m.draft(pub).listing.listing_id
        return lambda key: m.fp.publishing.update_listing(
            pub, lid, {"summary": "new"}, idempotency_key=key
        )

    def listing_status(m: Market) -> Callable[[str], Outcome[Any]]:
        pub = m.publisher()
        lid = m.draft(pub).listing.listing_id
        m.release(pub, lid)
        return lambda key: m.fp.publishing.change_status(
            pub, lid, {"status": "published"}, idempotency_key=key
        )

    def release_publish(m: Market) -> Callable[[str], Outcome[Any]]:
        pub = m.publisher()
        lid = m.draft(pub).listing.listing_id
        return lambda key: m.fp.publishing.publish_release(
            pub, lid, release_payload("2.0.0"), idempotency_key=key
        )

    def release_revoke(m: Market) -> Callable[[str], Outcome[Any]]:
        pub = m.publisher()
        rid = m.release(pub, m.draft(pub).listing.listing_id).release_id
        return lambda key: m.fp.publishing.revoke_release(
            pub, rid, {"reason": "bad"}, idempotency_key=key
        )

    def profile_put(m: Market) -> Callable[[str], Outcome[Any]]:
        pub = m.publisher()
        return lambda key: m.fp.profiles.put(
            pub, {"displayName": "Pub A", "bioMarkdown": "*hi*"}, idempotency_key=key
        )

    def intent_create(m: Market) -> Callable[[str], Outcome[Any]]:
        pub, buyer = m.publisher(), m.user("buyer")
        lid = m.published(pub)[0].listing.listing_id
        return lambda key: m.fp.installs.create_intent(
            buyer, {"listingId": lid, "targetSystem": "whs"}, idempotency_key=key
        )

    def token_issue(m: Market) -> Callable[[str], Outcome[Any]]:
        pub, buyer = m.publisher(), m.user("buyer")
        iid = m.intent(buyer, m.published(pub)[0].listing.listing_id).install_intent_id
        return lambda key: m.fp.installs.issue_token(buyer, iid, None, idempotency_key=key)

    def intent_cancel(m: Market) -> Callable[[str], Outcome[Any]]:
        pub, buyer = m.publisher(), m.user("buyer")
        iid = m.intent(buyer, m.published(pub)[0].listing.listing_id).install_intent_id
        return lambda key: m.fp.installs.cancel_intent(buyer, iid, None, idempotency_key=key)

    def admin_suspend(m: Market) -> Callable[[str], Outcome[Any]]:
        pub, admin = m.publisher(), m.admin()
        lid = m.draft(pub).listing.listing_id
        return lambda key: m.fp.admin.suspend_listing(
            admin, lid, {"reason": "spam"}, idempotency_key=key
        )

    def admin_unsuspend(m: Market) -> Callable[[str], Outcome[Any]]:
        pub, admin = m.publisher(), m.admin()
        lid = m.draft(pub).listing.listing_id
        m.fp.admin.suspend_listing(admin, lid, {"reason": "spam"}, idempotency_key=new_key())
        return lambda key: m.fp.admin.unsuspend_listing(admin, lid, None, idempotency_key=key)

    def admin_roles(m: Market) -> Callable[[str], Outcome[Any]]:
        admin = m.admin()
        m.user("bob")
        uid = user_id(m, "bob")
        return lambda key: m.fp.admin.change_roles(
            admin, uid, {"grant": ["publisher"]}, idempotency_key=key
        )

    def admin_verification(m: Market) -> Callable[[str], Outcome[Any]]:
        admin = m.admin()
        m.publisher()
        uid = user_id(m, "pub-a")
        return lambda key: m.fp.admin.set_verification(
            admin, uid, {"status": "verified", "reason": "checked"}, idempotency_key=key
        )

    return {
        "listing_create": listing_create,
        "listing_update": listing_update,
        "listing_status": listing_status,
        "release_publish": release_publish,
        "release_revoke": release_revoke,
        "profile_put": profile_put,
        "intent_create": intent_create,
        "token_issue": token_issue,
        "intent_cancel": intent_cancel,
        "admin_suspend": admin_suspend,
        "admin_unsuspend": admin_unsuspend,
        "admin_roles": admin_roles,
        "admin_verification": admin_verification,
    }


SCENARIOS = _scenarios()
REQUIRED_KEY = [name for name in SCENARIOS if name not in ("listing_update", "profile_put")]


def _comparable(value: Any) -> Any:
    if hasattr(value, "install_token"):
        return attrs.evolve(value, install_token=None)
    return value


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_u_idemp_01_every_idempotent_endpoint_replays(market: Market, scenario: str) -> None:
    """Every idempotent write replays its stored value for one key: one run, one audit event."""
    call = SCENARIOS[scenario](market)
    key = new_key()
    audit_before = len(market.store.audit)
    first = call(key)
    after_first = snapshot(market.store)
    market.clock.advance(1_000)
    second = call(key)
    assert (first.replayed, second.replayed) == (False, True)
    assert _comparable(second.value) == _comparable(first.value)
    assert len(market.store.audit) == audit_before + 1
    assert snapshot(market.store) == after_first


# --------------------------------------------------------------------------- U-IDEMP-02


def test_u_idemp_02_same_key_different_request_conflicts(market: Market) -> None:
    """Same key + different body: CONFLICT, and nothing new is stored (listings, records, audit)."""
    pub = market.publisher()
    key = new_key()
    create(market, pub, key)
    before = snapshot(market.store)
    with pytest.raises(Conflict) as info:
        create(market, pub, key, name="Another name")
    assert info.value.code is ErrorCode.CONFLICT
    assert info.value.hint != "in progress"
    assert snapshot(market.store) == before
    assert len(market.store.listings) == 1


def test_u_idemp_02_same_key_other_target_conflicts(market: Market) -> None:
    """The path ids are part of the request: the same key on another listing is CONFLICT."""
    pub = market.publisher()
    first = market.draft(pub).listing.listing_id
    second = market.draft(pub).listing.listing_id
    key = new_key()
    market.fp.publishing.publish_release(pub, first, release_payload(), idempotency_key=key)
    before = snapshot(market.store)
    with pytest.raises(Conflict):
        market.fp.publishing.publish_release(pub, second, release_payload(), idempotency_key=key)
    assert snapshot(market.store) == before
    assert [r.listing_id for r in market.store.releases.values()] == [first]


def test_u_idemp_02_body_key_order_does_not_matter(market: Market) -> None:
    """The request hash is canonical: the same body with keys in another order replays."""
    pub = market.publisher()
    key = new_key()
    payload = listing_payload()
    first = market.fp.publishing.create_listing(pub, payload, idempotency_key=key)
    reordered = dict(reversed(list(payload.items())))
    second = market.fp.publishing.create_listing(pub, reordered, idempotency_key=key)
    assert second.replayed is True
    assert second.value == first.value


# --------------------------------------------------------------------------- U-IDEMP-03


def test_u_idemp_03_same_key_in_progress_conflicts(market: Market) -> None:
    """While the key's claim is open, the same request is CONFLICT (in progress); nothing runs."""
    pub = market.publisher()
    key = new_key()
    payload = listing_payload()
    digest = idempotency.request_hash(CREATE, {}, payload)
    claim = open_claim(market, "pub-a", key, digest)
    assert isinstance(claim, IdempotencyRecord)
    assert claim.completed is False
    before = snapshot(market.store)
    for _ in range(2):
        with pytest.raises(Conflict) as info:
            market.fp.publishing.create_listing(pub, payload, idempotency_key=key)
        assert info.value.hint == "in progress"
    assert market.store.listings == {}
    assert snapshot(market.store) == before


class GatedStore(MemoryStore):
    """A store whose chosen thread pauses in its writing unit of work, its claim and work
    done and nothing committed, until the test lets it commit (reads never commit)."""

    def __init__(self) -> None:
        super().__init__()
        self.slow_thread: int | None = None
        self.running = threading.Event()
        self.proceed = threading.Event()

    def unit_of_work(self) -> Any:
        uow = super().unit_of_work()
        if threading.get_ident() != self.slow_thread:
            return uow
        commit, store = uow.commit, self

        def gated_commit() -> None:
            store.slow_thread = None
            store.running.set()
            if not store.proceed.wait(30):  # pragma: no cover - the test releases it
                raise TimeoutError("the test never let the slow request proceed")
            commit()

        uow.commit = gated_commit
        return uow


def test_u_idemp_03_concurrent_duplicate_while_running_is_in_progress_then_replays() -> None:
    """A duplicate sent while the first request runs in another thread never runs: the
    first's unit of work holds the key, so the duplicate is CONFLICT (in progress) at once,
    without queueing for the store (§6, ADR 0037); once the first committed, the same
    request replays. The callers carry their user row, as the API-token resolver's do
    (a duplicate that must read the store first queues behind the running request, as
    every unit of work of this store does: test_app_resilience shows that case)."""
    store = GatedStore()
    market = Market.create(store=store)
    user = market.fp.operator.ensure_user("pub-a", roles=[Role.PUBLISHER])
    pub = Call(Principal("pub-a", user=user), request_id="req-pub-a")
    key = new_key()
    results: dict[str, object] = {}

    def send(name: str) -> None:
        if name == "first":
            store.slow_thread = threading.get_ident()
        try:
            results[name] = create(market, pub, key)
        except Exception as error:
            results[name] = error

    first = threading.Thread(target=send, args=("first",))
    first.start()
    try:
        assert store.running.wait(10)
        duplicate = threading.Thread(target=send, args=("duplicate",))
        duplicate.start()
        duplicate.join(30)
        assert not duplicate.is_alive(), "the duplicate queued behind the first request"
        assert first.is_alive()
    finally:
        store.proceed.set()
        first.join(30)
    assert not first.is_alive()
    refused = results["duplicate"]
    assert isinstance(refused, Conflict), refused
    assert refused.hint == "in progress"
    original = results["first"]
    assert isinstance(original, Outcome)
    assert original.replayed is False
    replay = create(market, pub, key)
    assert replay.replayed is True
    assert replay.value == original.value
    assert len(market.store.listings) == 1
    assert market.audit_types().count("listing.created") == 1


def test_u_idemp_03_parallel_duplicates_create_exactly_one_listing(market: Market) -> None:
    """Eight threads sending one request and key create one listing; the rest replay/conflict."""
    pub = market.publisher()
    key = new_key()
    barrier = threading.Barrier(8)
    outcomes: list[object] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait(10)
        try:
            outcome: object = create(market, pub, key)
        except Conflict as error:
            outcome = error
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(outcomes) == 8
    fresh = [o for o in outcomes if isinstance(o, Outcome) and not o.replayed]
    replays = [o for o in outcomes if isinstance(o, Outcome) and o.replayed]
    conflicts = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(fresh) == 1
    assert len(fresh) + len(replays) + len(conflicts) == 8
    assert all(r.value == fresh[0].value for r in replays)
    assert all(c.hint == "in progress" for c in conflicts)
    assert len(market.store.listings) == 1
    assert market.audit_types().count("listing.created") == 1


# --------------------------------------------------------------------------- key rules


@pytest.mark.parametrize("scenario", REQUIRED_KEY)
def test_missing_key_on_required_endpoint_fails_on_idempotency_key(
    market: Market, scenario: str
) -> None:
    """Each required-key endpoint without a key fails on ``Idempotency-Key``, changing nothing."""
    call = SCENARIOS[scenario](market)
    before = snapshot(market.store)
    with pytest.raises(ValidationFailed) as info:
        call(None)  # type: ignore[arg-type]
    assert field_names(info.value) == ["Idempotency-Key"]
    assert snapshot(market.store) == before


@pytest.mark.parametrize("scenario", ["listing_update", "profile_put"])
def test_key_is_optional_where_accepted(market: Market, scenario: str) -> None:
    """Listing PATCH and profile PUT run without a key and store no idempotency record."""
    call = SCENARIOS[scenario](market)
    records = dict(market.store.idempotency)
    outcome = call(None)  # type: ignore[arg-type]
    assert outcome.replayed is False
    assert market.store.idempotency == records


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="256-chars"),
        pytest.param("clé", id="non-ascii"),
        pytest.param("ключ", id="cyrillic"),
        pytest.param("key\x00", id="nul"),
        pytest.param("key\n", id="newline"),
        pytest.param("\tkey", id="tab"),
        pytest.param("key\x7f", id="del"),
        pytest.param("key\x1b", id="escape"),
        pytest.param("key\ud800", id="surrogate"),
    ],
)
def test_bad_keys_are_rejected(market: Market, key: str) -> None:
    """Empty, 256-char, non-ASCII or control-char keys fail on ``Idempotency-Key``."""
    pub = market.publisher()
    before = snapshot(market.store)
    with pytest.raises(ValidationFailed) as info:
        create(market, pub, key)
    assert field_names(info.value) == ["Idempotency-Key"]
    assert snapshot(market.store) == before


def test_longest_printable_key_is_accepted(market: Market) -> None:
    """A key of 255 printable ASCII characters (every one of them) is accepted and replays."""
    printable = "".join(chr(c) for c in range(0x20, 0x7F))
    key = (printable * 3)[:255]
    assert len(key) == limits.IDEMPOTENCY_KEY_MAX
    assert set(key) == set(printable)
    pub = market.publisher()
    first = create(market, pub, key)
    assert create(market, pub, key).replayed is True
    assert first.value.listing.listing_id in market.store.listings


def test_check_key_directly() -> None:
    """``check_key``: None is fine when optional, an error when required; 1 and 255 chars pass."""
    assert idempotency.check_key(None, required=False) is None
    with pytest.raises(ValidationFailed) as info:
        idempotency.check_key(None, required=True)
    assert field_names(info.value) == [idempotency.HEADER] == ["Idempotency-Key"]
    assert idempotency.check_key("a", required=True) == "a"
    assert idempotency.check_key(string.ascii_letters[:5] * 51, required=True) == (
        string.ascii_letters[:5] * 51
    )


# --------------------------------------------------------------------------- failures store nothing


def test_validation_failure_stores_nothing_and_retry_succeeds(market: Market) -> None:
    """A request failing validation leaves no record; the same key then works for a good request."""
    pub = market.publisher()
    key = new_key()
    with pytest.raises(ValidationFailed):
        create(market, pub, key, name="")
    assert market.store.idempotency == {}
    outcome = create(market, pub, key)
    assert outcome.replayed is False
    assert len(market.store.listings) == 1


def test_not_found_stores_nothing_and_retry_succeeds(market: Market) -> None:
    """NOT_FOUND (listing not yet published) stores no record; once published the key runs."""
    pub, buyer = market.publisher(), market.user("buyer")
    listing_id = market.draft(pub).listing.listing_id
    market.release(pub, listing_id)
    payload = {"listingId": listing_id, "targetSystem": "whs"}
    key = new_key()
    records = dict(market.store.idempotency)
    with pytest.raises(NotFound):
        market.fp.installs.create_intent(buyer, payload, idempotency_key=key)
    assert market.store.idempotency == records
    market.fp.publishing.change_status(
        pub, listing_id, {"status": "published"}, idempotency_key=new_key()
    )
    outcome = market.fp.installs.create_intent(buyer, payload, idempotency_key=key)
    assert outcome.replayed is False
    assert list(market.store.intents) == [outcome.value.install_intent_id]


def test_conflict_stores_nothing_and_retry_succeeds(market: Market) -> None:
    """CONFLICT (publish without release) stores no record; after a release the key runs."""
    pub = market.publisher()
    listing_id = market.draft(pub).listing.listing_id
    key = new_key()
    records = dict(market.store.idempotency)
    with pytest.raises(Conflict):
        market.fp.publishing.change_status(
            pub, listing_id, {"status": "published"}, idempotency_key=key
        )
    assert market.store.idempotency == records
    market.release(pub, listing_id)
    outcome = market.fp.publishing.change_status(
        pub, listing_id, {"status": "published"}, idempotency_key=key
    )
    assert outcome.replayed is False
    assert outcome.value.listing.status.value == "published"


def test_unauthorized_stores_nothing_and_retry_succeeds(market: Market) -> None:
    """UNAUTHORIZED stores no record; once the publisher role is granted the same key runs."""
    call = market.user("carol")
    key = new_key()
    with pytest.raises(Unauthorized):
        create(market, call, key)
    assert market.store.idempotency == {}
    market.fp.operator.set_roles("carol", grant=[Role.PUBLISHER])
    assert create(market, call, key).replayed is False
    assert len(market.store.listings) == 1


# --------------------------------------------------------------------------- scope and retention


def test_scope_is_per_user(market: Market) -> None:
    """The same key used by two publishers creates two listings; neither is a replay."""
    alice, bob = market.publisher("alice"), market.publisher("bob")
    key = new_key()
    first, second = create(market, alice, key), create(market, bob, key)
    assert (first.replayed, second.replayed) == (False, False)
    assert first.value.listing.listing_id != second.value.listing.listing_id
    assert {listing.publisher_user_id for listing in market.store.listings.values()} == {
        user_id(market, "alice"),
        user_id(market, "bob"),
    }
    assert len(market.store.idempotency) == 2


def test_scope_is_per_endpoint(market: Market) -> None:
    """The same key on listing create and release publish runs both (different endpoints)."""
    pub = market.publisher()
    key = new_key()
    view = create(market, pub, key)
    listing_id = view.value.listing.listing_id
    release = market.fp.publishing.publish_release(
        pub, listing_id, release_payload(), idempotency_key=key
    )
    assert release.replayed is False
    assert list(market.store.releases) == [release.value.release_id]
    assert {record.endpoint for record in market.store.idempotency.values()} == {
        CREATE,
        idempotency.Operation.RELEASE_PUBLISH,
    }


def test_records_expire_after_24_hours(market: Market) -> None:
    """A key replays until 24 h have passed; at exactly 24 h the same request runs again."""
    pub = market.publisher()
    key = new_key()
    first = create(market, pub, key)
    market.clock.advance(DAY_MS - 1)
    assert create(market, pub, key).replayed is True
    assert len(market.store.listings) == 1
    market.clock.advance(1)
    again = create(market, pub, key)
    assert again.replayed is False
    assert again.value.listing.listing_id != first.value.listing.listing_id
    assert len(market.store.listings) == 2
    (record,) = market.store.idempotency.values()
    assert record.created_at_ms == market.clock.now_ms()
    assert record.expires_at_ms == market.clock.now_ms() + DAY_MS


def test_expired_record_with_other_body_runs_instead_of_conflicting(market: Market) -> None:
    """After 24 h the key is free: a different request with it runs rather than conflicting."""
    pub = market.publisher()
    key = new_key()
    create(market, pub, key)
    with pytest.raises(Conflict):
        create(market, pub, key, name="Other")
    market.clock.advance(DAY_MS)
    assert create(market, pub, key, name="Other").value.listing.name == "Other"


def test_stale_in_progress_claim_is_taken_over(market: Market) -> None:
    """A claim whose 120 s lease passed (holder died) is taken over; before that, CONFLICT."""
    pub = market.publisher()
    key = new_key()
    payload = listing_payload()
    digest = idempotency.request_hash(CREATE, {}, payload)
    dead = open_claim(market, "pub-a", key, digest)
    assert isinstance(dead, IdempotencyRecord)
    assert dead.lease_until_ms == dead.created_at_ms + LEASE_MS
    market.clock.advance(LEASE_MS - 1)
    with pytest.raises(Conflict) as info:
        market.fp.publishing.create_listing(pub, payload, idempotency_key=key)
    assert info.value.hint == "in progress"
    assert market.store.listings == {}
    market.clock.advance(1)
    outcome = market.fp.publishing.create_listing(pub, payload, idempotency_key=key)
    assert outcome.replayed is False
    assert len(market.store.listings) == 1
    (record,) = market.store.idempotency.values()
    assert record.completed is True
    assert record.claim_id != dead.claim_id


def test_token_issue_replay_never_returns_the_raw_token(market: Market) -> None:
    """A token issue replay has install_token None, other fields equal; raw token stored nowhere."""
    pub, buyer = market.publisher(), market.user("buyer")
    intent = market.intent(buyer, market.published(pub)[0].listing.listing_id)
    key = new_key()
    issue = market.fp.installs.issue_token
    first = issue(buyer, intent.install_intent_id, {"ttlMs": 600_000}, idempotency_key=key)
    second = issue(buyer, intent.install_intent_id, {"ttlMs": 600_000}, idempotency_key=key)
    raw = first.value.install_token
    assert isinstance(raw, str)
    assert raw.startswith("fpit_")
    assert second.replayed is True
    assert second.value.install_token is None
    assert attrs.evolve(first.value, install_token=None) == second.value
    assert len(market.store.tokens) == 1
    assert raw not in repr(snapshot(market.store))
    assert all(raw not in (r.response_json or "") for r in market.store.idempotency.values())


# --------------------------------------------------------------------------- run() directly


def _run(market: Market, op: Callable[[Any], int], key: str | None, body: object = None) -> Any:
    return idempotency.run(
        market.fp.runtime,
        scope_user_id="usr_x",
        scope=idempotency.Operation.PROFILE_UPDATE,
        key=key,
        required=False,
        target={"id": "1"},
        body=body if body is not None else {"a": 1},
        codec=idempotency.ResultCodec(int),
        operation=op,
    )


def test_run_executes_once_and_replays(market: Market) -> None:
    """``run`` calls the operation once per key and replays its result afterwards."""
    calls: list[int] = []

    def op(_uow: Any) -> int:
        calls.append(1)
        return 41 + len(calls)

    assert _run(market, op, "k") == Outcome(42)
    assert _run(market, op, "k") == Outcome(42, replayed=True)
    assert _run(market, op, None) == Outcome(43)
    assert len(calls) == 2


@pytest.mark.parametrize("error", [NotFound(), RuntimeError("boom"), KeyboardInterrupt()])
def test_run_releases_the_claim_when_the_operation_fails(
    market: Market, error: BaseException
) -> None:
    """Any failure of the operation propagates unchanged and leaves no record behind."""

    def op(_uow: Any) -> int:
        raise error

    with pytest.raises(type(error)) as info:
        _run(market, op, "k")
    assert info.value is error
    assert market.store.idempotency == {}
    assert _run(market, lambda _uow: 7, "k") == Outcome(7)


def test_request_hash_is_canonical_and_discriminating() -> None:
    """The hash ignores key order but changes with endpoint, path ids and body."""
    base = idempotency.request_hash("E", {"id": "1"}, {"a": 1, "b": [1, 2]})
    assert base == idempotency.request_hash("E", {"id": "1"}, {"b": [1, 2], "a": 1})
    assert len(base) == 64
    others = {
        idempotency.request_hash("F", {"id": "1"}, {"a": 1, "b": [1, 2]}),
        idempotency.request_hash("E", {"id": "2"}, {"a": 1, "b": [1, 2]}),
        idempotency.request_hash("E", {"id": "1"}, {"a": 1, "b": [2, 1]}),
        idempotency.request_hash("E", {"id": "1"}, {"a": 1.5, "b": [1, 2]}),
        idempotency.request_hash("E", {"id": "1"}, None),
    }
    assert base not in others
    assert len(others) == 5


@pytest.mark.parametrize(
    "body", [float("nan"), {"a": float("inf")}, {"a": object()}, {1: "x", "b": 2}, b"raw"]
)
def test_request_hash_rejects_non_json_bodies(body: object) -> None:
    """A body that is not a JSON value (NaN, inf, objects, mixed keys, bytes) fails on ``body``."""
    with pytest.raises(ValidationFailed) as info:
        idempotency.request_hash("E", {}, body)
    assert field_names(info.value) == ["body"]


def test_scopes_name_operations_not_routes() -> None:
    """Every idempotency scope is an operation name: the core knows no HTTP method or path."""
    for operation in idempotency.Operation:
        assert "/" not in operation.value, operation
        assert " " not in operation.value, operation
    assert len({operation.value for operation in idempotency.Operation}) == len(
        idempotency.Operation
    )


def test_legacy_hash_over_the_old_route_name_still_matches(market: Market) -> None:
    """A record stored before operations were named (``legacy:<route>:<hash>``) still replays
    the same request and refuses another body with ``CONFLICT`` (ADR 0020)."""
    calls: list[int] = []

    def op(_uow: Any) -> int:
        calls.append(1)
        return 7

    assert _run(market, op, "k", body={"a": 1}) == Outcome(7)
    (stored,) = market.store.idempotency.values()
    legacy = "legacy:POST /v1/publisher/profile:" + idempotency.request_hash(
        "POST /v1/publisher/profile", {"id": "1"}, {"a": 1}
    )
    key = next(iter(market.store.idempotency))
    market.store.idempotency[key] = attrs.evolve(stored, request_hash=legacy)
    assert _run(market, op, "k", body={"a": 1}) == Outcome(7, replayed=True)
    with pytest.raises(Conflict):
        _run(market, op, "k", body={"a": 2})
    assert len(calls) == 1


# --------------------------------------------------------------------------- takeover and release


def _failing_replace(monkeypatch: pytest.MonkeyPatch, times: int) -> list[str]:
    """The store's compare-and-set on idempotency records loses its race ``times`` times
    (another process took the key first); returns the claim ids it was asked about."""
    original = memory_store._Idempotency.replace
    asked: list[str] = []

    def replace(self: Any, record: IdempotencyRecord, expected_claim_id: str) -> bool:
        asked.append(expected_claim_id)
        if len(asked) <= times:
            return False
        return original(self, record, expected_claim_id)

    monkeypatch.setattr(memory_store._Idempotency, "replace", replace)
    return asked


def test_r_idemp_02_a_lost_takeover_race_is_retried(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taking over a stale claim that another process replaced first reads again, and wins
    the next round when the key is still free to take."""
    pub = market.publisher()
    key = new_key()
    payload = listing_payload()
    digest = idempotency.request_hash(CREATE, {}, payload)
    dead = open_claim(market, "pub-a", key, digest)
    assert isinstance(dead, IdempotencyRecord)
    market.clock.advance(LEASE_MS)
    asked = _failing_replace(monkeypatch, times=1)
    outcome = market.fp.publishing.create_listing(pub, payload, idempotency_key=key)
    assert outcome.replayed is False
    assert asked[:2] == [dead.claim_id, dead.claim_id]  # the takeover, tried twice
    assert len(market.store.listings) == 1


def test_r_idemp_02_takeovers_lost_every_time_answer_in_progress(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three lost rounds in a row are a busy key: ``CONFLICT`` (in progress), nothing run."""
    pub = market.publisher()
    key = new_key()
    payload = listing_payload()
    digest = idempotency.request_hash(CREATE, {}, payload)
    open_claim(market, "pub-a", key, digest)
    market.clock.advance(LEASE_MS)
    asked = _failing_replace(monkeypatch, times=99)
    with pytest.raises(Conflict) as info:
        market.fp.publishing.create_listing(pub, payload, idempotency_key=key)
    assert info.value.hint == "in progress"
    assert len(asked) == 3
    assert market.store.listings == {}


def test_r_idemp_03_a_claim_taken_over_while_running_does_not_commit(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the claim was taken over mid-operation (its lease ran out), the operation's
    writes roll back and the caller hears ``in progress``: never two executions stored."""
    calls: list[int] = []

    def op(uow: Any) -> int:
        calls.append(1)
        _failing_replace(monkeypatch, times=1)  # the completion finds another claim
        return 5

    with pytest.raises(Conflict) as info:
        _run(market, op, "k")
    assert info.value.hint == "in progress"
    assert calls == [1]
    assert market.store.idempotency == {}  # released: a retry runs again


def test_r_idemp_03_a_failed_operation_takes_its_claim_with_it_without_a_release(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is written in the operation's transaction: a failing operation's error
    propagates unchanged and its claim rolls back with it, with no release step (a broken
    delete changes nothing), so the key is free at once (ADR 0037)."""

    def broken_delete(self: Any, record: IdempotencyRecord) -> None:  # pragma: no cover
        raise ConnectionError("storage is down")

    error = NotFound()

    def op(_uow: Any) -> int:
        raise error

    with monkeypatch.context() as patched:
        patched.setattr(memory_store._Idempotency, "delete", broken_delete)
        with pytest.raises(NotFound) as info:
            _run(market, op, "k")
    assert info.value is error
    assert market.store.idempotency == {}
    assert _run(market, lambda _uow: 7, "k") == Outcome(7)


def test_u_idemp_03_in_progress_says_so_and_when_to_retry(market: Market) -> None:
    """The in-progress ``CONFLICT`` has its own message and a ``Retry-After`` of 1 s, after
    which a client usually gets its replay (the reused-key ``CONFLICT`` has neither)."""
    pub = market.publisher()
    key = new_key()
    payload = listing_payload()
    digest = idempotency.request_hash(CREATE, {}, payload)
    open_claim(market, "pub-a", key, digest)
    with pytest.raises(Conflict) as running:
        market.fp.publishing.create_listing(pub, payload, idempotency_key=key)
    assert running.value.message == "A request with this idempotency key is still in progress."
    assert running.value.retry_after_s == idempotency.IN_PROGRESS_RETRY_AFTER_S == 1
    other = new_key()
    market.fp.publishing.create_listing(pub, payload, idempotency_key=other)
    with pytest.raises(Conflict) as reused:
        market.fp.publishing.create_listing(
            pub, listing_payload(name="Other"), idempotency_key=other
        )
    assert reused.value.message == "This idempotency key was used for a different request."
    assert reused.value.retry_after_s is None


def test_u_idemp_02_a_read_only_mapping_hashes_as_the_dict_it_holds() -> None:
    """An embedder may pass a ``MappingProxyType`` (or any mapping) as the body."""
    body = {"a": 1, "b": {"c": [1, 2]}}
    proxy = MappingProxyType({"a": 1, "b": MappingProxyType({"c": (1, 2)})})
    assert idempotency.request_hash("E", {}, proxy) == idempotency.request_hash("E", {}, body)


def test_u_idemp_02_a_reused_key_hints_at_a_new_key(market: Market) -> None:
    """The reused-key ``CONFLICT`` tells the client what to do."""
    _run(market, lambda _uow: 1, "k", body={"a": 1})
    with pytest.raises(Conflict) as reused:
        _run(market, lambda _uow: 2, "k", body={"a": 2})
    assert reused.value.hint == "use a new Idempotency-Key for a different request"


def test_r_idemp_02_a_lost_insert_race_reads_what_the_winner_stored(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key was free when read but another process inserted it first: the claim's
    insert hits the unique constraint, and the next round replays the winner's answer."""
    calls: list[int] = []

    def op(_uow: Any) -> int:
        calls.append(1)
        return 9

    assert _run(market, op, "k") == Outcome(9)
    original = memory_store._Idempotency.get
    stale = [True]

    def get(self: Any, *args: Any) -> IdempotencyRecord | None:
        if stale.pop() if stale else False:
            return None  # read before the winner's insert landed
        return original(self, *args)

    monkeypatch.setattr(memory_store._Idempotency, "get", get)
    assert _run(market, op, "k") == Outcome(9, replayed=True)
    assert calls == [1]


def test_r_idemp_02_another_unique_violation_is_not_taken_for_a_lost_race(
    market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    def add(self: Any, record: IdempotencyRecord) -> None:
        raise DuplicateError(UniqueConstraint.PRIMARY_KEY)

    monkeypatch.setattr(memory_store._Idempotency, "add", add)
    with pytest.raises(DuplicateError) as caught:
        _run(market, lambda _uow: 1, "k")
    assert caught.value.constraint == UniqueConstraint.PRIMARY_KEY


#: The canonical request hash is stored with every record and compared by the next
#: version of the server during a rolling deploy: its spelling must not drift.
GOLDEN_REQUEST_HASH = "e61d2770ad8b4ed76da4afed15ac9cccb5989c18db652777316780840678ef77"


def test_u_idemp_02_the_request_hash_of_a_golden_request_is_unchanged() -> None:
    body = {"name": "Café", "n": [1, 2]}
    assert idempotency.request_hash("listing.create", {"id": "1"}, body) == GOLDEN_REQUEST_HASH

"""Resilience acceptance through the use cases: R-IDEMP-01..04, R-TOK-01..03, R-PAG-01..02."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_app_support import (
    VERIFIER,
    audit_count,
    changes,
    failure,
    redeem_request,
    redeem_signed,
    snapshot,
    walk,
)

from fleetprompt_adapters.memory import MemoryStore, MemoryUnitOfWork, bootstrap
from fleetprompt_core import (
    Call,
    Conflict,
    CoreSettings,
    FleetPrompt,
    InstallIntentStatus,
    InstallTokenStatus,
    NotFound,
    Outcome,
    ValidationFailed,
)
from fleetprompt_core.base import limits
from fleetprompt_core.domain.model import IdempotencyRecord
from fleetprompt_core.services import _idempotency as idempotency
from fleetprompt_core.services.views import IssuedToken
from support import Market, listing_payload, new_key, release_payload

# --------------------------------------------------------------------------- transient failures


class _Switch:
    """Decides which commits fail with a transient error.

    ``plan`` scripts the next commits one by one (``True`` fails it); once it is used up,
    the next ``failures`` commits that carry an audit event — the commit of a mutation, not
    of an idempotency claim — fail.
    """

    def __init__(self) -> None:
        self.plan: list[bool] = []
        self.failures = 0
        self.raised = 0

    def fails(self, carries_audit: bool) -> bool:
        if self.plan:
            fail = self.plan.pop(0)
        else:
            fail = bool(self.failures) and carries_audit
            if fail:
                self.failures -= 1
        self.raised += fail
        return fail


class FlakyUnitOfWork(MemoryUnitOfWork):
    def __init__(self, store: MemoryStore, switch: _Switch) -> None:
        super().__init__(store)
        self._store_ref = store
        self._switch = switch
        self._audit_at_start = 0

    def __enter__(self) -> FlakyUnitOfWork:
        entered = super().__enter__()
        self._audit_at_start = len(self._store_ref.audit)
        return entered

    def commit(self) -> None:
        if self._switch.fails(len(self._store_ref.audit) > self._audit_at_start):
            raise RuntimeError("transient storage failure")
        super().commit()


def _flaky(market: Market) -> tuple[FleetPrompt, _Switch]:
    """The market's application with a unit of work whose commits can be made to fail."""
    switch = _Switch()
    runtime = attrs.evolve(market.fp.runtime, uow=lambda: FlakyUnitOfWork(market.store, switch))
    return FleetPrompt(runtime), switch


# --------------------------------------------------------------------------- R-IDEMP-01


def _replay_cases() -> dict[str, Callable[[Market], Callable[[], Outcome[Any]]]]:
    """Each retryable write as a setup returning one request (same key each time it runs)."""

    def published(market: Market) -> tuple[Call, str, str]:
        publisher = market.publisher()
        view, release = market.published(publisher)
        return publisher, view.listing.listing_id, release.release_id

    def intent(market: Market) -> tuple[Call, str]:
        _, listing_id, _ = published(market)
        buyer = market.user("buyer")
        return buyer, market.intent(buyer, listing_id).install_intent_id

    def create_listing(m: Market) -> Callable[[], Outcome[Any]]:
        publisher, key = m.publisher(), new_key()
        return lambda: m.fp.publishing.create_listing(
            publisher, listing_payload(), idempotency_key=key
        )

    def update_listing(m: Market) -> Callable[[], Outcome[Any]]:
        (publisher, listing_id, _), key = published(m), new_key()
        return lambda: m.fp.publishing.update_listing(
            publisher, listing_id, {"summary": "Patched."}, idempotency_key=key
        )

    def change_status(m: Market) -> Callable[[], Outcome[Any]]:
        (publisher, listing_id, _), key = published(m), new_key()
        return lambda: m.fp.publishing.change_status(
            publisher, listing_id, {"status": "unlisted"}, idempotency_key=key
        )

    def publish_release(m: Market) -> Callable[[], Outcome[Any]]:
        (publisher, listing_id, _), key = published(m), new_key()
        return lambda: m.fp.publishing.publish_release(
            publisher, listing_id, release_payload("2.0.0"), idempotency_key=key
        )

    def revoke_release(m: Market) -> Callable[[], Outcome[Any]]:
        (publisher, _, release_id), key = published(m), new_key()
        return lambda: m.fp.publishing.revoke_release(
            publisher, release_id, {"reason": "bad"}, idempotency_key=key
        )

    def profile_put(m: Market) -> Callable[[], Outcome[Any]]:
        publisher, key = m.publisher(), new_key()
        return lambda: m.fp.profiles.put(
            publisher, {"displayName": "Acme", "bioMarkdown": "**hi**"}, idempotency_key=key
        )

    def create_intent(m: Market) -> Callable[[], Outcome[Any]]:
        (_, listing_id, _), key = published(m), new_key()
        buyer = m.user("buyer")
        body = {"listingId": listing_id, "targetSystem": "whs"}
        return lambda: m.fp.installs.create_intent(buyer, body, idempotency_key=key)

    def issue_token(m: Market) -> Callable[[], Outcome[Any]]:
        (buyer, intent_id), key = intent(m), new_key()
        return lambda: m.fp.installs.issue_token(buyer, intent_id, None, idempotency_key=key)

    def cancel_intent(m: Market) -> Callable[[], Outcome[Any]]:
        (buyer, intent_id), key = intent(m), new_key()
        return lambda: m.fp.installs.cancel_intent(buyer, intent_id, idempotency_key=key)

    def suspend(m: Market) -> Callable[[], Outcome[Any]]:
        admin, (_, listing_id, _), key = m.admin(), published(m), new_key()
        return lambda: m.fp.admin.suspend_listing(
            admin, listing_id, {"reason": "spam"}, idempotency_key=key
        )

    def change_roles(m: Market) -> Callable[[], Outcome[Any]]:
        admin, key = m.admin(), new_key()
        user_id = m.fp.operator.ensure_user("someone").user_id
        return lambda: m.fp.admin.change_roles(
            admin, user_id, {"grant": ["publisher"]}, idempotency_key=key
        )

    def set_verification(m: Market) -> Callable[[], Outcome[Any]]:
        admin, key = m.admin(), new_key()
        m.publisher()
        publisher_id = m.store.users_by_external_id["pub-a"]
        return lambda: m.fp.admin.set_verification(
            admin, publisher_id, {"status": "verified", "reason": "docs"}, idempotency_key=key
        )

    return {
        name: setup
        for name, setup in locals().items()
        if name not in ("published", "intent") and callable(setup)
    }


_REPLAYS = _replay_cases()


@pytest.mark.parametrize("case", sorted(_REPLAYS))
def test_r_idemp_01_replay_after_success_returns_the_identical_answer(
    market: Market, case: str
) -> None:
    """A replay after success answers the stored value, marked replayed, and writes nothing."""
    request = _REPLAYS[case](market)
    first = request()
    assert not first.replayed
    after_first = snapshot(market)
    market.clock.advance(60 * 60 * 1000)
    for _ in range(2):
        again = request()
        assert again.replayed
        if isinstance(first.value, IssuedToken):
            assert first.value.install_token is not None
            assert again.value == attrs.evolve(first.value, install_token=None)
        else:
            assert again.value == first.value
    assert changes(after_first, snapshot(market)) == {}


def test_r_idemp_01_replay_answers_the_original_even_after_the_resource_changed(
    market: Market,
) -> None:
    """A replay answers what the first request answered, not the resource's current state."""
    publisher = market.publisher()
    key = new_key()
    first = market.fp.publishing.create_listing(publisher, listing_payload(), idempotency_key=key)
    listing_id = first.value.listing.listing_id
    market.fp.publishing.update_listing(publisher, listing_id, {"name": "Renamed"})
    again = market.fp.publishing.create_listing(publisher, listing_payload(), idempotency_key=key)
    assert again.replayed
    assert again.value == first.value
    assert again.value.listing.name == "Support Triage Agent"
    assert market.store.listings[listing_id].name == "Renamed"


# --------------------------------------------------------------------------- R-IDEMP-02


def _race(count: int, action: Callable[[], Outcome[Any]]) -> list[Outcome[Any] | Exception]:
    """Run ``action`` from ``count`` threads released at the same instant."""
    barrier = threading.Barrier(count)
    results: list[Outcome[Any] | Exception] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            result: Outcome[Any] | Exception = action()
        except Exception as error:
            result = error
        with lock:
            results.append(result)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == count
    return results


def _one_execution(results: list[Outcome[Any] | Exception]) -> list[Outcome[Any]]:
    """Exactly one non-replayed success; the rest are replays or in-progress CONFLICTs."""
    successes = [r for r in results if isinstance(r, Outcome)]
    fresh = [r for r in successes if not r.replayed]
    assert len(fresh) == 1, results
    for result in results:
        if isinstance(result, Exception):
            assert isinstance(result, Conflict), result
            assert result.hint == "in progress"
    return successes


def test_r_idemp_02_concurrent_duplicates_create_exactly_one_listing(market: Market) -> None:
    """Eight concurrent same-key creates make one listing; others replay or CONFLICT."""
    publisher = market.publisher()
    key = new_key()
    before = audit_count(market)
    results = _race(
        8,
        lambda: market.fp.publishing.create_listing(
            publisher, listing_payload(), idempotency_key=key
        ),
    )
    successes = _one_execution(results)
    assert len(market.store.listings) == 1
    (listing_id,) = market.store.listings
    assert {s.value.listing.listing_id for s in successes} == {listing_id}
    assert audit_count(market) == before + 1


def test_r_idemp_02_concurrent_duplicates_issue_exactly_one_token(market: Market) -> None:
    """Concurrent same-key intent creates and token issues each execute exactly once."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    body = {"listingId": view.listing.listing_id, "targetSystem": "whs"}
    intent_key = new_key()
    intents = _one_execution(
        _race(8, lambda: market.fp.installs.create_intent(buyer, body, idempotency_key=intent_key))
    )
    assert len(market.store.intents) == 1
    intent_id = intents[0].value.install_intent_id
    token_key = new_key()
    tokens = _one_execution(
        _race(
            8,
            lambda: market.fp.installs.issue_token(
                buyer, intent_id, None, idempotency_key=token_key
            ),
        )
    )
    assert len(market.store.tokens) == 1
    raws = [t.value.install_token for t in tokens if t.value.install_token is not None]
    assert len(raws) == 1
    assert all(t.value.install_token is None for t in tokens if t.replayed)
    assert market.redeem(raws[0]).install_intent.status is InstallIntentStatus.REDEEMED


def test_r_idemp_02_a_duplicate_that_reads_the_memory_store_first_waits_and_replays(
    market: Market,
) -> None:
    """A duplicate arriving while the first request's transaction (claim and work) is open
    never runs. This caller's user row is read before the key is (its principal carries
    none), and every unit of work of the memory store, reads too, queues behind the open
    one: the duplicate reaches its key only once the first committed, and replays its
    answer (ADR 0037). A caller whose principal carries the row, as the API-token
    resolver's does, is CONFLICT (in progress) at once instead (test_idempotency)."""
    publisher = market.publisher()
    key = new_key()
    running, proceed = threading.Event(), threading.Event()
    first_thread: list[threading.Thread] = []

    class GatedUnitOfWork(MemoryUnitOfWork):
        """Holds the first request inside its writing transaction (claim and work done,
        not committed); its reads never commit."""

        def commit(self) -> None:
            if first_thread and threading.current_thread() is first_thread[0]:
                first_thread.clear()
                running.set()
                proceed.wait(timeout=10)
            super().commit()

    gated = FleetPrompt(attrs.evolve(market.fp.runtime, uow=lambda: GatedUnitOfWork(market.store)))
    outcomes: list[Outcome[Any]] = []
    worker = threading.Thread(
        target=lambda: outcomes.append(
            gated.publishing.create_listing(publisher, listing_payload(), idempotency_key=key)
        )
    )
    first_thread.append(worker)
    duplicates: list[Outcome[Any]] = []
    duplicate = threading.Thread(
        target=lambda: duplicates.append(
            market.fp.publishing.create_listing(publisher, listing_payload(), idempotency_key=key)
        )
    )
    worker.start()
    try:
        assert running.wait(timeout=10)
        duplicate.start()
        duplicate.join(timeout=0.3)
        assert duplicate.is_alive(), "the duplicate ran beside the first request"
        assert len(market.store.listings) == 1  # the first's (this store writes in place)
    finally:
        proceed.set()
        worker.join(timeout=10)
        duplicate.join(timeout=10)
    (first,) = outcomes
    (again,) = duplicates
    assert not first.replayed
    assert list(market.store.listings) == [first.value.listing.listing_id]
    assert again.replayed
    assert again.value == first.value


def test_r_idemp_02_an_unfinished_claim_refuses_duplicates_until_its_lease_ends(
    market: Market,
) -> None:
    """An unanswered claim (left by the previous design when its holder died between the
    claim and the work) refuses duplicates until its lease ends, then runs exactly once;
    a failed request of this design leaves no such claim."""
    publisher = market.publisher()
    key = new_key()
    fp, switch = _flaky(market)
    # The commit fails: the claim rolls back with the work, nothing is left claimed.
    switch.plan = [True]
    with pytest.raises(RuntimeError):
        fp.publishing.create_listing(publisher, listing_payload(), idempotency_key=key)
    assert market.store.idempotency == {}
    rt = market.fp.runtime
    now = rt.clock.now_ms()
    user_id = market.store.users_by_external_id["pub-a"]
    digest = idempotency.request_hash(idempotency.Operation.LISTING_CREATE, {}, listing_payload())
    with rt.uow() as uow:
        uow.idempotency.add(
            IdempotencyRecord(
                scope_user_id=user_id,
                endpoint=idempotency.Operation.LISTING_CREATE,
                key=key,
                request_hash=digest,
                claim_id="idm_dead",
                created_at_ms=now,
                expires_at_ms=now + limits.IDEMPOTENCY_RETENTION_MS,
                lease_until_ms=now + limits.IDEMPOTENCY_LEASE_MS,
            )
        )
        uow.commit()
    error = failure(
        lambda: market.fp.publishing.create_listing(
            publisher, listing_payload(), idempotency_key=key
        )
    )
    assert isinstance(error, Conflict)
    assert error.hint == "in progress"
    assert market.store.listings == {}
    market.clock.advance(limits.IDEMPOTENCY_LEASE_MS)
    done = market.fp.publishing.create_listing(publisher, listing_payload(), idempotency_key=key)
    assert not done.replayed
    assert len(market.store.listings) == 1


# --------------------------------------------------------------------------- R-IDEMP-03


def test_r_idemp_03_retry_after_a_refusal_executes(market: Market) -> None:
    """A refused request stores nothing: its retry executes once the state allows it."""
    publisher = market.publisher()
    view = market.draft(publisher)
    listing_id = view.listing.listing_id
    key = new_key()

    def publish() -> Outcome[Any]:
        return market.fp.publishing.change_status(
            publisher, listing_id, {"status": "published"}, idempotency_key=key
        )

    assert isinstance(failure(publish), Conflict)  # no release yet
    assert isinstance(failure(publish), Conflict)  # re-executed, not a stored failure
    market.release(publisher, listing_id)
    done = publish()
    assert not done.replayed
    assert done.value.listing.status.value == "published"
    assert publish().replayed


def test_r_idemp_03_retry_after_a_transient_failure_executes_once(market: Market) -> None:
    """After a failed commit nothing is kept and the same-key retry creates exactly one."""
    publisher = market.publisher()
    fp, switch = _flaky(market)
    key = new_key()
    before = snapshot(market)
    switch.failures = 1
    with pytest.raises(RuntimeError, match="transient"):
        fp.publishing.create_listing(publisher, listing_payload(), idempotency_key=key)
    assert switch.raised == 1
    assert changes(before, snapshot(market)) == {}
    retried = fp.publishing.create_listing(publisher, listing_payload(), idempotency_key=key)
    assert not retried.replayed
    assert fp.publishing.create_listing(publisher, listing_payload(), idempotency_key=key).replayed
    assert list(market.store.listings) == [retried.value.listing.listing_id]
    assert [e.type for e in market.store.audit[len(before["audit"]) :]] == ["listing.created"]


def test_r_idemp_03_validation_failures_store_nothing(market: Market) -> None:
    """A request that fails validation stores nothing under its key."""
    publisher = market.publisher()
    key = new_key()
    bad = listing_payload(name="")
    assert isinstance(
        failure(lambda: market.fp.publishing.create_listing(publisher, bad, idempotency_key=key)),
        ValidationFailed,
    )
    assert market.store.idempotency == {}
    good = market.fp.publishing.create_listing(publisher, listing_payload(), idempotency_key=key)
    assert not good.replayed
    assert len(market.store.listings) == 1


# --------------------------------------------------------------------------- R-IDEMP-04


def test_r_idemp_04_different_keys_create_different_resources(market: Market) -> None:
    """Different keys make different resources; a reused key with another request CONFLICTs."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    first = market.fp.publishing.create_listing(publisher, listing_payload(), idempotency_key="a")
    second = market.fp.publishing.create_listing(publisher, listing_payload(), idempotency_key="b")
    assert first.value.listing.listing_id != second.value.listing.listing_id
    assert len(market.store.listings) == 2
    error = failure(
        lambda: market.fp.publishing.create_listing(
            publisher, listing_payload(name="Other"), idempotency_key="a"
        )
    )
    assert isinstance(error, Conflict)
    assert error.hint != "in progress"
    assert len(market.store.listings) == 2

    ids = [first.value.listing.listing_id, second.value.listing.listing_id]
    for listing_id in ids:
        market.release(publisher, listing_id)
    market.fp.publishing.change_status(
        publisher, ids[0], {"status": "published"}, idempotency_key="s"
    )
    error = failure(
        lambda: market.fp.publishing.change_status(
            publisher, ids[1], {"status": "published"}, idempotency_key="s"
        )
    )
    assert isinstance(error, Conflict)  # same key, same body, another listing
    assert market.store.listings[ids[1]].status.value == "draft"
    # The same key on another endpoint is another key.
    intent = market.fp.installs.create_intent(
        buyer, {"listingId": ids[0], "targetSystem": "whs"}, idempotency_key="a"
    )
    assert not intent.replayed
    tokens = {
        market.fp.installs.issue_token(
            buyer, intent.value.install_intent_id, None, idempotency_key=k
        ).value.token_id
        for k in ("t1", "t2", "t3")
    }
    assert len(tokens) == 3


# --------------------------------------------------------------------------- R-TOK-01


def _token_for(market: Market, ttl_ms: int | None = None) -> IssuedToken:
    publisher = market.publisher()
    buyer = market.user("buyer")
    views = market.fp.catalog.search({}).items
    listing_id = views[0].listing_id if views else market.published(publisher)[0].listing.listing_id
    intent = market.intent(buyer, listing_id)
    return market.token(buyer, intent.install_intent_id, ttl_ms)


def test_r_tok_01_token_expiry_boundary_is_exact(market: Market) -> None:
    """A token redeems at ``expiresAtMs - 1`` and is NOT_FOUND at ``expiresAtMs`` exactly."""
    late = _token_for(market)
    on_time = _token_for(market)
    assert late.install_token is not None
    assert on_time.install_token is not None
    assert late.expires_at_ms == on_time.expires_at_ms
    market.clock.set(on_time.expires_at_ms - 1)
    assert redeem_signed(market, on_time.install_token).install_intent.status is (
        InstallIntentStatus.REDEEMED
    )
    market.clock.set(late.expires_at_ms)
    before = snapshot(market)
    assert isinstance(failure(lambda: redeem_signed(market, late.install_token or "")), NotFound)
    assert changes(before, snapshot(market)) == {}
    assert (
        market.store.tokens[late.token_id].status is InstallTokenStatus.ISSUED
    )  # not yet persisted
    market.fp.retention.run()
    assert market.store.tokens[late.token_id].status is InstallTokenStatus.EXPIRED


def test_r_tok_01_custom_ttl_and_intent_expiry_boundaries(market: Market) -> None:
    """Custom TTLs and the intent's 24 h expiry have the same exact boundary."""
    short = _token_for(market, ttl_ms=60_000)
    assert short.install_token is not None
    market.clock.advance(59_999)
    assert redeem_signed(market, short.install_token).install_intent.install_intent_id == (
        short.install_intent_id
    )
    buyer = market.user("buyer")
    listing_id = market.fp.catalog.search({}).items[0].listing_id
    intent = market.intent(buyer, listing_id)
    market.clock.set(intent.expires_at_ms - 1)
    last = market.token(buyer, intent.install_intent_id)
    assert last.expires_at_ms == intent.expires_at_ms
    market.clock.set(intent.expires_at_ms)
    assert isinstance(failure(lambda: market.token(buyer, intent.install_intent_id)), Conflict)
    assert isinstance(failure(lambda: redeem_signed(market, last.install_token or "")), NotFound)


# --------------------------------------------------------------------------- R-TOK-02


def test_r_tok_02_reissue_revokes_every_earlier_token(market: Market) -> None:
    """Each re-issue revokes the earlier tokens (audited); only the newest redeems."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id)
    iid = intent.install_intent_id
    issued = [market.token(buyer, iid) for _ in range(3)]
    statuses = [market.store.tokens[t.token_id].status for t in issued]
    assert statuses == [
        InstallTokenStatus.REVOKED,
        InstallTokenStatus.REVOKED,
        InstallTokenStatus.ISSUED,
    ]
    revoked_counts = [
        e.details["revokedTokens"] for e in market.store.audit if e.type == "install_token.issued"
    ]
    assert revoked_counts == [0, 1, 1]
    for old in issued[:2]:
        assert isinstance(
            failure(lambda t=old: redeem_signed(market, t.install_token or "")), NotFound
        )
    market.clock.advance(1_000)
    newest = market.token(buyer, iid)
    assert market.store.tokens[issued[2].token_id].status is InstallTokenStatus.REVOKED
    market.fp.installs.cancel_intent(buyer, iid, idempotency_key=new_key())
    assert market.store.tokens[newest.token_id].status is InstallTokenStatus.REVOKED
    assert isinstance(failure(lambda: redeem_signed(market, newest.install_token or "")), NotFound)


def test_r_tok_02_an_expired_earlier_token_is_not_revoked_by_a_reissue(market: Market) -> None:
    """Re-issuing after an earlier token already expired records it as expired, not revoked."""
    first = _token_for(market, ttl_ms=60_000)
    buyer = market.user("buyer")
    market.clock.advance(60_000)
    market.token(buyer, first.install_intent_id)
    assert market.store.tokens[first.token_id].status is InstallTokenStatus.EXPIRED
    assert market.store.audit[-1].details["revokedTokens"] == 0


# --------------------------------------------------------------------------- R-TOK-03


def test_r_tok_03_redeem_under_transient_failure_then_retry_succeeds_once(market: Market) -> None:
    """A failed redeem commit changes nothing; the retry succeeds once, the next is NOT_FOUND."""
    issued = _token_for(market)
    raw = issued.install_token
    assert raw is not None
    fp, switch = _flaky(market)

    def redeem() -> object:
        return fp.redemption.redeem_signed(
            VERIFIER, **redeem_request(raw, sent_at_ms=market.clock.now_ms())
        )

    before = snapshot(market)
    switch.failures = 1
    with pytest.raises(RuntimeError, match="transient"):
        redeem()
    assert switch.raised == 1
    assert changes(before, snapshot(market)) == {}
    assert market.store.tokens[issued.token_id].status is InstallTokenStatus.ISSUED
    assert market.store.intents[issued.install_intent_id].status is InstallIntentStatus.TOKEN_ISSUED
    redeem()
    assert isinstance(failure(redeem), NotFound)
    redeemed = [e for e in market.store.audit if e.type == "install_token.redeemed"]
    assert len(redeemed) == 1
    assert market.store.tokens[issued.token_id].status is InstallTokenStatus.REDEEMED


def test_r_tok_03_token_issue_under_transient_failure_keeps_the_old_token(market: Market) -> None:
    """A failed re-issue commit keeps the old token; the same-key retry issues one new token."""
    first = _token_for(market)
    buyer = market.user("buyer")
    fp, switch = _flaky(market)
    key = new_key()
    before = snapshot(market)
    switch.failures = 1
    with pytest.raises(RuntimeError):
        fp.installs.issue_token(buyer, first.install_intent_id, None, idempotency_key=key)
    assert changes(before, snapshot(market)) == {}
    assert market.store.tokens[first.token_id].status is InstallTokenStatus.ISSUED
    second = fp.installs.issue_token(buyer, first.install_intent_id, None, idempotency_key=key)
    assert not second.replayed
    assert second.value.install_token is not None
    assert len(market.store.tokens) == 2
    assert market.store.tokens[first.token_id].status is InstallTokenStatus.REVOKED


# --------------------------------------------------------------------------- R-PAG-01


def _paged_sources(market: Market) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """Every list use case with at least three items, as ``params -> Page``."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    admin = market.admin()
    view, _ = market.published(publisher, "1.0.0")
    listing_id = view.listing.listing_id
    for version in ("1.1.0", "1.2.0"):
        market.clock.advance(1)
        market.release(publisher, listing_id, version)
    for _ in range(2):
        market.published(publisher)
    for _ in range(3):
        market.intent(buyer, listing_id)
    return {
        "search": market.fp.catalog.search,
        "public_releases": lambda p: market.fp.catalog.releases(listing_id, p),
        "publisher_listings": lambda p: market.fp.publishing.list_listings(publisher, p),
        "publisher_releases": lambda p: market.fp.publishing.list_releases(
            publisher, listing_id, p
        ),
        "intents": lambda p: market.fp.installs.list_intents(buyer, p),
        "audit": lambda p: market.fp.admin.read_audit(admin, p),
    }


def _tampered(cursor: str) -> list[object]:
    body, mac = cursor.split(".")
    flip = {"A": "B"}.get(body[0], "A")
    return [
        flip + body[1:] + "." + mac,
        body + "." + ("A" if mac[0] != "A" else "B") + mac[1:],
        body[:-2] + "." + mac,
        cursor + "." + mac,
        body,
        "." + mac,
        cursor[:-1],
        mac + "." + body,
        "ünïcode." + mac,
        "x" * 3000,
        "",
        123,
        ["a"],
    ]


def _respelled(cursor: str) -> list[str]:
    """Malformed spellings of a genuine cursor that decode to the same bytes when a decoder
    is lenient (padding, characters outside the alphabet, the other base64 alphabet)."""
    body, mac = cursor.split(".")
    spellings = [
        cursor + "=",
        body + "==." + mac,
        body[:4] + "!" + body[4:] + "." + mac,
        body[:4] + "!!!!" + body[4:] + "." + mac,
        body[:4] + " " + body[4:] + "." + mac,
        body + "." + mac[:3] + "\n" + mac[3:],
    ]
    for url_safe, standard in (("-", "+"), ("_", "/")):
        if url_safe in cursor:
            spellings.append(cursor.replace(url_safe, standard, 1))
    return spellings


@pytest.mark.parametrize(
    "source",
    ["search", "public_releases", "publisher_listings", "publisher_releases", "intents", "audit"],
)
def test_r_pag_01_cursors_are_stable_and_tamper_evident(market: Market, source: str) -> None:
    """The same cursor gives the same page; edited or malformed cursors fail on cursor."""
    fetch = _paged_sources(market)[source]
    first = fetch({"limit": 1})
    cursor = first.next_cursor
    assert isinstance(cursor, str)
    page = fetch({"limit": 1, "cursor": cursor})
    assert page.items
    for _ in range(3):
        assert fetch({"limit": 1, "cursor": cursor}) == page
    assert page.items != first.items
    for bad in _tampered(cursor):
        error = failure(lambda b=bad: fetch({"limit": 1, "cursor": b}))
        assert isinstance(error, ValidationFailed), bad
        assert [f.field_name for f in error.fields] == ["cursor"], bad


def test_r_pag_01_malformed_spellings_of_a_cursor_are_refused(market: Market) -> None:
    """Only the exact issued spelling of a cursor is accepted (no padding, junk or +/ alphabet)."""
    fetch = _paged_sources(market)["search"]
    cursor = fetch({"limit": 1}).next_cursor
    assert isinstance(cursor, str)
    accepted, refused = [], []
    for spelling in _respelled(cursor):
        try:
            fetch({"limit": 1, "cursor": spelling})
        except ValidationFailed as error:
            refused.append([f.field_name for f in error.fields])
        else:
            accepted.append(spelling)
    assert accepted == []
    assert all(fields == ["cursor"] for fields in refused)


def test_r_pag_01_a_cursor_from_another_query_is_refused(market: Market) -> None:
    """A cursor from another query, list, listing or server key fails on cursor."""
    sources = _paged_sources(market)
    search = sources["search"]
    updated = search({"limit": 1}).next_cursor
    assert updated is not None
    listing_ids = sorted(
        market.store.listings,
        key=lambda lid: -sum(r.listing_id == lid for r in market.store.releases.values()),
    )
    other_lid = listing_ids[-1]
    public = market.fp.catalog.releases(listing_ids[0], {"limit": 1}).next_cursor
    wrong: list[tuple[Callable[[dict[str, Any]], Any], str | None]] = [
        (lambda p: search({**p, "sort": "created"}), updated),
        (lambda p: search({**p, "sort": "name"}), updated),
        (lambda p: search({**p, "q": "triage"}), updated),
        (lambda p: search({**p, "tags": "support"}), updated),
        (lambda p: search({**p, "assetKind": "whs_agent"}), updated),
        (
            lambda p: market.fp.catalog.releases(listing_ids[0], {**p, "includeRevoked": True}),
            public,
        ),
        (lambda p: market.fp.catalog.releases(other_lid, p), public),
        (sources["publisher_releases"], public),
        (sources["intents"], sources["publisher_listings"]({"limit": 1}).next_cursor),
        (
            lambda p: sources["publisher_listings"]({**p, "status": "published"}),
            sources["publisher_listings"]({"limit": 1}).next_cursor,
        ),
        (sources["audit"], sources["intents"]({"limit": 1}).next_cursor),
        (search, public),
    ]
    for index, (fetch, cursor) in enumerate(wrong):
        assert cursor is not None, index
        error = failure(lambda f=fetch, c=cursor: f({"limit": 1, "cursor": c}))
        assert isinstance(error, ValidationFailed), index
        assert [f.field_name for f in error.fields] == ["cursor"], index
    other_server = bootstrap(
        store=market.store,
        clock=market.clock,
        settings=CoreSettings(),
        cursor_key=b"another-key-" * 4,
    )
    error = failure(lambda: other_server.catalog.search({"limit": 1, "cursor": updated}))
    assert isinstance(error, ValidationFailed)
    assert search({"limit": 1, "cursor": updated}).items  # still fine for the right query


# --------------------------------------------------------------------------- R-PAG-02


def _seed_listings(market: Market, publisher: Call, names: list[str]) -> set[str]:
    ids = set()
    for index, name in enumerate(names):
        market.clock.advance(index % 2)  # pairs share a timestamp
        view, _ = market.published(
            publisher, name=name, summary="agent" if index % 3 == 0 else "helper"
        )
        ids.add(view.listing.listing_id)
    return ids


_counter = itertools.count()


@pytest.mark.parametrize("sort", ["updated", "created", "name", "relevance"])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_r_pag_02_search_walk_survives_inserts_between_pages(
    market: Market, sort: str, limit: int
) -> None:
    """Inserts between search pages never drop or repeat a listing present at the start."""
    publisher = market.publisher()
    names = [
        "mango agent",
        "Apple agent",
        "kiwi agent",
        "banana agent",
        "Cherry agent",
        "fig agent",
    ]
    existing = _seed_listings(market, publisher, names)
    inserted_names = itertools.cycle(["aardvark agent", "zebra agent", "mango agent", "Kiwi agent"])

    def insert() -> None:
        market.clock.advance(next(_counter) % 2)
        market.published(publisher, name=next(inserted_names), summary="agent agent")

    params: dict[str, Any] = {"sort": sort, "limit": limit}
    if sort == "relevance":
        params["q"] = "agent"
    items = walk(
        lambda cursor: market.fp.catalog.search(
            {**params, **({"cursor": cursor} if cursor else {})}
        ),
        between=insert,
    )
    seen = [item.listing_id for item in items]
    assert len(seen) == len(set(seen))
    assert existing <= set(seen)


def test_r_pag_02_owner_and_buyer_lists_survive_inserts_between_pages(market: Market) -> None:
    """Inserts between pages of owner/buyer/release lists never drop or repeat an item."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher, "0.0.1")
    listing_id = view.listing.listing_id
    for patch in range(1, 6):
        market.clock.advance(patch % 2)
        market.release(publisher, listing_id, f"0.0.{patch + 1}")
        market.draft(publisher)
        market.intent(buyer, listing_id)
    versions = itertools.count(100)

    lists: dict[
        str, tuple[Callable[[str | None], Any], Callable[[], None], Callable[[Any], str]]
    ] = {
        "publisher_listings": (
            lambda c: market.fp.publishing.list_listings(publisher, {"limit": 2, "cursor": c}),
            lambda: market.draft(publisher) and None,
            lambda v: v.listing.listing_id,
        ),
        "publisher_releases": (
            lambda c: market.fp.publishing.list_releases(
                publisher, listing_id, {"limit": 2, "cursor": c}
            ),
            lambda: market.release(publisher, listing_id, f"1.0.{next(versions)}") and None,
            lambda r: r.release_id,
        ),
        "public_releases": (
            lambda c: market.fp.catalog.releases(listing_id, {"limit": 2, "cursor": c}),
            lambda: market.release(publisher, listing_id, f"1.0.{next(versions)}") and None,
            lambda r: r.release_id,
        ),
        "intents": (
            lambda c: market.fp.installs.list_intents(buyer, {"limit": 2, "cursor": c}),
            lambda: market.intent(buyer, listing_id) and None,
            lambda i: i.install_intent_id,
        ),
    }
    for name, (fetch, insert, ident) in lists.items():
        existing = [ident(item) for item in walk(fetch)]
        assert len(existing) >= 5, name

        def insert_twice(insert: Callable[[], None] = insert) -> None:
            insert()
            market.clock.advance(1)
            insert()

        seen = [ident(item) for item in walk(fetch, between=insert_twice)]
        assert len(seen) == len(set(seen)), name
        assert set(existing) <= set(seen), name
        assert [i for i in seen if i in set(existing)] == existing, name  # same order


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sort=st.sampled_from(["updated", "created", "name", "relevance"]),
    limit=st.integers(1, 4),
    names=st.lists(st.sampled_from(["a", "B", "c", "D", "e"]), min_size=1, max_size=7),
    inserts=st.lists(
        st.tuples(st.sampled_from(["A", "b", "C", "d", "z", "0"]), st.integers(0, 2)),
        max_size=6,
    ),
)
def test_r_pag_02_property_search_walk_returns_every_starting_listing_once(
    sort: str, limit: int, names: list[str], inserts: list[tuple[str, int]]
) -> None:
    """For any catalogue and insert schedule, a walk yields each starting listing once."""
    market = Market.create()
    publisher = market.publisher()
    existing = set()
    for index, name in enumerate(names):
        market.clock.advance(index % 2)
        view, _ = market.published(publisher, name=f"{name} agent")
        existing.add(view.listing.listing_id)
    pending = list(inserts)

    def insert() -> None:
        if pending:
            name, advance = pending.pop(0)
            market.clock.advance(advance)
            market.published(publisher, name=f"{name} agent")

    params: dict[str, Any] = {"sort": sort, "limit": limit}
    if sort == "relevance":
        params["q"] = "agent"
    items = walk(
        lambda cursor: market.fp.catalog.search(
            {**params, **({"cursor": cursor} if cursor else {})}
        ),
        between=insert,
    )
    seen = [item.listing_id for item in items]
    assert len(seen) == len(set(seen))
    assert existing <= set(seen)

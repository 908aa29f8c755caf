"""Concurrency: compare-and-set loses no update, unique keys have one winner, and keyset
pages stay exact while other units of work insert (R-PAG-02)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest

from contract import entities
from contract.entities import T0, Family
from contract.harness import Adapter, assert_identical, run_threads, store
from fleetprompt_core.base.enums import (
    ListingStatus,
    SearchSort,
)
from fleetprompt_core.base.errors import DuplicateError
from fleetprompt_core.domain.model import Listing
from fleetprompt_core.domain.search import ListingSearch, SearchHit, sort_key
from fleetprompt_core.ports import AuditQuery, UniqueConstraint, UnitOfWork

THREADS = 8


def _family(adapter: Adapter) -> Family:
    family = entities.family()
    adapter.add(*family)
    return family


# --------------------------------------------------------------------------- CAS counters


def _bump(listing: Listing) -> Listing:
    return attrs.evolve(listing, updated_at_ms=listing.updated_at_ms + 1)


@pytest.mark.parametrize("stale_reads", [False, True], ids=["read_in_same_uow", "read_before"])
def test_listing_cas_counter_loses_no_update(adapter: Adapter, stale_reads: bool) -> None:
    """Threads bump updated_at by CAS with retries; every success counts once, none is lost."""
    # With read_before each thread reads in one unit of work and writes in the
    # next, so other threads' writes slip in between and CAS must refuse.
    family = _family(adapter)
    listing_id = family.listing.listing_id
    rounds = 15
    tally = {"successes": 0, "retries": 0}
    lock = threading.Lock()

    def attempt_in_one(uow: UnitOfWork) -> bool:
        current = uow.listings.get(listing_id)
        assert current is not None
        if uow.listings.update(_bump(current), current):
            uow.commit()
            return True
        return False

    def attempt_split() -> bool:
        current = adapter.read(lambda uow: uow.listings.get(listing_id))
        assert current is not None
        time.sleep(0.0001)  # let other threads read the same value: real contention
        return adapter.write(lambda uow: uow.listings.update(_bump(current), current))

    def work(_: int) -> None:
        for _round in range(rounds):
            for _try in range(1_000):
                if attempt_split() if stale_reads else adapter.read(attempt_in_one):
                    break
                with lock:
                    tally["retries"] += 1
            else:  # pragma: no cover - livelock
                raise AssertionError("CAS never succeeded")
            with lock:
                tally["successes"] += 1

    run_threads(THREADS, work)
    final = adapter.read(lambda uow: uow.listings.get(listing_id))
    assert final is not None
    assert tally["successes"] == THREADS * rounds
    # Each success added exactly one: no write was based on a value another had replaced.
    assert final.updated_at_ms == family.listing.updated_at_ms + THREADS * rounds, tally
    assert final.status is family.listing.status


# --------------------------------------------------------------------------- single winner


@attrs.frozen
class CasCase:
    """One compare-and-set target: how to read it, change it and write it back."""

    read: Callable[[UnitOfWork, Family], Any]
    change: Callable[[Any, int], Any]
    update: Callable[[UnitOfWork, Any, Any], bool]


def _record(uow: UnitOfWork, family: Family) -> Any:
    return uow.idempotency.get(family.buyer.user_id, "POST /v1/race", "race-key")


#: The hash of the API token the CAS test stores for the family's buyer.
_RACE_API_TOKEN_HASH = "d" * 64


CAS_CASES = {
    "listing": CasCase(
        read=lambda uow, f: uow.listings.get(f.listing.listing_id),
        change=lambda cur, i: attrs.evolve(cur, name=f"winner {i}", updated_at_ms=T0 + 1),
        update=lambda uow, new, cur: uow.listings.update(new, cur),
    ),
    "release": CasCase(
        read=lambda uow, f: uow.releases.get(f.release.release_id),
        change=lambda cur, i: cur.revoked(f"winner {i}", T0 + i),
        update=lambda uow, new, cur: uow.releases.update(new, cur.status),
    ),
    "intent": CasCase(
        read=lambda uow, f: uow.intents.get(f.intent.install_intent_id),
        change=lambda cur, i: cur.canceled(T0 + i) if i % 2 else cur.token_issued(T0 + i),
        update=lambda uow, new, cur: uow.intents.update(new, cur.status),
    ),
    "token": CasCase(
        read=lambda uow, f: uow.tokens.get_by_hash(f.token.token_hash),
        change=lambda cur, i: cur.redeemed(f"system-{i}", T0 + i),
        update=lambda uow, new, cur: uow.tokens.update(new, cur.status),
    ),
    "idempotency": CasCase(
        read=_record,
        change=lambda cur, i: attrs.evolve(cur, claim_id=f"idm_{i}", response_json=f"[{i}]"),
        update=lambda uow, new, cur: uow.idempotency.replace(new, cur.claim_id),
    ),
    "api_token": CasCase(
        read=lambda uow, f: uow.api_tokens.get_by_hash(_RACE_API_TOKEN_HASH),
        change=lambda cur, i: cur.revoked(T0 + i),
        update=lambda uow, new, cur: uow.api_tokens.update(new, cur.revoked_at_ms),
    ),
}


@pytest.mark.parametrize("case", CAS_CASES.values(), ids=list(CAS_CASES))
def test_concurrent_cas_from_one_snapshot_has_one_winner(adapter: Adapter, case: CasCase) -> None:
    """Threads that read the same state and then compare-and-set it: exactly one wins."""
    family = _family(adapter)
    adapter.add(  # the record of the idempotency case, the token of the API token case
        entities.idempotency_record(
            scope_user_id=family.buyer.user_id, endpoint="POST /v1/race", key="race-key"
        ),
        entities.api_token(user_id=family.buyer.user_id, token_hash=_RACE_API_TOKEN_HASH),
    )
    barrier = threading.Barrier(THREADS, timeout=10)

    def work(i: int) -> tuple[bool, Any]:
        current = adapter.read(lambda uow: case.read(uow, family))
        new = case.change(current, i)
        barrier.wait()  # everybody holds the same snapshot before anybody writes
        return adapter.write(lambda uow: case.update(uow, new, current)), new

    outcomes = run_threads(THREADS, work)
    winners = [new for won, new in outcomes if won]
    assert len(winners) == 1, [won for won, _ in outcomes]
    assert_identical(adapter.read(lambda uow: case.read(uow, family)), winners[0])


# --------------------------------------------------------------------------- unique inserts


@attrs.frozen
class UniqueCase:
    """Entities that differ in their primary key but share one unique key."""

    constraint: UniqueConstraint
    build: Callable[[Family, int], Any]
    read: Callable[[UnitOfWork, Family], Any]


UNIQUE_CASES = {
    "user_external_id": UniqueCase(
        UniqueConstraint.USER_EXTERNAL_ID,
        build=lambda f, i: entities.user(external_id="idp|race", display_name=f"u{i}"),
        read=lambda uow, f: uow.users.get_by_external_id("idp|race"),
    ),
    "release_version": UniqueCase(
        UniqueConstraint.RELEASE_VERSION,
        build=lambda f, i: entities.release(
            listing_id=f.listing.listing_id,
            publisher_user_id=f.publisher.user_id,
            version="7.0.0",
            published_at_ms=T0 + i,
        ),
        read=lambda uow, f: next(
            r
            for r in uow.releases.list_for_listing(f.listing.listing_id, True, None, 100)
            if r.version == "7.0.0"
        ),
    ),
    "idempotency_key": UniqueCase(
        UniqueConstraint.IDEMPOTENCY_KEY,
        build=lambda f, i: entities.idempotency_record(
            scope_user_id=f.buyer.user_id, endpoint="POST /v1/race", key="race-key"
        ),
        read=_record,
    ),
    "token_hash": UniqueCase(
        UniqueConstraint.TOKEN_HASH,
        build=lambda f, i: entities.token(
            install_intent_id=f.intent.install_intent_id,
            buyer_user_id=f.buyer.user_id,
            token_hash="e" * 64,
        ),
        read=lambda uow, f: uow.tokens.get_by_hash("e" * 64),
    ),
    "api_token_hash": UniqueCase(
        UniqueConstraint.API_TOKEN_HASH,
        build=lambda f, i: entities.api_token(
            user_id=f.buyer.user_id, token_hash="e" * 64, name=f"t{i}"
        ),
        read=lambda uow, f: uow.api_tokens.get_by_hash("e" * 64),
    ),
}


@pytest.mark.parametrize("case", UNIQUE_CASES.values(), ids=list(UNIQUE_CASES))
def test_concurrent_inserts_of_one_unique_key_have_one_winner(
    adapter: Adapter, case: UniqueCase
) -> None:
    """8 threads insert the same unique key at once: one commits, the others get DuplicateError."""
    family = _family(adapter)
    barrier = threading.Barrier(THREADS, timeout=10)
    candidates = [case.build(family, i) for i in range(THREADS)]

    def work(i: int) -> str | None:
        barrier.wait()
        try:
            adapter.add(candidates[i])
        except DuplicateError as error:
            return str(error.constraint)
        return None

    outcomes = run_threads(THREADS, work)
    assert outcomes.count(None) == 1, outcomes
    assert sorted(o for o in outcomes if o is not None) == [str(case.constraint)] * (THREADS - 1)
    winner = candidates[outcomes.index(None)]
    assert_identical(adapter.read(lambda uow: case.read(uow, family)), winner)


# --------------------------------------------------------------------------- R-PAG-02


class Lister:
    """One keyset list of a repository, with a way to add items to it."""

    descending = True

    def __init__(self, family: Family) -> None:
        self.family = family

    def make(self, created: int, ident: str) -> Any:
        raise NotImplementedError

    def fetch(self, uow: UnitOfWork, after: Any, limit: int) -> Sequence[Any]:
        raise NotImplementedError

    def key(self, item: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    def ident(self, item: Any) -> str:
        return str(self.key(item)[-1])


class OwnerListings(Lister):
    def make(self, created: int, ident: str) -> Any:
        return entities.listing(
            listing_id=f"lst_{ident}",
            publisher_user_id=self.family.publisher.user_id,
            status=ListingStatus.PUBLISHED,
            created_at_ms=created,
            updated_at_ms=created,
        )

    def fetch(self, uow: UnitOfWork, after: Any, limit: int) -> Sequence[Any]:
        return uow.listings.list_by_owner(self.family.publisher.user_id, None, after, limit)

    def key(self, item: Any) -> tuple[Any, ...]:
        return (item.created_at_ms, item.listing_id)


class PublishedSearch(OwnerListings):
    def fetch(self, uow: UnitOfWork, after: Any, limit: int) -> Sequence[Any]:
        search = ListingSearch(sort=SearchSort.CREATED, after=after, limit=limit)
        return uow.listings.search_published(search)

    def key(self, item: Any) -> tuple[Any, ...]:
        assert isinstance(item, SearchHit)
        return sort_key(item, SearchSort.CREATED)


class ListingReleases(Lister):
    def make(self, created: int, ident: str) -> Any:
        return entities.release(
            release_id=f"rel_{ident}",
            listing_id=self.family.listing.listing_id,
            publisher_user_id=self.family.publisher.user_id,
            version=ident,
            published_at_ms=created,
        )

    def fetch(self, uow: UnitOfWork, after: Any, limit: int) -> Sequence[Any]:
        return uow.releases.list_for_listing(self.family.listing.listing_id, True, after, limit)

    def key(self, item: Any) -> tuple[Any, ...]:
        return (item.published_at_ms, item.release_id)


class BuyerIntents(Lister):
    def make(self, created: int, ident: str) -> Any:
        return entities.intent(
            install_intent_id=f"ii_{ident}",
            buyer_user_id=self.family.buyer.user_id,
            listing_id=self.family.listing.listing_id,
            release_id=self.family.release.release_id,
            created_at_ms=created,
        )

    def fetch(self, uow: UnitOfWork, after: Any, limit: int) -> Sequence[Any]:
        return uow.intents.list_for_buyer(self.family.buyer.user_id, None, T0, after, limit)

    def key(self, item: Any) -> tuple[Any, ...]:
        return (item.created_at_ms, item.install_intent_id)


class AuditEvents(Lister):
    def make(self, created: int, ident: str) -> Any:
        return entities.audit_event(event_id=f"evt_{ident}", created_at_ms=created)

    def fetch(self, uow: UnitOfWork, after: Any, limit: int) -> Sequence[Any]:
        return uow.audit.query(AuditQuery(), after, limit)

    def key(self, item: Any) -> tuple[Any, ...]:
        return (item.created_at_ms, item.event_id)


class UserApiTokens(Lister):
    def make(self, created: int, ident: str) -> Any:
        return entities.api_token(
            token_id=f"pat_{ident}", user_id=self.family.buyer.user_id, created_at_ms=created
        )

    def fetch(self, uow: UnitOfWork, after: Any, limit: int) -> Sequence[Any]:
        return uow.api_tokens.list_for_user(self.family.buyer.user_id, after, limit)

    def key(self, item: Any) -> tuple[Any, ...]:
        return (item.created_at_ms, item.token_id)


LISTERS = {
    "listings_by_owner": OwnerListings,
    "search_published": PublishedSearch,
    "releases_for_listing": ListingReleases,
    "intents_for_buyer": BuyerIntents,
    "audit_query": AuditEvents,
    "api_tokens_for_user": UserApiTokens,
}


@pytest.mark.parametrize("lister_type", LISTERS.values(), ids=list(LISTERS))
def test_r_pag_02_repository_pages_under_concurrent_inserts(
    adapter: Adapter, lister_type: type[Lister]
) -> None:
    """Under inserts committed between pages, every initial item is walked exactly once."""
    # Another thread commits newer, tied and older keys after every page; no
    # item may come twice and the keys must stay strictly descending.
    family = _family(adapter)
    lister = lister_type(family)
    adapter.add(*(lister.make(T0 + i // 3, f"s{i:02d}") for i in range(14)))
    initial = [lister.ident(x) for x in adapter.read(lambda uow: lister.fetch(uow, None, 1_000))]
    assert len(initial) >= 14

    go, done, stop = threading.Event(), threading.Event(), threading.Event()

    def inserter(_: int) -> int:
        batch = 0
        while not stop.is_set():
            if not go.wait(0.05):
                continue
            go.clear()
            created = [T0 + 1_000 + batch, T0 + batch % 5, T0 - 1_000 - batch]
            idents = [f"n{batch:02d}a", f"s{(batch * 3) % 14:02d}x{batch:02d}", f"n{batch:02d}c"]

            def insert(uow: UnitOfWork, c: list[int] = created, n: list[str] = idents) -> None:
                for at, ident in zip(c, n, strict=True):
                    store(uow, lister.make(at, ident))

            adapter.write(insert)
            batch += 1
            done.set()
        return batch

    walked: list[Any] = []

    def walker(_: int) -> int:
        after = None
        try:
            for _page in range(1_000):
                page = list(adapter.read(lambda uow, a=after: lister.fetch(uow, a, 4)))
                walked.extend(page)
                if len(page) < 4:
                    return _page
                after = lister.key(page[-1])
                done.clear()
                go.set()
                assert done.wait(10), "the inserter did not answer"
            raise AssertionError("pagination did not terminate")
        finally:
            stop.set()

    roles: list[Callable[[int], int]] = [walker, inserter]
    pages, batches = run_threads(2, lambda i: roles[i](i))
    assert pages >= 3  # inserts really happened between pages
    assert batches >= 3
    idents = [lister.ident(x) for x in walked]
    assert len(idents) == len(set(idents)), "an item was returned twice"
    assert set(initial) <= set(idents), f"missing: {sorted(set(initial) - set(idents))}"
    keys = [lister.key(x) for x in walked]
    assert all(a > b for a, b in itertools.pairwise(keys)), "keys not strictly descending"

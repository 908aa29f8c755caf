"""UnitOfWork: commit publishes, anything else rolls back everything, reads need no commit."""

from __future__ import annotations

import threading
from collections.abc import Callable

import attrs
import pytest

from contract import entities
from contract.entities import T0, Family
from contract.harness import Adapter, assert_identical, run_threads, store
from fleetprompt_core.base.enums import (
    ActorType,
    InstallIntentStatus,
    InstallTokenStatus,
    ListingStatus,
    ReleaseStatus,
)
from fleetprompt_core.domain.model import (
    Actor,
    ApiToken,
    AuditEvent,
    IdempotencyRecord,
    PublisherProfile,
    User,
)
from fleetprompt_core.domain.search import ListingSearch
from fleetprompt_core.ports import AuditQuery, UnitOfWork

NOW = T0 + 10 * 24 * 60 * 60 * 1000  # every seeded intent, token and record is past expiry


@attrs.frozen
class Seed:
    family: Family
    profile: PublisherProfile
    stale_record: IdempotencyRecord
    live_record: IdempotencyRecord
    event: AuditEvent
    api_token: ApiToken


def _seed(adapter: Adapter) -> Seed:
    """A committed state touching every repository."""
    family = entities.family()
    profile = entities.profile(publisher_id=family.publisher.user_id)
    stale = entities.idempotency_record(scope_user_id=family.buyer.user_id)
    live = entities.idempotency_record(
        scope_user_id=family.buyer.user_id, expires_at_ms=NOW + 1, response_json="{}"
    )
    event = entities.audit_event(actor=Actor(type=ActorType.USER, user_id=family.buyer.user_id))
    api_token = entities.api_token(user_id=family.buyer.user_id)
    adapter.add(*family, profile, stale, live, event, api_token)
    return Seed(family, profile, stale, live, event, api_token)


def _snapshot(uow: UnitOfWork, seed: Seed) -> dict[str, object]:
    """Everything a reader can observe about the seeded state (and the probes below)."""
    f = seed.family
    return {
        "publisher": uow.users.get(f.publisher.user_id),
        "buyer_by_external": uow.users.get_by_external_id(f.buyer.external_id),
        "new_user": uow.users.get_by_external_id("idp|rolled-back"),
        "new_user_by_id": uow.users.get("usr_rolled_back"),
        "profile": uow.profiles.get(f.publisher.user_id),
        "new_profile": uow.profiles.get("usr_rolled_back"),
        "listing": uow.listings.get(f.listing.listing_id),
        "owner_listings": list(uow.listings.list_by_owner(f.publisher.user_id, None, None, 100)),
        "search": [(h.listing, h.score) for h in uow.listings.search_published(ListingSearch())],
        "release": uow.releases.get(f.release.release_id),
        "releases": list(uow.releases.list_for_listing(f.listing.listing_id, True, None, 100)),
        "versions": sorted(
            uow.releases.published_versions(f.listing.listing_id), key=lambda v: v.release_id
        ),
        "intent": uow.intents.get(f.intent.install_intent_id),
        "intents": list(uow.intents.list_for_buyer(f.buyer.user_id, None, NOW, None, 100)),
        "counts": dict(uow.intents.count_created_since([f.listing.listing_id], 0)),
        "due_intents": sorted(i.install_intent_id for i in uow.intents.due_for_expiry(NOW, 100)),
        "token": uow.tokens.get_by_hash(f.token.token_hash),
        "issued": list(uow.tokens.list_issued_for_intent(f.intent.install_intent_id)),
        "due_tokens": sorted(t.token_id for t in uow.tokens.due_for_expiry(NOW, 100)),
        "stale": _record(uow, seed.stale_record),
        "live": _record(uow, seed.live_record),
        "new_record": uow.idempotency.get(f.buyer.user_id, seed.live_record.endpoint, "rb-key"),
        "audit": list(uow.audit.query(AuditQuery(), None, 100)),
        "api_token": uow.api_tokens.get(seed.api_token.token_id),
        "api_token_by_hash": uow.api_tokens.get_by_hash(seed.api_token.token_hash),
        "new_api_token": uow.api_tokens.get_by_hash(_NEW_API_TOKEN_HASH),
        "api_tokens": list(uow.api_tokens.list_for_user(f.buyer.user_id, None, 100)),
    }


_NEW_API_TOKEN_HASH = "c" * 64


def _record(uow: UnitOfWork, record: IdempotencyRecord) -> IdempotencyRecord | None:
    return uow.idempotency.get(record.scope_user_id, record.endpoint, record.key)


def _write_everything(uow: UnitOfWork, seed: Seed) -> None:
    """Adds, updates, deletes and appends across every repository."""
    f = seed.family
    newcomer = entities.user(user_id="usr_rolled_back", external_id="idp|rolled-back")
    uow.users.add(newcomer)
    uow.users.update(attrs.evolve(f.publisher, display_name="changed", updated_at_ms=T0 + 1))
    uow.profiles.save(attrs.evolve(seed.profile, display_name="changed"))
    new_profile = entities.profile(publisher_id=newcomer.user_id)
    uow.profiles.save(new_profile)
    new_listing = entities.listing(
        publisher_user_id=f.publisher.user_id, status=ListingStatus.PUBLISHED
    )
    uow.listings.add(new_listing)
    assert uow.listings.update(
        f.listing.moved_by_publisher(ListingStatus.UNLISTED, T0 + 1), f.listing
    )
    new_release = entities.release(
        listing_id=f.listing.listing_id,
        publisher_user_id=f.publisher.user_id,
        version="9.9.9",
        published_at_ms=T0 + 5,
    )
    uow.releases.add(new_release)
    assert uow.releases.update(f.release.revoked("oops", T0 + 2), ReleaseStatus.PUBLISHED)
    new_intent = entities.intent(
        buyer_user_id=f.buyer.user_id,
        listing_id=f.listing.listing_id,
        release_id=new_release.release_id,
        created_at_ms=T0 + 3,
    )
    uow.intents.add(new_intent)
    assert uow.intents.update(f.intent.canceled(T0 + 3), InstallIntentStatus.CREATED)
    new_token = entities.token(
        install_intent_id=new_intent.install_intent_id, buyer_user_id=f.buyer.user_id
    )
    uow.tokens.add(new_token)
    assert uow.tokens.update(f.token.revoked(T0 + 3), InstallTokenStatus.ISSUED)
    uow.idempotency.add(
        entities.idempotency_record(
            scope_user_id=f.buyer.user_id,
            endpoint=seed.live_record.endpoint,
            key="rb-key",
            created_at_ms=NOW,
        )
    )
    live = seed.live_record
    assert uow.idempotency.replace(
        attrs.evolve(live, claim_id="idm_x", response_json='{"x":1}'),
        live.claim_id,
    )
    assert uow.idempotency.delete_expired(NOW, 100) == 1  # the stale record
    uow.idempotency.delete(attrs.evolve(live, claim_id="idm_x"))
    uow.audit.append(entities.audit_event(actor=seed.event.actor))
    uow.api_tokens.add(
        entities.api_token(
            user_id=newcomer.user_id, token_hash=_NEW_API_TOKEN_HASH, created_at_ms=T0 + 4
        )
    )
    assert uow.api_tokens.update(seed.api_token.revoked(T0 + 4), None)


def test_unit_of_work_commit_is_visible_to_a_new_unit_of_work(adapter: Adapter) -> None:
    """What a committed unit of work wrote is read by the next one."""
    seed = _seed(adapter)
    before = adapter.read(lambda uow: _snapshot(uow, seed))
    adapter.write(lambda uow: _write_everything(uow, seed))
    after = adapter.read(lambda uow: _snapshot(uow, seed))
    changed = {name for name in before if before[name] != after[name]}
    assert changed == set(before) - {"buyer_by_external"}


def test_unit_of_work_without_commit_rolls_back_everything(adapter: Adapter) -> None:
    """Leaving the with block without commit undoes every add, update, delete and append."""
    seed = _seed(adapter)
    before = adapter.read(lambda uow: _snapshot(uow, seed))
    with adapter.uow() as uow:
        _write_everything(uow, seed)
        inside = _snapshot(uow, seed)
    assert inside != before  # the writes were really made (and visible inside)
    after = adapter.read(lambda uow: _snapshot(uow, seed))
    assert after == before
    for name, value in before.items():
        if value is not None and not isinstance(value, (list, dict)):
            assert_identical(after[name], value)


class Boom(Exception):
    """Raised on purpose inside a unit of work."""


def test_unit_of_work_exception_rolls_back_and_propagates(adapter: Adapter) -> None:
    """An exception inside the block propagates unchanged and nothing is kept."""
    seed = _seed(adapter)
    before = adapter.read(lambda uow: _snapshot(uow, seed))

    def fail(uow: UnitOfWork) -> None:
        _write_everything(uow, seed)
        raise Boom

    with pytest.raises(Boom):
        adapter.write(fail)
    assert adapter.read(lambda uow: _snapshot(uow, seed)) == before


def test_unit_of_work_explicit_rollback_discards_writes(adapter: Adapter) -> None:
    """rollback() inside the block discards the writes made so far."""
    seed = _seed(adapter)
    before = adapter.read(lambda uow: _snapshot(uow, seed))
    with adapter.uow() as uow:
        _write_everything(uow, seed)
        uow.rollback()
    assert adapter.read(lambda uow: _snapshot(uow, seed)) == before


def test_unit_of_work_rollback_frees_unique_keys(adapter: Adapter) -> None:
    """Keys taken by a rolled-back unit of work can be taken again."""
    family = entities.family()
    owner = family.publisher
    adapter.add(owner, family.listing, family.buyer)
    user = entities.user(external_id="idp|retry")
    release = entities.release(
        listing_id=family.listing.listing_id, publisher_user_id=owner.user_id
    )
    intent = entities.intent(
        buyer_user_id=family.buyer.user_id,
        listing_id=family.listing.listing_id,
        release_id=release.release_id,
    )
    token = entities.token(
        install_intent_id=intent.install_intent_id, buyer_user_id=family.buyer.user_id
    )
    record = entities.idempotency_record(scope_user_id=family.buyer.user_id)
    event = entities.audit_event()
    batch = (user, release, intent, token, record, event)
    with adapter.uow() as uow:
        for entity in batch:
            store(uow, entity)
    # Same keys, other primary keys where there is one: all free again.
    retry = (
        attrs.evolve(user, user_id="usr_retry"),
        attrs.evolve(release, release_id="rel_retry"),
        attrs.evolve(intent, release_id="rel_retry"),
        attrs.evolve(token, token_id="itk_retry"),
        record,
        event,
    )
    adapter.add(*retry)
    assert_identical(adapter.read(lambda uow: uow.users.get_by_external_id("idp|retry")), retry[0])
    got = adapter.read(lambda uow: uow.tokens.get_by_hash(token.token_hash))
    assert_identical(got, retry[3])
    releases = adapter.read(
        lambda uow: uow.releases.list_for_listing(family.listing.listing_id, True, None, 10)
    )
    assert [r.release_id for r in releases] == ["rel_retry"]
    assert len(adapter.read(lambda uow: uow.audit.query(AuditQuery(), None, 10))) == 1


def test_unit_of_work_sees_its_own_writes(adapter: Adapter) -> None:
    """Before commit, a unit of work reads what it wrote (gets, lists, search, audit)."""
    family = entities.family()
    with adapter.uow() as uow:
        for entity in family:
            store(uow, entity)
        event = entities.audit_event(listing_id=family.listing.listing_id)
        uow.audit.append(event)
        assert_identical(uow.users.get(family.buyer.user_id), family.buyer)
        assert_identical(uow.listings.get(family.listing.listing_id), family.listing)
        assert [
            x.listing_id
            for x in uow.listings.list_by_owner(family.publisher.user_id, None, None, 5)
        ] == [family.listing.listing_id]
        assert [h.listing.listing_id for h in uow.listings.search_published(ListingSearch())] == [
            family.listing.listing_id
        ]
        assert [
            v.release_id for v in uow.releases.published_versions(family.listing.listing_id)
        ] == [family.release.release_id]
        assert_identical(uow.intents.get(family.intent.install_intent_id), family.intent)
        assert_identical(uow.tokens.get_by_hash(family.token.token_hash), family.token)
        assert [
            e.event_id
            for e in uow.audit.query(AuditQuery(listing_id=family.listing.listing_id), None, 5)
        ] == [event.event_id]
        uow.commit()
    assert_identical(
        adapter.read(lambda uow: uow.tokens.get_by_hash(family.token.token_hash)), family.token
    )


def test_unit_of_work_reads_need_no_commit(adapter: Adapter) -> None:
    """A read-only unit of work left without commit reads committed data and changes nothing."""
    seed = _seed(adapter)
    first = adapter.read(lambda uow: _snapshot(uow, seed))
    assert first["listing"] == seed.family.listing
    for _ in range(3):
        with adapter.uow() as uow:
            assert_identical(uow.users.get(seed.family.buyer.user_id), seed.family.buyer)
    assert adapter.read(lambda uow: _snapshot(uow, seed)) == first


def test_unit_of_work_factory_survives_failed_units_of_work(adapter: Adapter) -> None:
    """After a rollback and an exception, the next unit of work commits normally."""
    user = entities.user()
    with adapter.uow() as uow:
        uow.users.add(user)

    def fail(uow: UnitOfWork) -> None:
        uow.users.add(user)
        raise Boom

    with pytest.raises(Boom):
        adapter.write(fail)
    adapter.add(user)
    assert_identical(adapter.read(lambda uow: uow.users.get(user.user_id)), user)


def test_unit_of_work_does_not_show_uncommitted_writes_to_others(adapter: Adapter) -> None:
    """Another unit of work never reads what an open one wrote and then rolled back."""
    user = entities.user()
    written = threading.Event()
    reader_done = threading.Event()
    seen: list[User | None] = []

    def writer() -> None:
        with adapter.uow() as uow:
            uow.users.add(user)
            written.set()
            # Give the reader time to look (it may block until we finish: that is fine too).
            reader_done.wait(0.3)

    def reader() -> None:
        assert written.wait(10)
        seen.append(adapter.read(lambda uow: uow.users.get(user.user_id)))
        reader_done.set()

    work: list[Callable[[], None]] = [writer, reader]
    run_threads(2, lambda i: work[i]())
    assert seen == [None]
    assert adapter.read(lambda uow: uow.users.get(user.user_id)) is None

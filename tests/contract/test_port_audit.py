"""AuditLog: append round trips, event id uniqueness, query filters, order and keyset."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from contract import entities
from contract.entities import T0
from contract.harness import Adapter, assert_identical, expected_page, walk_pages
from fleetprompt_core.base.enums import ActorType
from fleetprompt_core.base.errors import DuplicateError
from fleetprompt_core.domain.model import Actor, AuditEvent
from fleetprompt_core.ports import AuditQuery, CreatedKey, UniqueConstraint

AUDIT_BUILDERS = {
    "typical": entities.audit_event,
    "at_limits": entities.audit_event_at_limits,
    "minimal": entities.audit_event_minimal,
}


def _key(event: AuditEvent) -> CreatedKey:
    return (event.created_at_ms, event.event_id)


def _all(adapter: Adapter) -> list[AuditEvent]:
    return list(adapter.read(lambda uow: uow.audit.query(AuditQuery(), None, 1_000)))


@pytest.mark.parametrize("builder", AUDIT_BUILDERS.values(), ids=list(AUDIT_BUILDERS))
def test_audit_append_query_round_trip(adapter: Adapter, builder: Callable[[], AuditEvent]) -> None:
    """An appended event reads back identical, detail values keeping their exact types."""
    event = builder()
    adapter.add(event)
    (got,) = _all(adapter)
    assert_identical(got, event)


def test_audit_details_are_copied_on_append(adapter: Adapter) -> None:
    """Mutating the caller's details dict after append does not change the stored event."""
    details: dict[str, str | int | bool | None] = {"a": "1", "b": True}
    event = entities.audit_event(details=details)
    adapter.add(event)
    details["a"] = "changed"
    details["c"] = None
    (got,) = _all(adapter)
    assert dict(got.details) == {"a": "1", "b": True}


def test_audit_event_id_is_unique(adapter: Adapter) -> None:
    """A second event with a stored event id is DuplicateError(PRIMARY_KEY) (keyset needs it)."""
    first = entities.audit_event()
    adapter.add(first)
    with pytest.raises(DuplicateError) as raised:
        adapter.add(entities.audit_event(event_id=first.event_id, summary="again"))
    assert raised.value.constraint == UniqueConstraint.PRIMARY_KEY
    assert [e.summary for e in _all(adapter)] == [first.summary]


def _log(adapter: Adapter) -> tuple[list[AuditEvent], dict[str, str]]:
    """Events over three types, two listings (or none), two users and a system actor."""
    alice, bob = entities.user(), entities.user()
    one = entities.listing(publisher_user_id=alice.user_id)
    two = entities.listing(publisher_user_id=alice.user_id)
    adapter.add(alice, bob, one, two)
    actors = [
        Actor(type=ActorType.USER, user_id=alice.user_id),
        Actor(type=ActorType.USER, user_id=bob.user_id),
        Actor(type=ActorType.SYSTEM, system="retention"),
    ]
    types = ["listing.created", "listing.updated", "release.published"]
    listings = [one.listing_id, two.listing_id, None]
    created = [
        T0 + 3,
        T0,
        T0 + 1,
        T0 + 1,
        T0 + 4,
        T0 + 2,
        T0 + 1,
        T0,
        T0 + 3,
        T0 + 2,
        T0 + 4,
        T0 + 1,
    ]
    ids = [f"evt_{c}" for c in "ldhakfbjecig"]
    events = [
        entities.audit_event(
            event_id=event_id,
            type=types[i % 3],
            listing_id=listings[(i // 3) % 3],
            actor=actors[(i // 2) % 3],
            created_at_ms=at,
            details={"i": i},
        )
        for i, (event_id, at) in enumerate(zip(ids, created, strict=True))
    ]
    adapter.add(*events)
    names = {
        "alice": alice.user_id,
        "bob": bob.user_id,
        "one": one.listing_id,
        "two": two.listing_id,
    }
    return events, names


QUERIES = {
    "all": {},
    "type": {"type": "listing.updated"},
    "listing": {"listing_id": "one"},
    "actor": {"actor_user_id": "alice"},
    "type_listing": {"type": "listing.created", "listing_id": "two"},
    "all_three": {"type": "release.published", "listing_id": "one", "actor_user_id": "bob"},
    "no_match_type": {"type": "listing"},
    "unknown_actor": {"actor_user_id": "usr_nobody"},
}


def _query(spec: dict[str, str], names: dict[str, str]) -> AuditQuery:
    return AuditQuery(**{field: names.get(value, value) for field, value in spec.items()})


def _matches(event: AuditEvent, query: AuditQuery) -> bool:
    return (
        (query.type is None or event.type == query.type)
        and (query.listing_id is None or event.listing_id == query.listing_id)
        and (query.actor_user_id is None or event.actor.user_id == query.actor_user_id)
    )


@pytest.mark.parametrize("spec", QUERIES.values(), ids=list(QUERIES))
def test_audit_query_filters_and_orders(adapter: Adapter, spec: dict[str, str]) -> None:
    """Each filter (alone or combined) selects exactly its events, (created_at, id) descending."""
    events, names = _log(adapter)
    query = _query(spec, names)
    wanted = [e for e in events if _matches(e, query)]
    got = adapter.read(lambda uow: uow.audit.query(query, None, 100))
    want = expected_page(wanted, _key, None, 100)
    assert [e.event_id for e in got] == [e.event_id for e in want]
    for item, stored in zip(got, want, strict=True):
        assert_identical(item, stored)
    if spec in ({}, QUERIES["type"], QUERIES["actor"], QUERIES["listing"]):
        assert got  # the fixture really exercises these filters


@pytest.mark.parametrize("name", ["all", "actor", "type_listing"])
def test_audit_query_is_strictly_after_the_keyset(adapter: Adapter, name: str) -> None:
    """For every position and limit the page is exactly the reference page."""
    events, names = _log(adapter)
    query = _query(QUERIES[name], names)
    wanted = [e for e in events if _matches(e, query)]
    positions: list[CreatedKey] = [_key(e) for e in events]
    positions += [(at, s) for at in range(T0 - 1, T0 + 6) for s in ("", "evt_e5", "evt_zz")]
    for after, limit in itertools.product(positions, (1, 3)):
        got = adapter.read(lambda uow, a=after, n=limit: uow.audit.query(query, a, n))
        want = expected_page(wanted, _key, after, limit)
        assert [e.event_id for e in got] == [e.event_id for e in want], (after, limit)


@pytest.mark.parametrize(("name", "limit"), [("all", 1), ("all", 5), ("listing", 2)])
def test_audit_query_pages_yield_each_event_once(adapter: Adapter, name: str, limit: int) -> None:
    """Walking pages by the last key yields every matching event exactly once, in order."""
    events, names = _log(adapter)
    query = _query(QUERIES[name], names)
    wanted = [e for e in events if _matches(e, query)]

    def fetch(after: CreatedKey | None, n: int) -> list[AuditEvent]:
        return list(adapter.read(lambda uow: uow.audit.query(query, after, n)))

    walked = walk_pages(fetch, _key, limit)
    assert [e.event_id for e in walked] == [
        e.event_id for e in expected_page(wanted, _key, None, len(wanted))
    ]

"""Probes shared by the application-level acceptance suites (``test_app_*.py``).

They look at a :class:`~support.Market` from the outside: snapshots of every
table of the in-memory store, a walk over every string an entity holds (for
secret scanning), signed internal redemption requests, and paging helpers.
The tests at the bottom prove that the probes themselves can fail.
"""

from __future__ import annotations

import enum
import json
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import pytest

from fleetprompt_core import DomainError, Page
from fleetprompt_core.policies.signing import (
    SIGNATURE_HEADER,
    SOURCE_HEADER,
    TIMESTAMP_HEADER,
    RedeemVerifier,
    signed_headers,
)
from fleetprompt_core.services.views import Redemption
from support import Market

REDEEM_KEY = b"r" * 32
VERIFIER = RedeemVerifier(keys=(REDEEM_KEY,))

#: Index tables of the MemoryStore and the table each one indexes.
INDEXES = {
    "users_by_external_id": "users",
    "release_versions": "releases",
    "tokens_by_hash": "tokens",
    "tokens_by_intent": "tokens",
    "audit_ids": "audit",
}

Snapshot = dict[str, Any]


# --------------------------------------------------------------------------- snapshots


def snapshot(market: Market) -> Snapshot:
    """A copy of every table of the store (every dict or list attribute, found at run time so
    that a table added later is watched too); entities are frozen, so a shallow copy per
    table suffices."""
    snap: Snapshot = {}
    for name, table in vars(market.store).items():
        if isinstance(table, list):
            snap[name] = list(table)
        elif isinstance(table, dict):
            snap[name] = {
                key: (list(value) if isinstance(value, list) else value)
                for key, value in table.items()
            }
    return snap


def changes(before: Snapshot, after: Snapshot) -> dict[str, set[Any]]:
    """Per table, the keys added, removed or changed (list tables: the changed positions)."""
    diff: dict[str, set[Any]] = {}
    for name in before.keys() | after.keys():
        old, new = before.get(name, {}), after.get(name, {})
        if isinstance(old, list) or isinstance(new, list):
            old, new = list(old), list(new)
            size = max(len(old), len(new))
            changed = {i for i in range(size) if old[i : i + 1] != new[i : i + 1]}
        else:
            changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
        if changed:
            diff[name] = changed
    return diff


def tables_changed(diff: dict[str, set[Any]]) -> set[str]:
    """The tables a diff touches, with index tables folded into the table they index."""
    return {INDEXES.get(name, name) for name in diff}


def audit_count(market: Market) -> int:
    return len(market.store.audit)


# --------------------------------------------------------------------------- secret scanning


def strings_in(value: object, _depth: int = 0) -> Iterator[str]:
    """Every string reachable from ``value``: attrs fields (``repr=False`` ones too),
    mapping keys and values, sequence items, and the ``repr`` of the value."""
    if _depth > 40:
        return
    if isinstance(value, str):
        yield value
        return
    if isinstance(value, enum.Enum):
        yield str(value.value)
        return
    if isinstance(value, bytes | bytearray):
        yield bytes(value).decode("utf-8", "replace")
        return
    if attrs.has(type(value)):
        yield repr(value)
        for field in attrs.fields(type(value)):
            yield from strings_in(getattr(value, field.name), _depth + 1)
        return
    if isinstance(value, Mapping | types.MappingProxyType):
        for key, item in value.items():
            yield from strings_in(key, _depth + 1)
            yield from strings_in(item, _depth + 1)
        return
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from strings_in(item, _depth + 1)
        return
    if isinstance(value, DomainError):
        yield repr(value)
        yield str(value)
        yield value.message
        yield value.hint or ""
        for field in value.fields:
            yield field.field_name
            yield field.message
        return
    yield repr(value)


def store_strings(market: Market) -> list[str]:
    """Every string held anywhere in the store (keys, entities, audit details)."""
    found: list[str] = []
    for table in snapshot(market).values():
        found.extend(strings_in(table))
    return found


# --------------------------------------------------------------------------- redemption


def redeem_request(
    token: str,
    target: str = "whs",
    *,
    source: str = "whs",
    sent_at_ms: int,
    key: bytes = REDEEM_KEY,
    browser_context: bool = False,
    duplicate_header: bool = False,
    body: bytes | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``redeem_signed`` for a request a target system signed."""
    raw = (
        body
        if body is not None
        else json.dumps({"installToken": token, "targetSystem": target}).encode()
    )
    headers = signed_headers(raw, key, source, sent_at_ms)
    return {
        "body": raw,
        "source": headers[SOURCE_HEADER],
        "timestamp": headers[TIMESTAMP_HEADER],
        "signature": headers[SIGNATURE_HEADER],
        "browser_context": browser_context,
        "duplicate_header": duplicate_header,
    }


def redeem_signed(market: Market, token: str, target: str = "whs", **extra: Any) -> Redemption:
    """Redeem as a correctly signing target system, now."""
    request = redeem_request(token, target, sent_at_ms=market.clock.now_ms(), **extra)
    return market.fp.redemption.redeem_signed(VERIFIER, **request)


# --------------------------------------------------------------------------- failures and paging


def failure(action: Callable[[], object]) -> DomainError:
    """Run ``action``, which must raise a domain error; return it."""
    with pytest.raises(DomainError) as caught:
        action()
    return caught.value


def error_shape(error: DomainError) -> tuple[object, ...]:
    """What a client sees of an error (code, message, hint, fields)."""
    return (type(error), error.code, error.message, error.hint, error.fields)


def walk(
    fetch: Callable[[str | None], Page[Any]], *, between: Callable[[], None] | None = None
) -> list[Any]:
    """Every item of every page, calling ``between`` after each page but the last."""
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(1000):
        page = fetch(cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor
        if between is not None:
            between()
    raise AssertionError("pagination did not end")


# --------------------------------------------------------------------------- self-tests


def test_snapshot_changes_sees_every_kind_of_write(market: Market) -> None:
    """The snapshot diff reports added, changed and appended rows, and nothing else."""
    publisher = market.publisher()
    view = market.draft(publisher)
    before = snapshot(market)
    market.fp.publishing.update_listing(publisher, view.listing.listing_id, {"name": "Renamed"})
    diff = changes(before, snapshot(market))
    assert tables_changed(diff) == {"listings", "audit"}
    assert diff["listings"] == {view.listing.listing_id}
    assert diff["audit"] == {len(before["audit"])}
    assert changes(snapshot(market), snapshot(market)) == {}
    removed = snapshot(market)
    del removed["listings"][view.listing.listing_id]
    assert changes(snapshot(market), removed) == {"listings": {view.listing.listing_id}}


def test_strings_in_reaches_fields_hidden_from_repr(market: Market) -> None:
    """The secret scan sees ``repr=False`` fields, nested mappings and audit details."""
    publisher = market.publisher()
    view, _release = market.published(publisher)
    buyer = market.user("buyer")
    intent = market.intent(buyer, view.listing.listing_id)
    market.token(buyer, intent.install_intent_id)
    (token,) = market.store.tokens.values()
    assert token.token_hash not in repr(token)
    assert token.token_hash in list(strings_in(token))
    assert any("tokenId" in text for text in strings_in(market.store.audit))

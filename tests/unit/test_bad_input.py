"""Bad input gets a clear error and changes nothing.

Every write use case is fed arbitrary JSON-like payloads (and well-formed
payloads with one field replaced by an arbitrary value): it either succeeds or
raises a :class:`DomainError`, never anything else, and when it raises, every
table of the store is exactly as before. Read endpoints get the same treatment
for their query parameters, and garbage ids always answer ``NOT_FOUND``.

Each test builds one market and runs its Hypothesis examples against it,
snapshotting the store before each example (building a market per example
would be needlessly slow).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetprompt_adapters.memory import MemoryStore
from fleetprompt_core import Call
from fleetprompt_core.base.errors import (
    DomainError,
    ErrorCode,
    NotFound,
    ValidationFailed,
)
from fleetprompt_core.policies.tokens import INSTALL_TOKEN_PREFIX, generate_token
from support import Market, listing_payload, new_key, release_payload

EXAMPLES = 75

# --------------------------------------------------------------------------- strategies

#: Strings that have broken parsers before: controls, NUL, lone surrogates, bidi, huge.
NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\u202e\u202d",
    "\u200b",
    "\r\n\t",
    "\x1b[31m",
    "\x7f\x85",
    "İ" * 33,
    "🙂" * 50,
    "javascript:alert(1)",
    "<script>alert(1)</script>",
    "https://evil.example.com/x.svg",
    "../../../etc/passwd",
    "' OR 1=1 --",
    "1e309",
    "NaN",
    "published",
    "suspended",
    "whs_agent",
    "fleetprompt_signed_url",
]
#: Lengths around the contract's bounds.
BOUNDARY_LENGTHS = [0, 1, 32, 33, 64, 65, 80, 81, 200, 201, 240, 241, 255, 256, 1_000, 1_001]
BIG_LENGTHS = [2_048, 2_049, 5_001, 10_001, 20_001]


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick a strategy with the given relative weights (``one_of`` merges equal branches)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda index: table[index])


texts = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(max_codepoint=0x7F), max_size=40),
    st.sampled_from(NASTY),
    st.sampled_from(BOUNDARY_LENGTHS).map(lambda n: "x" * n),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    texts,
)
field_names = st.one_of(st.text(max_size=12), st.sampled_from(NASTY))
json_values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(field_names, children, max_size=6),
    ),
    max_leaves=25,
)
#: Values that are often valid: plain words and in-range numbers.
benign_values = st.one_of(
    st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=20),
    st.integers(min_value=60_000, max_value=3_600_000),
)
replacement_values = st.one_of(
    benign_values,
    json_values,
    st.sampled_from(BIG_LENGTHS).map(lambda n: "y" * n),
    st.integers(min_value=0, max_value=25).map(lambda n: ["t"] * n),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


def _replaced(base: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    payload = copy.deepcopy(base)
    parent = payload
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return payload


def mutated(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """``base`` with one field (at any depth) replaced, deleted, or an unknown one added."""
    paths = list(_paths(base))
    replace = st.builds(
        _replaced,
        st.just(base),
        st.sampled_from(paths) if paths else st.nothing(),
        replacement_values,
        st.booleans(),
    )
    added = st.builds(
        lambda key, value: {**copy.deepcopy(base), key: value},
        st.one_of(st.text(max_size=12), st.sampled_from(NASTY)),
        replacement_values,
    )
    return weighted((3, replace), (1, added), (1, st.just(base)))


def payloads(*bases: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Mostly well-formed payloads with one field changed, sometimes arbitrary JSON."""
    near = st.one_of(*(mutated(base) for base in bases))
    return weighted((3, near), (1, json_values))


fresh_key = st.builds(new_key)
keys = weighted((6, fresh_key), (1, st.none()), (1, texts))
garbage_ids = st.one_of(
    texts,
    st.just("x" * 10_000),
    st.builds(lambda: "lst_" + new_key()),
)


# --------------------------------------------------------------------------- harness


def snapshot(store: MemoryStore) -> dict[str, Any]:
    """Every table of the store (users, profiles, listings, releases, intents, tokens,
    idempotency, audit and their indexes), copied for comparison."""
    tables: dict[str, Any] = {}
    for name, table in vars(store).items():
        if isinstance(table, dict):
            tables[name] = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
        elif isinstance(table, list):
            tables[name] = tuple(table)
    return tables


def check(market: Market, action: Callable[[], object]) -> object:
    """Run ``action``: only a DomainError may escape, and a failure must change nothing."""
    before = snapshot(market.store)
    try:
        return action()
    except DomainError as raised:
        error = raised
    assert isinstance(error.code, ErrorCode)
    assert error.fields or not isinstance(error, ValidationFailed)
    after = snapshot(market.store)
    changed = [name for name in before if before[name] != after[name]]
    assert changed == [], f"{type(error).__name__} changed {changed}"
    return error


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class World:
    """One prepared marketplace: a publisher with listings and releases, a buyer with intents."""

    def __init__(self) -> None:
        m = self.market = Market.create()
        self.pub = m.publisher("pub-a")
        self.other_pub = m.publisher("pub-b")
        self.admin = m.admin("admin")
        self.buyer = m.user("buyer")
        self.bob = m.user("bob")
        view, self.release = m.published(self.pub)
        self.listing_id = view.listing.listing_id
        self.releases = [self.release.release_id] + [
            m.release(self.pub, self.listing_id, f"1.{i}.0").release_id for i in range(1, 4)
        ]
        self.drafts = [m.draft(self.pub).listing.listing_id for _ in range(3)]
        self.foreign_listing = m.published(self.other_pub)[0].listing.listing_id
        self.suspended = []
        for _ in range(3):
            lid = m.draft(self.pub).listing.listing_id
            m.fp.admin.suspend_listing(self.admin, lid, {"reason": "x"}, idempotency_key=new_key())
            self.suspended.append(lid)
        self.intents = [m.intent(self.buyer, self.listing_id).install_intent_id for _ in range(4)]
        self.tokens = [m.token(self.buyer, iid).install_token for iid in self.intents[:3]]

    def uid(self, external_id: str) -> str:
        return self.market.store.users_by_external_id[external_id]


def one_of_ids(valid: list[str]) -> st.SearchStrategy[str]:
    return weighted((3, st.sampled_from(valid)), (1, garbage_ids))


def fuzz_write(
    world: World,
    base: dict[str, Any] | list[dict[str, Any]],
    run: Callable[[Any, Any, Any], object],
    targets: st.SearchStrategy[Any],
) -> None:
    bases = base if isinstance(base, list) else [base]

    @FUZZ
    @given(payload=payloads(*bases), key=keys, target=targets)
    def example(payload: Any, key: Any, target: Any) -> None:
        check(world.market, lambda: run(payload, key, target))

    example()


# --------------------------------------------------------------------------- write use cases


def test_bad_input_create_listing() -> None:
    """create_listing: arbitrary payloads succeed or raise a DomainError that changes nothing."""
    w = World()
    create = w.market.fp.publishing.create_listing
    fuzz_write(
        w,
        listing_payload(),
        lambda p, k, _t: create(w.pub, p, idempotency_key=k),
        st.none(),
    )


def test_bad_input_update_listing() -> None:
    """update_listing: arbitrary patches succeed or raise a DomainError that changes nothing."""
    w = World()
    base = listing_payload()
    del base["assetKind"]
    update = w.market.fp.publishing.update_listing
    fuzz_write(
        w,
        base,
        lambda p, k, t: update(w.pub, t, p, idempotency_key=k),
        one_of_ids([*w.drafts, w.listing_id, w.foreign_listing]),
    )


def test_bad_input_change_status() -> None:
    """change_status: arbitrary bodies succeed or raise a DomainError that changes nothing."""
    w = World()
    change = w.market.fp.publishing.change_status
    fuzz_write(
        w,
        [{"status": status} for status in ("draft", "published", "unlisted")],
        lambda p, k, t: change(w.pub, t, p, idempotency_key=k),
        one_of_ids([w.listing_id, *w.drafts, w.suspended[0], w.foreign_listing]),
    )


def test_bad_input_publish_release() -> None:
    """publish_release: arbitrary releases succeed or raise a DomainError that changes nothing."""
    w = World()
    publish = w.market.fp.publishing.publish_release
    fuzz_write(
        w,
        release_payload("9.9.9"),
        lambda p, k, t: publish(w.pub, t, p, idempotency_key=k),
        one_of_ids([w.listing_id, w.drafts[0], w.suspended[0], w.foreign_listing]),
    )


def test_bad_input_revoke_release() -> None:
    """revoke_release: arbitrary bodies succeed or raise a DomainError that changes nothing."""
    w = World()
    revoke = w.market.fp.publishing.revoke_release
    fuzz_write(
        w,
        {"reason": "broken build"},
        lambda p, k, t: revoke(w.pub, t, p, idempotency_key=k),
        one_of_ids(w.releases),
    )


def test_bad_input_profiles_put() -> None:
    """profiles.put: arbitrary bodies succeed or raise a DomainError that changes nothing."""
    w = World()
    put = w.market.fp.profiles.put
    fuzz_write(
        w,
        {"displayName": "Pub A", "bioMarkdown": "# About\n\nWe build *agents*."},
        lambda p, k, _t: put(w.pub, p, idempotency_key=k),
        st.none(),
    )


def test_bad_input_create_intent() -> None:
    """create_intent: arbitrary bodies succeed or raise a DomainError that changes nothing."""
    w = World()
    base = {
        "listingId": w.listing_id,
        "releaseId": w.releases[1],
        "targetSystem": "whs",
        "targetContext": {"telespaceId": "t1", "roomId": "r1", "orgId": "o1"},
    }
    create = w.market.fp.installs.create_intent
    fuzz_write(w, base, lambda p, k, _t: create(w.buyer, p, idempotency_key=k), st.none())


def test_bad_input_issue_token() -> None:
    """issue_token: arbitrary bodies succeed or raise a DomainError that changes nothing."""
    w = World()
    issue = w.market.fp.installs.issue_token
    fuzz_write(
        w,
        {"ttlMs": 600_000},
        lambda p, k, t: issue(w.buyer, t, p, idempotency_key=k),
        one_of_ids(w.intents),
    )


def test_bad_input_cancel_intent() -> None:
    """cancel_intent: arbitrary bodies succeed or raise a DomainError that changes nothing."""
    w = World()
    cancel = w.market.fp.installs.cancel_intent
    fuzz_write(
        w,
        {},
        lambda p, k, t: cancel(w.buyer, t, p, idempotency_key=k),
        one_of_ids(w.intents),
    )


def test_bad_input_admin_suspend() -> None:
    """admin suspend: arbitrary bodies succeed or raise a DomainError that changes nothing."""
    w = World()
    suspend = w.market.fp.admin.suspend_listing
    fuzz_write(
        w,
        {"reason": "malware reported"},
        lambda p, k, t: suspend(w.admin, t, p, idempotency_key=k),
        one_of_ids([*w.drafts, w.listing_id, w.suspended[0]]),
    )


def test_bad_input_admin_unsuspend() -> None:
    """admin unsuspend: arbitrary bodies succeed or raise a DomainError that changes nothing."""
    w = World()
    unsuspend = w.market.fp.admin.unsuspend_listing
    fuzz_write(
        w,
        {"reason": "resolved"},
        lambda p, k, t: unsuspend(w.admin, t, p, idempotency_key=k),
        one_of_ids([*w.suspended, w.listing_id]),
    )


def test_bad_input_admin_change_roles() -> None:
    """admin change_roles: arbitrary bodies succeed or raise a DomainError that changes nothing."""
    w = World()
    change = w.market.fp.admin.change_roles
    fuzz_write(
        w,
        {"grant": ["publisher"], "revoke": ["admin"]},
        lambda p, k, t: change(w.admin, t, p, idempotency_key=k),
        one_of_ids([w.uid("bob"), w.uid("buyer"), w.uid("admin")]),
    )


def test_bad_input_admin_set_verification() -> None:
    """admin set_verification: arbitrary bodies succeed or raise a DomainError, changing nothing."""
    w = World()
    verify = w.market.fp.admin.set_verification
    fuzz_write(
        w,
        {"status": "verified", "reason": "domain checked"},
        lambda p, k, t: verify(w.admin, t, p, idempotency_key=k),
        one_of_ids([w.uid("pub-a"), w.uid("pub-b"), w.uid("bob")]),
    )


def test_bad_input_redeem() -> None:
    """redeem: arbitrary bodies and sources succeed or raise NOT_FOUND / VALIDATION_FAILED."""
    w = World()
    redeem = w.market.fp.redemption.redeem
    tokens = [t for t in w.tokens if t is not None]
    base = {"installToken": tokens[0], "targetSystem": "whs"}
    bodies = st.one_of(
        payloads(base),
        st.builds(
            lambda token, target: {"installToken": token, "targetSystem": target},
            st.one_of(st.sampled_from(tokens), texts, st.builds(generate_token, st.just("fpit_"))),
            st.one_of(st.sampled_from(["whs", "agentromatic", "agentelic"]), texts),
        ),
    )

    @FUZZ
    @given(payload=bodies, source=st.one_of(st.sampled_from(["whs", "agentelic"]), texts))
    def example(payload: Any, source: str) -> None:
        outcome = check(w.market, lambda: redeem(source, payload))
        if isinstance(outcome, DomainError):
            assert outcome.code in (ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_FAILED)

    example()


# --------------------------------------------------------------------------- reads


PARAM_KEYS = [
    "q",
    "tags",
    "categories",
    "assetKind",
    "sort",
    "cursor",
    "limit",
    "status",
    "includeRevoked",
    "type",
    "listingId",
    "actorUserId",
]
params_strategy = st.dictionaries(
    st.one_of(st.sampled_from(PARAM_KEYS), st.text(max_size=10)),
    st.one_of(json_values, st.lists(texts, max_size=25)),
    max_size=5,
)


def _reads(w: World) -> dict[str, Callable[[dict[str, Any]], object]]:
    fp = w.market.fp
    return {
        "catalog.search": fp.catalog.search,
        "catalog.releases": lambda p: fp.catalog.releases(w.listing_id, p),
        "publishing.list_listings": lambda p: fp.publishing.list_listings(w.pub, p),
        "publishing.list_releases": lambda p: fp.publishing.list_releases(w.pub, w.listing_id, p),
        "installs.list_intents": lambda p: fp.installs.list_intents(w.buyer, p),
        "admin.read_audit": lambda p: fp.admin.read_audit(w.admin, p),
    }


READS = [
    "catalog.search",
    "catalog.releases",
    "publishing.list_listings",
    "publishing.list_releases",
    "installs.list_intents",
    "admin.read_audit",
]


@pytest.fixture(scope="module")
def world() -> World:
    """One prepared marketplace shared by the read-only tests of this module."""
    return World()


@pytest.mark.parametrize("endpoint", READS)
def test_bad_input_list_params_only_domain_errors(world: World, endpoint: str) -> None:
    """Arbitrary query parameters answer a page or a DomainError, and never change the store."""
    read = _reads(world)[endpoint]

    @FUZZ
    @given(params=params_strategy)
    def example(params: dict[str, Any]) -> None:
        before = snapshot(world.market.store)
        check(world.market, lambda: read(params))
        assert snapshot(world.market.store) == before

    example()


@pytest.mark.parametrize("endpoint", READS)
@pytest.mark.parametrize(
    "limit", [0, 201, -1, "abc", "0", "201", "-1", "", " 5", 1.5, 50.0, True, [10], "٥"]
)
def test_bad_limit_fails_on_limit(world: World, endpoint: str, limit: object) -> None:
    """A limit outside 1..200 or not an integer is VALIDATION_FAILED on ``limit``."""
    with pytest.raises(ValidationFailed) as info:
        _reads(world)[endpoint]({"limit": limit})
    assert [f.field_name for f in info.value.fields] == ["limit"]


@pytest.mark.parametrize("endpoint", READS)
@pytest.mark.parametrize("limit", [1, 200, "1", "200"])
def test_limit_bounds_are_accepted(world: World, endpoint: str, limit: object) -> None:
    """limit 1 and 200 (as numbers or digit strings) are accepted and bound the page size."""
    page: Any = _reads(world)[endpoint]({"limit": limit})
    assert len(page.items) <= int(limit)  # type: ignore[call-overload]
    if int(limit) == 1:  # type: ignore[call-overload]
        assert len(page.items) == 1
        assert page.next_cursor is not None


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _flip(char: str) -> str:
    return "B" if char == "A" else "A"


def _tampered(cursor: str) -> list[str]:
    body, mac = cursor.split(".")
    return [
        _flip(body[0]) + body[1:] + "." + mac,
        body[:10] + _flip(body[10]) + body[11:] + "." + mac,
        body + "." + _flip(mac[0]) + mac[1:],
        body + "." + mac[:-2],
        body[:-4] + "." + mac,
        body + "." + mac + "." + mac,
        body,
        "." + mac,
        cursor.upper(),
        cursor + "x" * 2_100,
    ]


def _non_canonical(cursor: str) -> dict[str, str]:
    """Edits that change the cursor text but not the bytes a lenient base64 decoder sees."""
    body, mac = cursor.split(".")
    # 16 MAC bytes take 22 base64 characters; the low 4 bits of the last one are padding.
    spare = B64URL[B64URL.index(mac[-1]) ^ 1]
    return {
        "padding-appended": cursor + "=",
        "padding-in-body": body + "==." + mac,
        "padding-bits-set": body + "." + mac[:-1] + spare,
    }


GARBAGE_CURSORS = ["", "abc", "a.b", "!!!.###", "é.é", "\ud800.\udc00", "x" * 3_000, 5, ["c"], True]


@pytest.mark.parametrize("endpoint", READS)
def test_garbage_and_tampered_cursors_fail_on_cursor(world: World, endpoint: str) -> None:
    """Malformed, edited or truncated cursors fail on ``cursor``; the genuine one works."""
    read = _reads(world)[endpoint]
    first: Any = read({"limit": 1})
    cursor = first.next_cursor
    assert isinstance(cursor, str)
    second: Any = read({"limit": 1, "cursor": cursor})
    assert second.items
    assert second.items[0] != first.items[0]
    for bad in [*GARBAGE_CURSORS, *_tampered(cursor)]:
        with pytest.raises(ValidationFailed) as info:
            read({"limit": 1, "cursor": bad})
        assert [f.field_name for f in info.value.fields] == ["cursor"], bad


@pytest.mark.parametrize("edit", ["padding-appended", "padding-in-body", "padding-bits-set"])
def test_edited_cursor_with_same_decoded_bytes_fails_on_cursor(world: World, edit: str) -> None:
    """An edited cursor is rejected even when a lenient base64 decoder reads the same bytes."""
    read = _reads(world)["publishing.list_listings"]
    cursor = read({"limit": 1}).next_cursor  # type: ignore[attr-defined]
    bad = _non_canonical(cursor)[edit]
    assert bad != cursor
    with pytest.raises(ValidationFailed) as info:
        read({"limit": 1, "cursor": bad})
    assert [f.field_name for f in info.value.fields] == ["cursor"]


def test_cursor_from_another_query_fails_on_cursor(world: World) -> None:
    """A genuine cursor used with other filters, sort or endpoint fails on ``cursor``."""
    fp = world.market.fp
    cursor = fp.catalog.search({"limit": 1, "sort": "created"}).next_cursor
    assert cursor is not None
    for params in (
        {"limit": 1, "sort": "name", "cursor": cursor},
        {"limit": 1, "sort": "created", "assetKind": "spec_asset", "cursor": cursor},
        {"limit": 1, "sort": "created", "q": "agent", "cursor": cursor},
    ):
        with pytest.raises(ValidationFailed) as info:
            fp.catalog.search(params)
        assert [f.field_name for f in info.value.fields] == ["cursor"]
    audit_cursor = fp.admin.read_audit(world.admin, {"limit": 1}).next_cursor
    assert audit_cursor is not None
    with pytest.raises(ValidationFailed):
        fp.installs.list_intents(world.buyer, {"cursor": audit_cursor})
    with pytest.raises(ValidationFailed):
        fp.admin.read_audit(world.admin, {"cursor": audit_cursor, "type": "listing.created"})
    assert fp.admin.read_audit(world.admin, {"cursor": audit_cursor}).items


# --------------------------------------------------------------------------- ids


GARBAGE_IDS = [
    pytest.param("", id="empty"),
    pytest.param(" ", id="space"),
    pytest.param("lst_nope", id="unknown"),
    pytest.param("é" * 10, id="accents"),
    pytest.param("🙂" * 100, id="emoji"),
    pytest.param("\x00", id="nul"),
    pytest.param("\ud800", id="surrogate"),
    pytest.param("\u202eabc", id="bidi"),
    pytest.param("a" * 10_000, id="10k"),
    pytest.param("../../etc/passwd", id="path"),
    pytest.param("' OR 1=1 --", id="sql"),
    pytest.param("*", id="star"),
]


def _by_id(w: World) -> dict[str, Callable[[str], object]]:
    fp = w.market.fp
    return {
        "catalog.listing": fp.catalog.listing,
        "catalog.releases": fp.catalog.releases,
        "publishing.get_listing": lambda i: fp.publishing.get_listing(w.pub, i),
        "publishing.list_releases": lambda i: fp.publishing.list_releases(w.pub, i),
        "publishing.update_listing": lambda i: fp.publishing.update_listing(
            w.pub, i, {"name": "x"}, idempotency_key=new_key()
        ),
        "publishing.change_status": lambda i: fp.publishing.change_status(
            w.pub, i, {"status": "unlisted"}, idempotency_key=new_key()
        ),
        "publishing.publish_release": lambda i: fp.publishing.publish_release(
            w.pub, i, release_payload("7.7.7"), idempotency_key=new_key()
        ),
        "publishing.revoke_release": lambda i: fp.publishing.revoke_release(
            w.pub, i, {}, idempotency_key=new_key()
        ),
        "installs.get_intent": lambda i: fp.installs.get_intent(w.buyer, i),
        "installs.issue_token": lambda i: fp.installs.issue_token(
            w.buyer, i, None, idempotency_key=new_key()
        ),
        "installs.cancel_intent": lambda i: fp.installs.cancel_intent(
            w.buyer, i, None, idempotency_key=new_key()
        ),
        "admin.suspend_listing": lambda i: fp.admin.suspend_listing(
            w.admin, i, {"reason": "x"}, idempotency_key=new_key()
        ),
        "admin.unsuspend_listing": lambda i: fp.admin.unsuspend_listing(
            w.admin, i, None, idempotency_key=new_key()
        ),
        "admin.change_roles": lambda i: fp.admin.change_roles(
            w.admin, i, {"grant": ["publisher"]}, idempotency_key=new_key()
        ),
        "admin.set_verification": lambda i: fp.admin.set_verification(
            w.admin, i, {"status": "verified"}, idempotency_key=new_key()
        ),
    }


BY_ID = [
    "catalog.listing",
    "catalog.releases",
    "publishing.get_listing",
    "publishing.list_releases",
    "publishing.update_listing",
    "publishing.change_status",
    "publishing.publish_release",
    "publishing.revoke_release",
    "installs.get_intent",
    "installs.issue_token",
    "installs.cancel_intent",
    "admin.suspend_listing",
    "admin.unsuspend_listing",
    "admin.change_roles",
    "admin.set_verification",
]


@pytest.mark.parametrize("bad_id", GARBAGE_IDS)
@pytest.mark.parametrize("operation", BY_ID)
def test_unknown_or_garbage_ids_are_not_found(world: World, operation: str, bad_id: str) -> None:
    """Ids that do not exist or are garbage answer NOT_FOUND and change nothing."""
    before = snapshot(world.market.store)
    with pytest.raises(NotFound) as info:
        _by_id(world)[operation](bad_id)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert snapshot(world.market.store) == before


@pytest.mark.parametrize("operation", BY_ID)
def test_ids_of_wrong_kind_or_owner_are_not_found(world: World, operation: str) -> None:
    """A real id of another kind or of another owner answers NOT_FOUND like a missing one."""
    w = world
    if operation.startswith("admin.") and operation.endswith("_listing"):
        candidates = [w.intents[0], w.release.release_id, w.uid("bob")]
    elif operation.startswith("admin."):
        candidates = [w.listing_id, w.intents[0]]
    elif operation.startswith("installs."):
        candidates = [w.listing_id, w.release.release_id]
    elif operation == "publishing.revoke_release":
        candidates = [w.listing_id, w.intents[0]]
    elif operation.startswith("catalog."):
        candidates = [w.drafts[0], w.suspended[0], w.release.release_id]
    else:
        candidates = [w.foreign_listing, w.release.release_id, w.intents[0]]
    before = snapshot(w.market.store)
    for candidate in candidates:
        with pytest.raises(NotFound):
            _by_id(w)[operation](candidate)
    assert snapshot(w.market.store) == before


@pytest.mark.parametrize(
    "listing_id",
    [
        pytest.param("lst_nope", id="unknown"),
        pytest.param("é" * 10, id="accents"),
        pytest.param("🙂" * 50, id="emoji"),
        pytest.param("a" * 200, id="200-chars"),
    ],
)
def test_create_intent_for_unknown_listing_or_release_is_not_found(
    world: World, listing_id: str
) -> None:
    """Intents for unknown listings or unknown/foreign releases are NOT_FOUND; nothing stored."""
    before = snapshot(world.market.store)
    create = world.market.fp.installs.create_intent
    bodies = [
        {"listingId": listing_id, "targetSystem": "whs"},
        {"listingId": world.listing_id, "releaseId": listing_id, "targetSystem": "whs"},
        {"listingId": world.foreign_listing, "releaseId": world.releases[0], "targetSystem": "whs"},
    ]
    for body in bodies:
        with pytest.raises(NotFound):
            create(world.buyer, body, idempotency_key=new_key())
    assert snapshot(world.market.store) == before


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(generate_token(INSTALL_TOKEN_PREFIX), id="unknown-valid-shape"),
        pytest.param("fpit_" + "0" * 49, id="bad-checksum"),
        pytest.param("not-a-token", id="plain"),
        pytest.param("é" * 200, id="unicode-200"),
    ],
)
def test_unknown_tokens_are_not_found(world: World, token: str) -> None:
    """Redeeming an unknown or malformed (well-typed) token is NOT_FOUND, changing nothing."""
    before = snapshot(world.market.store)
    with pytest.raises(NotFound) as info:
        world.market.fp.redemption.redeem("whs", {"installToken": token, "targetSystem": "whs"})
    assert info.value.message == "Install token not found."
    assert snapshot(world.market.store) == before


def test_anonymous_call_on_write_is_unauthenticated(world: World) -> None:
    """A write without a principal answers UNAUTHENTICATED and creates no user."""
    before = snapshot(world.market.store)
    with pytest.raises(DomainError) as info:
        world.market.fp.publishing.create_listing(
            Call(), listing_payload(), idempotency_key=new_key()
        )
    assert info.value.code is ErrorCode.UNAUTHENTICATED
    assert snapshot(world.market.store) == before

"""Security acceptance through the use cases: S-IDOR-01..05, S-CD-01..03, S-SEC-01..03,
S-RL-01..03, and the audit rule (one secret-free event per mutation)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from test_app_support import (
    audit_count,
    changes,
    error_shape,
    failure,
    redeem_signed,
    snapshot,
    store_strings,
    strings_in,
    tables_changed,
)

from fleetprompt_adapters.memory import ManualClock, MemoryRateLimiter
from fleetprompt_adapters.system import SecretTokenGenerator, UlidIdGenerator
from fleetprompt_core import (
    Call,
    InstallIntentStatus,
    InstallTokenStatus,
    NotFound,
    RateLimited,
    Role,
    Unauthenticated,
    Unauthorized,
    ValidationFailed,
)
from fleetprompt_core.base.enums import ActorType
from fleetprompt_core.policies.rate_limits import Action, RateLimits, RateRule
from fleetprompt_core.policies.tokens import generate_token, hash_token, looks_like_token
from fleetprompt_core.services._idempotency import Operation
from support import Market, listing_payload, new_key, release_payload

UNKNOWN_LISTING = "lst_01JUNKNOWN000000000000000"
UNKNOWN_RELEASE = "rel_01JUNKNOWN000000000000000"
UNKNOWN_INTENT = "ii_01JUNKNOWN000000000000000"


def _same_as_unknown(foreign: Callable[[], object], unknown: Callable[[], object]) -> None:
    """Both calls fail with NOT_FOUND and a client cannot tell them apart."""
    foreign_error, unknown_error = failure(foreign), failure(unknown)
    assert isinstance(foreign_error, NotFound)
    assert error_shape(foreign_error) == error_shape(unknown_error)


def _fields(error: BaseException) -> list[str]:
    assert isinstance(error, ValidationFailed)
    return [f.field_name for f in error.fields]


# --------------------------------------------------------------------------- S-IDOR


def test_s_idor_01_publisher_b_cannot_read_or_change_a_listing(market: Market) -> None:
    """B reading or changing A's listing gets the unknown-id NOT_FOUND; A's data is unchanged."""
    owner = market.publisher("pub-a")
    intruder = market.publisher("pub-b")
    draft = market.draft(owner)
    published, _ = market.published(owner)
    publishing = market.fp.publishing
    before = snapshot(market)
    for view in (draft, published):
        lid = view.listing.listing_id
        _same_as_unknown(
            lambda lid=lid: publishing.get_listing(intruder, lid),
            lambda: publishing.get_listing(intruder, UNKNOWN_LISTING),
        )
        _same_as_unknown(
            lambda lid=lid: publishing.update_listing(intruder, lid, {"name": "Owned"}),
            lambda: publishing.update_listing(intruder, UNKNOWN_LISTING, {"name": "Owned"}),
        )
        for status in ("draft", "published", "unlisted"):
            _same_as_unknown(
                lambda lid=lid, s=status: publishing.change_status(
                    intruder, lid, {"status": s}, idempotency_key=new_key()
                ),
                lambda s=status: publishing.change_status(
                    intruder, UNKNOWN_LISTING, {"status": s}, idempotency_key=new_key()
                ),
            )
        _same_as_unknown(
            lambda lid=lid: publishing.list_releases(intruder, lid),
            lambda: publishing.list_releases(intruder, UNKNOWN_LISTING),
        )
    assert changes(before, snapshot(market)) == {}
    assert publishing.get_listing(owner, draft.listing.listing_id) == draft


def test_s_idor_02_publisher_b_cannot_publish_on_or_revoke_a_releases(market: Market) -> None:
    """B publishing on or revoking A's releases is the unknown-id NOT_FOUND, no version taken."""
    owner = market.publisher("pub-a")
    intruder = market.publisher("pub-b")
    view, release = market.published(owner)
    lid = view.listing.listing_id
    publishing = market.fp.publishing
    before = snapshot(market)
    _same_as_unknown(
        lambda: publishing.publish_release(
            intruder, lid, release_payload("6.6.6"), idempotency_key=new_key()
        ),
        lambda: publishing.publish_release(
            intruder, UNKNOWN_LISTING, release_payload("6.6.6"), idempotency_key=new_key()
        ),
    )
    _same_as_unknown(
        lambda: publishing.revoke_release(
            intruder, release.release_id, {"reason": "mine now"}, idempotency_key=new_key()
        ),
        lambda: publishing.revoke_release(
            intruder, UNKNOWN_RELEASE, {"reason": "mine now"}, idempotency_key=new_key()
        ),
    )
    assert changes(before, snapshot(market)) == {}
    assert market.store.releases[release.release_id] == release
    assert market.release(owner, lid, "6.6.6").version == "6.6.6"


def test_s_idor_03_buyer_b_cannot_touch_a_intents_in_any_state(market: Market) -> None:
    """B touching A's intent in any state gets NOT_FOUND, never a state-revealing CONFLICT."""
    publisher = market.publisher()
    owner = market.user("buyer-a")
    intruder = market.user("buyer-b")
    view, _ = market.published(publisher)
    lid = view.listing.listing_id
    open_intent = market.intent(owner, lid)
    canceled = market.intent(owner, lid)
    market.fp.installs.cancel_intent(owner, canceled.install_intent_id, idempotency_key=new_key())
    redeemed = market.intent(owner, lid)
    issued = market.token(owner, redeemed.install_intent_id)
    assert issued.install_token is not None
    market.redeem(issued.install_token)
    open_token = market.token(owner, open_intent.install_intent_id)
    installs = market.fp.installs
    before = snapshot(market)
    for intent in (open_intent, canceled, redeemed):
        iid = intent.install_intent_id
        _same_as_unknown(
            lambda iid=iid: installs.get_intent(intruder, iid),
            lambda: installs.get_intent(intruder, UNKNOWN_INTENT),
        )
        _same_as_unknown(
            lambda iid=iid: installs.issue_token(intruder, iid, None, idempotency_key=new_key()),
            lambda: installs.issue_token(intruder, UNKNOWN_INTENT, None, idempotency_key=new_key()),
        )
        _same_as_unknown(
            lambda iid=iid: installs.cancel_intent(intruder, iid, idempotency_key=new_key()),
            lambda: installs.cancel_intent(intruder, UNKNOWN_INTENT, idempotency_key=new_key()),
        )
    assert changes(before, snapshot(market)) == {}
    assert market.store.tokens[open_token.token_id].status is InstallTokenStatus.ISSUED


def test_s_idor_04_list_endpoints_return_only_own_items(market: Market) -> None:
    """Lists return only own items, and another caller's cursor is refused."""
    pub_a, pub_b = market.publisher("pub-a"), market.publisher("pub-b")
    buyer_a, buyer_b = market.user("buyer-a"), market.user("buyer-b")
    a_listings = {market.draft(pub_a).listing.listing_id for _ in range(3)}
    b_view, _ = market.published(pub_b)
    b_listings = {b_view.listing.listing_id, market.draft(pub_b).listing.listing_id}
    a_intents = {
        market.intent(buyer_a, b_view.listing.listing_id).install_intent_id for _ in range(3)
    }
    b_intents = {market.intent(buyer_b, b_view.listing.listing_id).install_intent_id}

    def own_listings(caller: Call, **params: Any) -> set[str]:
        page = market.fp.publishing.list_listings(caller, {"limit": 200, **params})
        return {v.listing.listing_id for v in page.items}

    def own_intents(caller: Call, **params: Any) -> set[str]:
        page = market.fp.installs.list_intents(caller, {"limit": 200, **params})
        return {i.install_intent_id for i in page.items}

    assert own_listings(pub_a) == a_listings
    assert own_listings(pub_b) == b_listings
    assert own_listings(pub_a, status="published") == set()
    assert own_intents(buyer_a) == a_intents
    assert own_intents(buyer_b) == b_intents
    assert own_intents(pub_b) == set()  # the publisher of the listing sees no buyer's intents

    a_page = market.fp.publishing.list_listings(pub_a, {"limit": 1})
    assert a_page.next_cursor is not None
    error = failure(
        lambda: market.fp.publishing.list_listings(
            pub_b, {"limit": 1, "cursor": a_page.next_cursor}
        )
    )
    assert _fields(error) == ["cursor"]
    a_intent_page = market.fp.installs.list_intents(buyer_a, {"limit": 1})
    assert a_intent_page.next_cursor is not None
    error = failure(
        lambda: market.fp.installs.list_intents(
            buyer_b, {"limit": 1, "cursor": a_intent_page.next_cursor}
        )
    )
    assert _fields(error) == ["cursor"]


def test_s_idor_05_idempotency_keys_are_scoped_to_the_caller(market: Market) -> None:
    """B reusing A's idempotency key and request never gets A's stored response."""
    pub_a, pub_b = market.publisher("pub-a"), market.publisher("pub-b")
    buyer_a, buyer_b = market.user("buyer-a"), market.user("buyer-b")
    key = "shared-key-1"
    a_listing = market.fp.publishing.create_listing(pub_a, listing_payload(), idempotency_key=key)
    b_listing = market.fp.publishing.create_listing(pub_b, listing_payload(), idempotency_key=key)
    assert not b_listing.replayed
    assert b_listing.value.listing.listing_id != a_listing.value.listing.listing_id
    assert b_listing.value.listing.publisher_user_id == market.store.users_by_external_id["pub-b"]

    view, _ = market.published(pub_a)
    body = {"listingId": view.listing.listing_id, "targetSystem": "whs"}
    a_intent = market.fp.installs.create_intent(buyer_a, body, idempotency_key=key)
    b_intent = market.fp.installs.create_intent(buyer_b, body, idempotency_key=key)
    assert not b_intent.replayed
    assert b_intent.value.buyer_user_id == market.store.users_by_external_id["buyer-b"]

    a_iid = a_intent.value.install_intent_id
    market.fp.installs.issue_token(buyer_a, a_iid, None, idempotency_key=key)
    error = failure(
        lambda: market.fp.installs.issue_token(buyer_b, a_iid, None, idempotency_key=key)
    )
    assert isinstance(error, NotFound)
    assert len(market.store.tokens) == 1


# --------------------------------------------------------------------------- S-CD


def test_s_cd_01_a_token_redeems_only_for_its_target_system(market: Market) -> None:
    """A token redeems only for its intent's target system; others get NOT_FOUND, no change."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id, "whs")
    issued = market.token(buyer, intent.install_intent_id)
    raw = issued.install_token
    assert raw is not None
    unknown = error_shape(
        failure(lambda: redeem_signed(market, generate_token("fpit_"), "agentelic"))
    )
    before = snapshot(market)
    for target in ("agentelic", "agentromatic"):
        assert error_shape(failure(lambda t=target: redeem_signed(market, raw, t, source=t))) == (
            unknown
        )
    assert changes(before, snapshot(market)) == {}
    error = failure(
        lambda: market.fp.installs.issue_token(
            buyer,
            intent.install_intent_id,
            {"targetSystem": "agentelic"},
            idempotency_key=new_key(),
        )
    )
    assert _fields(error) == ["targetSystem"]
    assert redeem_signed(market, raw, "whs").install_intent.target_system.value == "whs"


def test_s_cd_02_client_supplied_ids_never_set_write_scope(market: Market) -> None:
    """Owner/buyer/listing ids in bodies are refused; ownership comes from the caller only."""
    pub_a = market.publisher("pub-a")
    market.publisher("pub-b")
    buyer = market.user("buyer")
    a_id = market.store.users_by_external_id["pub-a"]
    b_id = market.store.users_by_external_id["pub-b"]
    buyer_id = market.store.users_by_external_id["buyer"]
    view, _ = market.published(pub_a)
    lid = view.listing.listing_id
    intent = market.intent(buyer, lid)
    before = snapshot(market)
    attempts = {
        "publisherUserId": lambda: market.fp.publishing.create_listing(
            pub_a, listing_payload(publisherUserId=b_id), idempotency_key=new_key()
        ),
        "ownerId": lambda: market.fp.publishing.update_listing(pub_a, lid, {"ownerId": b_id}),
        "listingId": lambda: market.fp.publishing.publish_release(
            pub_a, lid, release_payload("2.0.0", listingId="lst_x"), idempotency_key=new_key()
        ),
        "buyerUserId": lambda: market.fp.installs.create_intent(
            buyer,
            {"listingId": lid, "targetSystem": "whs", "buyerUserId": a_id},
            idempotency_key=new_key(),
        ),
        "installIntentId": lambda: market.fp.redemption.redeem(
            "whs",
            {
                "installToken": "fpit_x",
                "targetSystem": "whs",
                "installIntentId": intent.install_intent_id,
            },
        ),
        "publisherId": lambda: market.fp.profiles.put(
            pub_a, {"displayName": "A", "publisherId": b_id}
        ),
    }
    for field, attempt in attempts.items():
        assert _fields(failure(attempt)) == [field]
    assert changes(before, snapshot(market)) == {}
    created = market.draft(pub_a)
    assert created.listing.publisher_user_id == a_id
    org_intent = market.intent(buyer, lid, targetContext={"orgId": "org-of-someone-else"})
    assert org_intent.buyer_user_id == buyer_id
    assert market.fp.installs.list_intents(market.user("org-admin")).items == ()


def test_s_cd_03_browser_requests_cannot_ride_a_valid_signature(market: Market) -> None:
    """A validly signed request from a browser (Origin/cookie) is refused with no change."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id)
    issued = market.token(buyer, intent.install_intent_id)
    assert issued.install_token is not None
    before = snapshot(market)
    for marker in ("browser_context", "duplicate_header"):
        error = failure(
            lambda m=marker: redeem_signed(market, issued.install_token or "", **{m: True})
        )
        assert isinstance(error, Unauthenticated)
    assert changes(before, snapshot(market)) == {}


class _CountingTokens(SecretTokenGenerator):
    def __init__(self) -> None:
        self.calls = 0

    def new_token(self, prefix: str) -> str:
        self.calls += 1
        return super().new_token(prefix)


class _RecordingIds(UlidIdGenerator):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.prefixes: list[str] = []

    def new_id(self, prefix: str) -> str:
        self.prefixes.append(prefix)
        return super().new_id(prefix)


def test_s_cd_03_redemption_is_a_handoff_that_calls_nothing_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redemption uses no network, mints nothing, and changes only token, intent and audit."""
    tokens = _CountingTokens()
    clock = ManualClock()
    ids = _RecordingIds(clock)
    market = Market.create(clock=clock, tokens=tokens, ids=ids)
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id)
    issued = market.token(buyer, intent.install_intent_id)
    assert issued.install_token is not None

    def no_network(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("redemption must not reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    minted, ids.prefixes = tokens.calls, []
    before = snapshot(market)
    redeem_signed(market, issued.install_token)
    diff = changes(before, snapshot(market))
    assert tables_changed(diff) == {"tokens", "intents", "audit"}
    assert diff["tokens"] == {issued.token_id}
    assert diff["intents"] == {intent.install_intent_id}
    assert diff["audit"] == {len(before["audit"])}
    assert tokens.calls == minted
    assert ids.prefixes == ["evt"]
    old_token, new_token = before["tokens"][issued.token_id], market.store.tokens[issued.token_id]
    assert (old_token.status, new_token.status) == (
        InstallTokenStatus.ISSUED,
        InstallTokenStatus.REDEEMED,
    )
    assert new_token.token_hash == old_token.token_hash
    old_intent = before["intents"][intent.install_intent_id]
    new_intent = market.store.intents[intent.install_intent_id]
    assert new_intent.status is InstallIntentStatus.REDEEMED
    assert (new_intent.release_id, new_intent.listing_id, new_intent.buyer_user_id) == (
        old_intent.release_id,
        old_intent.listing_id,
        old_intent.buyer_user_id,
    )


# --------------------------------------------------------------------------- S-SEC


def _full_install_history(market: Market) -> list[str]:
    """Issue, re-issue, cancel, redeem and expire tokens; return every raw token minted."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    lid = view.listing.listing_id
    raws: list[str] = []
    redeemed = market.intent(buyer, lid)
    for _ in range(2):
        raws.append(market.token(buyer, redeemed.install_intent_id).install_token or "")
    redeem_signed(market, raws[-1])
    canceled = market.intent(buyer, lid)
    raws.append(market.token(buyer, canceled.install_intent_id).install_token or "")
    market.fp.installs.cancel_intent(buyer, canceled.install_intent_id, idempotency_key=new_key())
    expiring = market.intent(buyer, lid)
    raws.append(market.token(buyer, expiring.install_intent_id, ttl_ms=60_000).install_token or "")
    market.clock.advance(60_000)
    market.fp.retention.run()
    assert all(raws)
    return raws


def test_s_sec_01_raw_tokens_are_in_no_stored_table_or_audit_event(market: Market) -> None:
    """No table, entity field or audit event holds a raw token; token hashes are not audited."""
    raws = _full_install_history(market)
    stored = store_strings(market)
    for raw in raws:
        assert not any(raw in text for text in stored)
        assert not any(raw[5:40] in text for text in stored)
    assert not any(looks_like_token(text) for text in stored)
    hashes = {hash_token(raw) for raw in raws}
    assert hashes <= set(market.store.tokens_by_hash)  # only the hashes are kept...
    audit_text = list(strings_in(market.store.audit))
    assert not any(h in text for h in hashes for text in audit_text)  # ...and never audited
    statuses = sorted(t.status.value for t in market.store.tokens.values())
    assert statuses == ["expired", "redeemed", "revoked", "revoked"]


Refusal = Callable[[Market, str], object]

#: Every way a redemption carrying the raw token can be refused, by name.
_REFUSALS: dict[str, Refusal] = {
    "wrong-target": lambda m, raw: redeem_signed(m, raw, "agentelic"),
    "browser": lambda m, raw: redeem_signed(m, raw, browser_context=True),
    "bad-key": lambda m, raw: redeem_signed(m, raw, key=b"z" * 32),
    "bad-target-value": lambda m, raw: m.redeem(raw, "s3"),
    "extra-field": lambda m, raw: m.fp.redemption.redeem(
        "whs", {"installToken": raw, "targetSystem": "whs", "copy": raw}
    ),
    "token-with-newline": lambda m, raw: m.redeem(raw + "\n"),
    "token-too-long": lambda m, raw: m.redeem(raw * 5),
    "token-in-a-list": lambda m, raw: m.fp.redemption.redeem(
        "whs", {"installToken": [raw], "targetSystem": "whs"}
    ),
    "token-sent-as-a-key": lambda m, raw: m.fp.redemption.redeem("whs", {raw: "whs"}),
    "token-in-key-with-prefix": lambda m, raw: m.fp.redemption.redeem(
        "whs", {"token=" + raw: "whs"}
    ),
}


@pytest.mark.parametrize("case", list(_REFUSALS))
def test_s_sec_02_failed_redemptions_never_echo_the_token(market: Market, case: str) -> None:
    """No redemption refusal echoes the raw token, however the client misplaced it."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id)
    raw = market.token(buyer, intent.install_intent_id).install_token
    assert raw is not None
    error = failure(lambda: _REFUSALS[case](market, raw))
    for text in strings_in(error):
        assert raw[5:30] not in text, (case, text)
        assert not looks_like_token(text), (case, text)
    assert market.store.intents[intent.install_intent_id].status.value == "token_issued"


def test_s_sec_03_raw_token_appears_only_in_the_issuing_answer(market: Market) -> None:
    """The raw token is only in the first issue answer: not repr, replay, storage or reads."""
    publisher = market.publisher()
    buyer = market.user("buyer")
    view, _ = market.published(publisher)
    intent = market.intent(buyer, view.listing.listing_id)
    iid = intent.install_intent_id
    key = new_key()
    first = market.fp.installs.issue_token(buyer, iid, {"ttlMs": 120_000}, idempotency_key=key)
    raw = first.value.install_token
    assert raw is not None
    assert raw not in repr(first.value)
    assert raw not in repr(first)
    replay = market.fp.installs.issue_token(buyer, iid, {"ttlMs": 120_000}, idempotency_key=key)
    assert replay.replayed
    assert replay.value.install_token is None
    assert replay.value.token_id == first.value.token_id
    records = market.store.idempotency.values()
    (record,) = [r for r in records if r.endpoint == Operation.TOKEN_ISSUE]
    assert record.response_json is not None
    assert raw not in record.response_json
    assert '"install_token":null' in record.response_json
    others: list[object] = [
        replay,
        market.fp.installs.get_intent(buyer, iid),
        market.fp.installs.list_intents(buyer),
        market.fp.catalog.listing(view.listing.listing_id),
        redeem_signed(market, raw),
        market.fp.installs.get_intent(buyer, iid),
    ]
    for other in others:
        assert not any(raw in text for text in strings_in(other))


# --------------------------------------------------------------------------- S-RL


def _limited(**rules: RateRule) -> Market:
    return Market.create(
        limiter=MemoryRateLimiter(),
        rate_limits=RateLimits(rules={Action(name): rule for name, rule in rules.items()}),
    )


def _limited_error(action: Callable[[], object]) -> RateLimited:
    error = failure(action)
    assert isinstance(error, RateLimited)
    assert error.retry_after_s >= 1
    return error


def test_s_rl_01_public_search_and_detail_are_limited_per_client_and_per_user() -> None:
    """Search and detail are limited per client when anonymous and per user when signed in."""
    market = _limited(search=RateRule(3, 60_000), detail=RateRule(2, 60_000))
    view, _ = market.published(market.publisher())
    lid = view.listing.listing_id
    anon_1, anon_2 = Call(client="203.0.113.1"), Call(client="203.0.113.2")
    alice = Call.as_user("alice")
    alice_same_ip = Call(alice.principal, client="203.0.113.1")
    for _ in range(3):
        assert len(market.fp.catalog.search({}, anon_1).items) == 1
    _limited_error(lambda: market.fp.catalog.search({}, anon_1))
    _limited_error(lambda: market.fp.catalog.search({"q": "other"}, anon_1))
    assert len(market.fp.catalog.search({}, anon_2).items) == 1
    for _ in range(3):
        market.fp.catalog.search({}, alice_same_ip)  # the user, not the address, counts
    _limited_error(lambda: market.fp.catalog.search({}, alice))
    assert market.fp.catalog.search({}, Call.as_user("bob")).items

    for _ in range(2):
        assert market.fp.catalog.listing(lid, anon_1).listing.listing_id == lid
    _limited_error(lambda: market.fp.catalog.listing(lid, anon_1))
    _limited_error(lambda: market.fp.catalog.releases(lid, None, anon_1))
    assert market.fp.catalog.releases(lid, None, anon_2).items


def test_s_rl_02_windows_pass_and_retry_after_is_honest() -> None:
    """Retry-After is whole seconds ≥ 1 and shrinks; after the window calls are allowed again."""
    market = _limited(search=RateRule(2, 10_000), redeem=RateRule(1, 1_500))
    client = Call(client="198.51.100.7")
    market.fp.catalog.search({}, client)
    market.clock.advance(4_000)
    market.fp.catalog.search({}, client)
    assert _limited_error(lambda: market.fp.catalog.search({}, client)).retry_after_s == 6
    market.clock.advance(5_500)
    assert _limited_error(lambda: market.fp.catalog.search({}, client)).retry_after_s == 1
    market.clock.advance(500)
    assert market.fp.catalog.search({}, client).items == ()  # first event left the window
    _limited_error(lambda: market.fp.catalog.search({}, client))

    assert isinstance(failure(lambda: market.redeem(generate_token("fpit_"))), NotFound)
    assert _limited_error(lambda: market.redeem(generate_token("fpit_"))).retry_after_s == 2
    assert isinstance(
        failure(lambda: market.redeem(generate_token("fpit_"), source="agentelic")), NotFound
    )
    market.clock.advance(1_500)
    assert isinstance(failure(lambda: market.redeem(generate_token("fpit_"))), NotFound)


def test_s_rl_03_intents_tokens_and_publisher_writes_are_limited_per_user() -> None:
    """Intent, token and publisher-write budgets are per user; refusals store nothing."""
    market = _limited(
        intent_create=RateRule(2, 60_000),
        token_issue=RateRule(2, 60_000),
        publisher_write=RateRule(6, 60_000),
    )
    pub_a, pub_b = market.publisher("pub-a"), market.publisher("pub-b")
    view, release = market.published(pub_a)  # writes 1-3
    lid = view.listing.listing_id
    market.fp.publishing.update_listing(pub_a, lid, {"summary": "x"})  # 4
    market.release(pub_a, lid, "1.1.0")  # 5
    market.fp.publishing.revoke_release(pub_a, release.release_id, {}, idempotency_key=new_key())
    before = snapshot(market)
    for write in (
        lambda: market.draft(pub_a),
        lambda: market.fp.publishing.update_listing(pub_a, lid, {"summary": "y"}),
        lambda: market.fp.publishing.change_status(
            pub_a, lid, {"status": "unlisted"}, idempotency_key=new_key()
        ),
        lambda: market.release(pub_a, lid, "1.2.0"),
    ):
        _limited_error(write)
    assert changes(before, snapshot(market)) == {}
    assert market.draft(pub_b).listing.status.value == "draft"

    buyer_a, buyer_b = market.user("buyer-a"), market.user("buyer-b")
    intents = [market.intent(buyer_a, lid) for _ in range(2)]
    before = snapshot(market)
    _limited_error(lambda: market.intent(buyer_a, lid))
    assert changes(before, snapshot(market)) == {}
    other = market.intent(buyer_b, lid)
    for _ in range(2):
        market.token(buyer_a, intents[0].install_intent_id)
    before = snapshot(market)
    _limited_error(lambda: market.token(buyer_a, intents[1].install_intent_id))
    assert changes(before, snapshot(market)) == {}
    assert market.token(buyer_b, other.install_intent_id).install_token is not None


def test_s_rl_03_publisher_profile_writes_are_limited_per_user() -> None:
    """The profile PUT is a publisher write too: it spends the same per-user budget."""
    market = _limited(publisher_write=RateRule(2, 60_000))
    publisher = market.publisher()
    market.fp.profiles.put(publisher, {"displayName": "One"})
    market.fp.profiles.put(publisher, {"displayName": "Two"})
    _limited_error(lambda: market.fp.profiles.put(publisher, {"displayName": "Three"}))


# --------------------------------------------------------------------------- audit


Setup = Callable[[Market], Callable[[], object]]


def _published(market: Market) -> tuple[Call, str, str]:
    publisher = market.publisher()
    view, release = market.published(publisher)
    return publisher, view.listing.listing_id, release.release_id


def _open_intent(market: Market) -> tuple[Call, str]:
    _, listing_id, _ = _published(market)
    buyer = market.user("buyer")
    return buyer, market.intent(buyer, listing_id).install_intent_id


def _create_listing(market: Market) -> Callable[[], object]:
    publisher = market.publisher()
    return lambda: market.draft(publisher)


def _update_listing(market: Market) -> Callable[[], object]:
    publisher, listing_id, _ = _published(market)
    return lambda: market.fp.publishing.update_listing(publisher, listing_id, {"name": "New"})


def _change_status(market: Market) -> Callable[[], object]:
    publisher, listing_id, _ = _published(market)
    return lambda: market.fp.publishing.change_status(
        publisher, listing_id, {"status": "unlisted"}, idempotency_key=new_key()
    )


def _publish_release(market: Market) -> Callable[[], object]:
    publisher, listing_id, _ = _published(market)
    return lambda: market.release(publisher, listing_id, "9.0.0")


def _revoke_release(market: Market) -> Callable[[], object]:
    publisher, _, release_id = _published(market)
    return lambda: market.fp.publishing.revoke_release(
        publisher, release_id, {"reason": "bad"}, idempotency_key=new_key()
    )


def _profile_put(market: Market) -> Callable[[], object]:
    publisher = market.publisher()
    return lambda: market.fp.profiles.put(publisher, {"displayName": "New name"})


def _create_intent(market: Market) -> Callable[[], object]:
    _, listing_id, _ = _published(market)
    buyer = market.user("buyer")
    return lambda: market.intent(buyer, listing_id)


def _issue_token(market: Market) -> Callable[[], object]:
    buyer, intent_id = _open_intent(market)
    return lambda: market.token(buyer, intent_id)


def _cancel_intent(market: Market) -> Callable[[], object]:
    buyer, intent_id = _open_intent(market)
    return lambda: market.fp.installs.cancel_intent(buyer, intent_id, idempotency_key=new_key())


def _redeem(market: Market) -> Callable[[], object]:
    buyer, intent_id = _open_intent(market)
    raw = market.token(buyer, intent_id).install_token or ""
    return lambda: redeem_signed(market, raw)


def _suspend(market: Market) -> Callable[[], object]:
    admin = market.admin()
    _, listing_id, _ = _published(market)
    return lambda: market.fp.admin.suspend_listing(
        admin, listing_id, {"reason": "spam"}, idempotency_key=new_key()
    )


def _unsuspend(market: Market) -> Callable[[], object]:
    admin = market.admin()
    _, listing_id, _ = _published(market)
    market.fp.admin.suspend_listing(admin, listing_id, {"reason": "r"}, idempotency_key=new_key())
    return lambda: market.fp.admin.unsuspend_listing(admin, listing_id, idempotency_key=new_key())


def _change_roles(market: Market) -> Callable[[], object]:
    admin = market.admin()
    user_id = market.fp.operator.ensure_user("someone").user_id
    return lambda: market.fp.admin.change_roles(
        admin, user_id, {"grant": ["publisher"]}, idempotency_key=new_key()
    )


def _set_verification(market: Market) -> Callable[[], object]:
    admin = market.admin()
    market.publisher()
    publisher_id = market.store.users_by_external_id["pub-a"]
    return lambda: market.fp.admin.set_verification(
        admin, publisher_id, {"status": "verified"}, idempotency_key=new_key()
    )


def _operator_roles(market: Market) -> Callable[[], object]:
    market.user("someone")
    return lambda: market.fp.operator.set_roles("someone", grant=[Role.ADMIN])


def _retention(market: Market) -> Callable[[], object]:
    _open_intent(market)
    market.clock.advance(24 * 60 * 60 * 1000)
    return market.fp.retention.run


def _audit_cases() -> dict[str, tuple[str, Setup]]:
    """Each mutation: the audit type it writes and a setup returning the call to make."""
    return {
        "create_listing": ("listing.created", _create_listing),
        "update_listing": ("listing.updated", _update_listing),
        "change_status": ("listing.status_changed", _change_status),
        "publish_release": ("release.published", _publish_release),
        "revoke_release": ("release.revoked", _revoke_release),
        "profile_put": ("publisher_profile.updated", _profile_put),
        "create_intent": ("install_intent.created", _create_intent),
        "issue_token": ("install_token.issued", _issue_token),
        "cancel_intent": ("install_intent.canceled", _cancel_intent),
        "redeem": ("install_token.redeemed", _redeem),
        "suspend": ("listing.suspended", _suspend),
        "unsuspend": ("listing.unsuspended", _unsuspend),
        "change_roles": ("user.roles_changed", _change_roles),
        "set_verification": ("publisher.verification_set", _set_verification),
        "operator_roles": ("user.roles_changed", _operator_roles),
        "retention": ("retention.purged", _retention),
    }


_AUDIT_CASES = _audit_cases()


@pytest.mark.parametrize("case", sorted(_AUDIT_CASES))
def test_audit_every_mutation_writes_exactly_one_secret_free_event(
    market: Market, case: str
) -> None:
    """Each mutation appends exactly one bounded, token-free audit event naming its actor."""
    event_type, setup = _AUDIT_CASES[case]
    action = setup(market)
    before = audit_count(market)
    result = action()
    events = market.store.audit[before:]
    assert [e.type for e in events] == [event_type]
    (event,) = events
    assert len(event.summary) <= 500
    assert len(event.details) <= 16
    assert all(not isinstance(v, str) or len(v) <= 200 for v in event.details.values())
    assert not any(looks_like_token(text) for text in strings_in(event))
    if event.actor.type is ActorType.USER:
        assert event.actor.user_id in market.store.users
        assert event.request_id is not None
    else:
        assert event.actor.system in {"whs", "retention", "operator"}
    assert result is not None


def test_audit_replays_and_refusals_write_no_event(market: Market) -> None:
    """An idempotent replay, a refused request and a no-op patch append no audit event."""
    publisher = market.publisher()
    intruder = market.publisher("pub-b")
    view, _ = market.published(publisher)
    lid = view.listing.listing_id
    key = new_key()
    market.fp.publishing.change_status(publisher, lid, {"status": "unlisted"}, idempotency_key=key)
    before = audit_count(market)
    market.fp.publishing.change_status(publisher, lid, {"status": "unlisted"}, idempotency_key=key)
    failure(lambda: market.fp.publishing.update_listing(intruder, lid, {"name": "x"}))
    failure(
        lambda: market.fp.publishing.change_status(
            publisher, lid, {"status": "unlisted"}, idempotency_key=new_key()
        )
    )
    failure(
        lambda: market.fp.publishing.create_listing(
            publisher, {"name": ""}, idempotency_key=new_key()
        )
    )
    failure(lambda: market.fp.publishing.list_listings(Call()))
    market.fp.publishing.update_listing(publisher, lid, {"name": view.listing.name})
    assert audit_count(market) == before


def test_audit_log_is_admin_only_and_filterable(market: Market) -> None:
    """Only an admin reads the audit log; filters by type, listing and actor narrow it."""
    publisher = market.publisher()
    view, _ = market.published(publisher)
    lid = view.listing.listing_id
    assert isinstance(failure(lambda: market.fp.admin.read_audit(publisher)), Unauthorized)
    assert isinstance(failure(lambda: market.fp.admin.read_audit(Call())), Unauthenticated)
    admin = market.admin()
    by_listing = market.fp.admin.read_audit(admin, {"listingId": lid, "limit": 200}).items
    assert [e.type for e in by_listing] == [
        "listing.status_changed",
        "release.published",
        "listing.created",
    ]
    created = market.fp.admin.read_audit(admin, {"type": "listing.created"}).items
    assert [e.listing_id for e in created] == [lid]
    actor = market.store.users_by_external_id["pub-a"]
    mine = market.fp.admin.read_audit(admin, {"actorUserId": actor, "limit": 200}).items
    assert {e.actor.user_id for e in mine} == {actor}

"""Personal API tokens (§8) through ``fp.credentials`` over the in-memory adapter:
issue, resolve, expiry, revocation, listing, validation, audit and secrecy.

The marketplace is ``fleetprompt_adapters.memory.bootstrap`` with a
``ManualClock`` (see ``support.Market``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies as fps
from fleetprompt_core import Call, ErrorCode, Principal, Runtime
from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import ActorType
from fleetprompt_core.base.errors import NotFound, ValidationFailed
from fleetprompt_core.domain.model import ApiToken, AuditEvent
from fleetprompt_core.policies.tokens import (
    API_TOKEN_PREFIX,
    INSTALL_TOKEN_PREFIX,
    generate_token,
    has_valid_checksum,
    hash_token,
    looks_like_token,
)
from fleetprompt_core.ports import IdentityResolver
from fleetprompt_core.services import _authz as authz
from fleetprompt_core.services import credentials
from fleetprompt_core.services.views import IssuedApiToken
from support import Market

DAY = 24 * 60 * 60 * 1000


def alice(market: Market) -> Call:
    """A user known to the marketplace, with a display name and no e-mail."""
    return market.user("alice")


def api_events(market: Market) -> list[AuditEvent]:
    return [event for event in market.store.audit if event.type.startswith("api_token.")]


def stored(market: Market, issued: IssuedApiToken) -> ApiToken:
    return market.store.api_tokens[issued.token_id]


def tables(market: Market) -> dict[str, Any]:
    """A copy of every table of the memory store (entities are frozen)."""
    copy: dict[str, Any] = {}
    for name, table in vars(market.store).items():
        if isinstance(table, dict):
            copy[name] = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
        elif isinstance(table, list):
            copy[name] = tuple(table)
    return copy


def fresh_token(prefix: str = API_TOKEN_PREFIX, seed: str = "unknown") -> str:
    """A well-formed token (valid checksum) that was never issued."""
    return generate_token(prefix, entropy=hashlib.sha256(seed.encode()).digest())


# --------------------------------------------------------------------------- issue and resolve


def test_issue_then_resolve_gives_the_users_principal(market: Market) -> None:
    """A freshly issued token resolves to Principal(externalId, displayName, email) of its user."""
    alice(market)
    user = market.fp.operator.ensure_user("alice")
    now = market.clock.now_ms()

    issued = market.fp.credentials.issue_api_token("alice")

    assert issued.token_id.startswith("pat_")
    assert issued.user_id == user.user_id
    assert issued.name == limits.API_TOKEN_NAME_DEFAULT == "default"
    assert issued.created_at_ms == now
    assert issued.expires_at_ms is None
    assert issued.api_token.startswith(API_TOKEN_PREFIX)
    assert has_valid_checksum(issued.api_token)
    principal = market.fp.credentials.resolve(issued.api_token)
    assert principal == Principal("alice", user.display_name, user.email)


def test_only_the_hash_is_stored(market: Market) -> None:
    """The stored token holds SHA-256 of the raw token and the issued metadata, never the raw."""
    alice(market)
    issued = market.fp.credentials.issue_api_token("alice", name="ci", expires_in_days=30)
    token = stored(market, issued)
    assert token == ApiToken(
        token_id=issued.token_id,
        user_id=issued.user_id,
        name="ci",
        token_hash=hash_token(issued.api_token),
        created_at_ms=issued.created_at_ms,
        expires_at_ms=issued.created_at_ms + 30 * DAY,
    )
    assert market.store.api_tokens_by_hash == {token.token_hash: token.token_id}
    assert issued.api_token not in repr(tables(market))


def test_resolver_satisfies_the_identity_port(market: Market) -> None:
    """fp.credentials is an IdentityResolver: a resolved principal signs in as the same user."""
    alice(market)
    resolver: IdentityResolver = market.fp.credentials
    issued = market.fp.credentials.issue_api_token("alice")
    principal = resolver.resolve(issued.api_token)
    assert principal is not None
    users_before = dict(market.store.users)
    page = market.fp.installs.list_intents(Call(principal))
    assert page.items == ()
    assert market.store.users == users_before  # the same user, no new one


def test_each_issue_is_a_new_token(market: Market) -> None:
    """Two issues for one user give two distinct tokens; both resolve to the user."""
    alice(market)
    first = market.fp.credentials.issue_api_token("alice", name="laptop")
    second = market.fp.credentials.issue_api_token("alice", name="laptop")
    assert first.token_id != second.token_id
    assert first.api_token != second.api_token
    for issued in (first, second):
        resolved = market.fp.credentials.resolve(issued.api_token)
        assert resolved is not None
        assert resolved.external_id == "alice"


def test_name_is_trimmed_and_bounds_are_accepted(market: Market) -> None:
    """A padded name is stored trimmed; 80 characters and 1 or 3 650 days are accepted."""
    alice(market)
    now = market.clock.now_ms()
    padded = market.fp.credentials.issue_api_token("alice", name="  deploy bot \u00a0")
    assert padded.name == "deploy bot"
    longest = market.fp.credentials.issue_api_token("alice", name="\U0001f98a" * 80)
    assert stored(market, longest).name == "\U0001f98a" * 80
    for days in (1, 3_650):
        issued = market.fp.credentials.issue_api_token("alice", expires_in_days=days)
        assert issued.expires_at_ms == now + days * DAY
        assert stored(market, issued).expires_at_ms == now + days * DAY


# --------------------------------------------------------------------------- expiry and revocation


def test_expiry_boundary_is_exclusive(market: Market) -> None:
    """A token resolves 1 ms before its expiry and never at or after it (as install tokens)."""
    alice(market)
    issued = market.fp.credentials.issue_api_token("alice", expires_in_days=1)
    assert issued.expires_at_ms is not None
    market.clock.set(issued.expires_at_ms - 1)
    assert market.fp.credentials.resolve(issued.api_token) is not None
    market.clock.set(issued.expires_at_ms)
    assert market.fp.credentials.resolve(issued.api_token) is None
    market.clock.advance(365 * DAY)
    assert market.fp.credentials.resolve(issued.api_token) is None


def test_token_without_expiry_keeps_working(market: Market) -> None:
    """A token issued without expiresInDays still resolves ten years later."""
    alice(market)
    issued = market.fp.credentials.issue_api_token("alice")
    market.clock.advance(3_650 * DAY)
    assert market.fp.credentials.resolve(issued.api_token) is not None


def test_revoke_stops_resolution_and_records_the_time(market: Market) -> None:
    """After revoke the token resolves to None; the answer and the store carry revokedAtMs."""
    alice(market)
    issued = market.fp.credentials.issue_api_token("alice")
    market.clock.advance(5_000)
    now = market.clock.now_ms()

    revoked = market.fp.credentials.revoke_api_token(issued.token_id, request_id="req-revoke")

    assert revoked.revoked_at_ms == now
    assert revoked == stored(market, issued)
    assert not revoked.is_usable(now)
    assert market.fp.credentials.resolve(issued.api_token) is None


def test_revoking_twice_answers_the_revoked_token_without_a_new_event(market: Market) -> None:
    """A second revoke returns the token unchanged (first revocation time), no audit event."""
    alice(market)
    issued = market.fp.credentials.issue_api_token("alice")
    first = market.fp.credentials.revoke_api_token(issued.token_id)
    events = len(market.store.audit)
    market.clock.advance(1_000)
    second = market.fp.credentials.revoke_api_token(issued.token_id)
    assert second == first
    assert len(market.store.audit) == events


def test_revoking_an_expired_token_is_recorded(market: Market) -> None:
    """An expired token can still be revoked (one event); it stays unusable."""
    alice(market)
    issued = market.fp.credentials.issue_api_token("alice", expires_in_days=1)
    market.clock.advance(2 * DAY)
    revoked = market.fp.credentials.revoke_api_token(issued.token_id)
    assert revoked.revoked_at_ms == market.clock.now_ms()
    assert [e.type for e in api_events(market)] == ["api_token.created", "api_token.revoked"]


@pytest.mark.parametrize("token_id", ["pat_unknown", "", "pat_\x00", "x" * 10_000])
def test_revoking_an_unknown_token_is_not_found(market: Market, token_id: str) -> None:
    """An unknown token id is NOT_FOUND and changes nothing."""
    alice(market)
    market.fp.credentials.issue_api_token("alice")
    before = tables(market)
    with pytest.raises(NotFound):
        market.fp.credentials.revoke_api_token(token_id)
    assert tables(market) == before


def test_model_usable_mirrors_install_token_convention() -> None:
    """ApiToken.is_usable: no expiry ⇒ usable until revoked; with expiry, now < expiry."""
    token = ApiToken("pat_1", "usr_1", "n", "h" * 64, 100, expires_at_ms=200)
    assert token.is_usable(100)
    assert token.is_usable(199)
    assert not token.is_usable(200)
    forever = ApiToken("pat_2", "usr_1", "n", "g" * 64, 100)
    assert forever.is_usable(10**15)
    revoked = forever.revoked(150)
    assert revoked.revoked_at_ms == 150
    assert not revoked.is_usable(100)
    assert revoked.revoked(175) is revoked


# --------------------------------------------------------------------------- resolve refuses


def _refused_credentials(raw: str) -> dict[str, str]:
    flipped = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    return {
        "empty": "",
        "bad_checksum": flipped,
        "truncated": raw[:-1],
        "extended": raw + "0",
        "wrong_prefix": INSTALL_TOKEN_PREFIX + raw[len(API_TOKEN_PREFIX) :],
        "install_token": fresh_token(INSTALL_TOKEN_PREFIX),
        "unknown": fresh_token(),
        "nul": raw + "\x00",
        "nul_inside": raw[:10] + "\x00" + raw[11:],
        "padded": f" {raw} ",
        "bearer_scheme": f"Bearer {raw}",
        "upper_case": raw.upper(),
        "the_hash": hash_token(raw),
        "prefix_only": API_TOKEN_PREFIX,
        "lone_surrogate": raw[:-1] + "\ud800",
    }


@pytest.mark.parametrize("case", list(_refused_credentials(fresh_token(seed="shape"))))
def test_resolve_refuses_anything_but_an_issued_token(market: Market, case: str) -> None:
    """Empty, bad checksum, wrong prefix, unknown, NUL, padded... resolve to None, read-only."""
    alice(market)
    issued = market.fp.credentials.issue_api_token("alice")
    credential = _refused_credentials(issued.api_token)[case]
    before = tables(market)
    assert market.fp.credentials.resolve(credential) is None
    assert tables(market) == before


def test_resolve_refuses_malformed_input_without_a_lookup(market: Market) -> None:
    """Wrong prefix and bad checksum are refused before any storage access."""

    class Untouchable:
        def __call__(self) -> Any:
            raise AssertionError("resolve opened a unit of work for a malformed credential")

    alice(market)
    issued = market.fp.credentials.issue_api_token("alice")
    runtime = market.fp.runtime
    offline = credentials.Credentials(
        Runtime(
            uow=Untouchable(),
            read_uow=Untouchable(),
            clock=runtime.clock,
            ids=runtime.ids,
            tokens=runtime.tokens,
            hasher=runtime.hasher,
            cursors=runtime.cursors,
        )
    )
    for name, credential in _refused_credentials(issued.api_token).items():
        if credential.startswith(API_TOKEN_PREFIX) and has_valid_checksum(credential):
            continue  # well-formed: only storage can tell
        assert offline.resolve(credential) is None, name


def test_resolve_of_a_token_whose_user_is_gone_is_none(market: Market) -> None:
    """A stored, usable token whose user row does not exist resolves to None."""
    raw = fresh_token(seed="orphan")
    with market.store.unit_of_work() as uow:
        uow.api_tokens.add(
            ApiToken("pat_orphan", "usr_gone", "orphan", hash_token(raw), market.clock.now_ms())
        )
        uow.commit()
    assert market.fp.credentials.resolve(raw) is None


@settings(max_examples=200, deadline=None)
@given(
    credential=st.one_of(
        st.text(max_size=80),
        st.builds(lambda s: API_TOKEN_PREFIX + s, st.text(max_size=60)),
        st.builds(
            lambda b: generate_token(API_TOKEN_PREFIX, entropy=b),
            st.binary(min_size=32, max_size=32),
        ),
    )
)
def test_resolve_never_raises_and_never_accepts_a_stranger(credential: str) -> None:
    """Arbitrary text, prefixed text and well-formed but unissued tokens all resolve to None."""
    market = Market.create()
    market.user("alice")
    market.fp.credentials.issue_api_token("alice")
    assert market.fp.credentials.resolve(credential) is None


# --------------------------------------------------------------------------- operator errors


@pytest.mark.parametrize("external_id", ["nobody", "", "alice\x00"])
def test_issue_for_an_unknown_user_is_not_found(market: Market, external_id: str) -> None:
    """Issuing for an external id without a user is NOT_FOUND: no user, token or event appears."""
    alice(market)
    before = tables(market)
    with pytest.raises(NotFound) as info:
        market.fp.credentials.issue_api_token(external_id)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert tables(market) == before


def test_list_for_an_unknown_user_is_not_found(market: Market) -> None:
    """Listing the tokens of an external id without a user is NOT_FOUND."""
    with pytest.raises(NotFound):
        market.fp.credentials.list_api_tokens("nobody")


INVALID: dict[str, tuple[dict[str, Any], list[str]]] = {
    "empty_name": ({"name": ""}, ["name"]),
    "blank_name": ({"name": "   "}, ["name"]),
    "invisible_name": ({"name": "\u200b"}, ["name"]),
    "long_name": ({"name": "x" * 81}, ["name"]),
    "nul_name": ({"name": "ci\x00"}, ["name"]),
    "control_name": ({"name": "ci\nbot"}, ["name"]),
    "surrogate_name": ({"name": "ci\ud800"}, ["name"]),
    "zero_days": ({"expires_in_days": 0}, ["expiresInDays"]),
    "negative_days": ({"expires_in_days": -1}, ["expiresInDays"]),
    "too_many_days": ({"expires_in_days": 3_651}, ["expiresInDays"]),
    "bool_days": ({"expires_in_days": True}, ["expiresInDays"]),
    "both": ({"name": "", "expires_in_days": 0}, ["name", "expiresInDays"]),
}


@pytest.mark.parametrize(("arguments", "fields"), INVALID.values(), ids=list(INVALID))
def test_validation_failures_list_the_fields(
    market: Market, arguments: dict[str, Any], fields: list[str]
) -> None:
    """Bad name / expiresInDays is one VALIDATION_FAILED naming every failing field; no write."""
    alice(market)
    before = tables(market)
    with pytest.raises(ValidationFailed) as info:
        market.fp.credentials.issue_api_token("alice", **arguments)
    assert [f.field_name for f in info.value.fields] == fields
    assert tables(market) == before


def test_validation_comes_before_the_user_lookup(market: Market) -> None:
    """An invalid request for an unknown user is VALIDATION_FAILED (nothing is looked up)."""
    with pytest.raises(ValidationFailed):
        market.fp.credentials.issue_api_token("nobody", expires_in_days=0)


@settings(max_examples=50, deadline=None)
@given(name=fps.api_token_names(), days=st.none() | fps.api_token_expiry_days())
def test_every_valid_name_and_lifetime_is_accepted(name: str, days: int | None) -> None:
    """Any 1..80-character name (after trimming) and 1..3 650 days issue a resolvable token."""
    market = Market.create()
    market.user("alice")
    issued = market.fp.credentials.issue_api_token("alice", name=name, expires_in_days=days)
    assert issued.name == name.strip()
    assert market.fp.credentials.resolve(issued.api_token) is not None


@settings(max_examples=50, deadline=None)
@given(days=fps.invalid_api_token_expiry_days())
def test_every_invalid_lifetime_is_refused(days: object) -> None:
    """Out-of-range or non-integer expiresInDays is VALIDATION_FAILED on expiresInDays."""
    market = Market.create()
    market.user("alice")
    with pytest.raises(ValidationFailed) as info:
        market.fp.credentials.issue_api_token("alice", expires_in_days=days)  # type: ignore[arg-type]
    assert [f.field_name for f in info.value.fields] == ["expiresInDays"]


# --------------------------------------------------------------------------- listing


def test_list_is_newest_first_with_revoked_tokens_and_only_the_users(market: Market) -> None:
    """list_api_tokens: every token of the user, revoked too, newest first; no one else's."""
    alice(market)
    market.user("bob")
    issued = []
    for i in range(4):
        issued.append(market.fp.credentials.issue_api_token("alice", name=f"t{i}"))
        if i % 2:
            market.clock.advance(10)  # some share a creation time: the id breaks the tie
    market.fp.credentials.issue_api_token("bob")
    market.fp.credentials.revoke_api_token(issued[1].token_id)

    listed = market.fp.credentials.list_api_tokens("alice")

    assert [t.token_id for t in listed] == [i.token_id for i in reversed(issued)]
    assert [t.revoked_at_ms is not None for t in listed] == [False, False, True, False]
    bob = market.fp.operator.ensure_user("bob")
    assert [t.user_id for t in market.fp.credentials.list_api_tokens("bob")] == [bob.user_id]


def test_list_walks_every_page(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a page size of 2, five tokens still all come back once each, newest first."""
    monkeypatch.setattr(credentials, "_LIST_PAGE", 2)
    alice(market)
    issued = [market.fp.credentials.issue_api_token("alice") for _ in range(5)]
    listed = market.fp.credentials.list_api_tokens("alice")
    assert [t.token_id for t in listed] == [i.token_id for i in reversed(issued)]
    assert market.fp.credentials.list_api_tokens("alice") == listed


def test_list_of_a_user_without_tokens_is_empty(market: Market) -> None:
    """A known user without tokens lists nothing."""
    alice(market)
    assert market.fp.credentials.list_api_tokens("alice") == []


# --------------------------------------------------------------------------- audit and secrecy


def test_one_audit_event_per_mutation(market: Market) -> None:
    """Issue and revoke append exactly one event each: type, operator actor, {tokenId, name}."""
    alice(market)
    seen = len(market.store.audit)
    issued = market.fp.credentials.issue_api_token("alice", name="ci", request_id="req-1")
    market.fp.credentials.resolve(issued.api_token)
    market.fp.credentials.list_api_tokens("alice")
    market.fp.credentials.revoke_api_token(issued.token_id, request_id="req-2")

    events = market.store.audit[seen:]
    assert [e.type for e in events] == ["api_token.created", "api_token.revoked"]
    for event, request_id in zip(events, ("req-1", "req-2"), strict=True):
        assert event.actor.type is ActorType.SYSTEM
        assert event.actor.system == "operator"
        assert event.actor.user_id is None
        assert dict(event.details) == {"tokenId": issued.token_id, "name": "ci"}
        assert event.request_id == request_id


def test_no_raw_token_or_hash_in_any_audit_row(market: Market) -> None:
    """Neither the raw token nor its hash appears anywhere in the audit log."""
    alice(market)
    issued = [
        market.fp.credentials.issue_api_token("alice", name=name)
        for name in ("plain", "fpat_lookalike", "x" * 80)
    ]
    market.fp.credentials.revoke_api_token(issued[0].token_id)
    text = repr(list(market.store.audit))
    for one in issued:
        assert one.api_token not in text
        assert hash_token(one.api_token) not in text
    assert not looks_like_token(text)


def test_repr_shows_no_secret(market: Market) -> None:
    """repr of IssuedApiToken hides the raw token; repr of ApiToken (and lists) hides the hash."""
    alice(market)
    issued = market.fp.credentials.issue_api_token("alice")
    token_hash = hash_token(issued.api_token)
    assert issued.api_token not in repr(issued)
    assert not looks_like_token(repr(issued))
    assert issued.token_id in repr(issued)
    for shown in (
        repr(stored(market, issued)),
        repr(market.fp.credentials.list_api_tokens("alice")),
        repr(market.fp.credentials.revoke_api_token(issued.token_id)),
    ):
        assert token_hash not in shown
        assert issued.api_token not in shown
        assert issued.token_id in shown


def test_a_token_call_hands_its_user_row_to_the_core_without_a_second_read(
    market: Market,
) -> None:
    """The API-token resolver's principal carries the user row it read; the core's
    ``signed_in`` uses it (no second read, ADR 0037). The row is not part of the identity:
    equal principals with and without it, and it never shows in ``repr``. A principal
    without it (any other identity provider) is read from storage as before."""
    market.fp.operator.ensure_user("alice", display_name="Alice")
    token = market.fp.credentials.issue_api_token("alice", name="ci").api_token
    principal = market.fp.credentials.resolve(token)
    assert principal is not None
    assert principal.user is not None
    assert principal.user.external_id == "alice"
    assert principal == Principal("alice", principal.display_name, principal.email)
    assert "usr_" not in repr(principal)

    def no_reads() -> Any:
        raise AssertionError("the user row was read again")

    runtime = attrs.evolve(market.fp.runtime, read_uow=no_reads, uow=no_reads)
    assert authz.signed_in(runtime, Call(principal)) is principal.user
    stranger = Principal("alice")
    assert authz.signed_in(market.fp.runtime, Call(stranger)) == principal.user
    with pytest.raises(AssertionError, match="read again"):
        authz.signed_in(runtime, Call(stranger))

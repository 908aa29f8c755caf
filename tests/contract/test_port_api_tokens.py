"""ApiTokenRepository: round trips, uniqueness of id and hash, compare-and-set
revocation, the user's keyset list and rollback."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import attrs
import pytest

from contract import entities
from contract.entities import T0
from contract.harness import Adapter, assert_identical, expected_page, walk_pages
from fleetprompt_core.base.errors import DuplicateError
from fleetprompt_core.domain.model import ApiToken, User
from fleetprompt_core.ports import CreatedKey, UniqueConstraint

BUILDERS = {
    "typical": entities.api_token,
    "at_limits": entities.api_token_at_limits,
    "minimal": entities.api_token_minimal,
}


def _owner(adapter: Adapter) -> User:
    user = entities.user()
    adapter.add(user)
    return user


def _key(token: ApiToken) -> CreatedKey:
    return (token.created_at_ms, token.token_id)


@pytest.mark.parametrize("builder", BUILDERS.values(), ids=list(BUILDERS))
def test_api_tokens_add_get_round_trip(adapter: Adapter, builder: Callable[..., ApiToken]) -> None:
    """A stored token reads back identical by id and by hash; unknown keys read as None."""
    owner = _owner(adapter)
    token = builder(user_id=owner.user_id)
    adapter.add(token)
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get(token.token_id)), token)
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get_by_hash(token.token_hash)), token)
    assert adapter.read(lambda uow: uow.api_tokens.get("pat_unknown")) is None
    assert adapter.read(lambda uow: uow.api_tokens.get_by_hash("0" * 64)) is None


def test_api_tokens_lookups_are_exact(adapter: Adapter) -> None:
    """get_by_hash matches the exact hash only (no case folding, no prefix), and a key
    holding NUL finds nothing instead of failing."""
    owner = _owner(adapter)
    token = entities.api_token(user_id=owner.user_id)
    adapter.add(token)
    for probe in (
        token.token_hash.upper(),
        token.token_hash[:-1],
        token.token_hash + "0",
        token.token_hash + "\x00",
        "",
    ):
        assert adapter.read(lambda uow, p=probe: uow.api_tokens.get_by_hash(p)) is None, probe
    assert adapter.read(lambda uow: uow.api_tokens.get(token.token_id + "\x00")) is None


def test_api_tokens_primary_key_is_unique(adapter: Adapter) -> None:
    """A second token with a stored id (other hash) is DuplicateError(PRIMARY_KEY)."""
    owner = _owner(adapter)
    token = entities.api_token(user_id=owner.user_id)
    adapter.add(token)
    with pytest.raises(DuplicateError) as raised:
        adapter.add(attrs.evolve(token, token_hash="f" * 64, name="other"))
    assert raised.value.constraint == UniqueConstraint.PRIMARY_KEY
    assert adapter.read(lambda uow: uow.api_tokens.get_by_hash("f" * 64)) is None
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get(token.token_id)), token)


def test_api_tokens_hash_is_unique(adapter: Adapter) -> None:
    """A second token with a stored hash is DuplicateError(API_TOKEN_HASH) and keeps the first."""
    owner = _owner(adapter)
    token = entities.api_token(user_id=owner.user_id)
    adapter.add(token)
    twin = entities.api_token(user_id=owner.user_id, token_hash=token.token_hash)
    with pytest.raises(DuplicateError) as raised:
        adapter.add(twin)
    assert raised.value.constraint == UniqueConstraint.API_TOKEN_HASH
    assert adapter.read(lambda uow: uow.api_tokens.get(twin.token_id)) is None
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get_by_hash(token.token_hash)), token)
    listed = adapter.read(lambda uow: uow.api_tokens.list_for_user(owner.user_id, None, 100))
    assert [t.token_id for t in listed] == [token.token_id]


def test_api_tokens_hashes_are_apart_from_install_token_hashes(adapter: Adapter) -> None:
    """An API token may share its hash value with an install token: separate tables."""
    family = entities.family()
    adapter.add(*family)
    token = entities.api_token(user_id=family.buyer.user_id, token_hash=family.token.token_hash)
    adapter.add(token)
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get_by_hash(token.token_hash)), token)
    assert_identical(
        adapter.read(lambda uow: uow.tokens.get_by_hash(token.token_hash)), family.token
    )


def test_api_tokens_update_revokes_when_revocation_matches(adapter: Adapter) -> None:
    """update(revoked, None) stores the revocation and is True; a replay is False."""
    owner = _owner(adapter)
    token = entities.api_token(user_id=owner.user_id)
    adapter.add(token)
    revoked = token.revoked(T0 + 3)
    assert adapter.write(lambda uow: uow.api_tokens.update(revoked, None)) is True
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get(token.token_id)), revoked)
    assert_identical(
        adapter.read(lambda uow: uow.api_tokens.get_by_hash(token.token_hash)), revoked
    )
    again = attrs.evolve(revoked, revoked_at_ms=T0 + 9)
    assert adapter.write(lambda uow: uow.api_tokens.update(again, None)) is False
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get(token.token_id)), revoked)


def test_api_tokens_update_refuses_when_revocation_differs(adapter: Adapter) -> None:
    """update with any other expected revocation time is False and changes nothing."""
    owner = _owner(adapter)
    live = entities.api_token(user_id=owner.user_id)
    done = entities.api_token(user_id=owner.user_id, revoked_at_ms=T0 + 5)
    adapter.add(live, done)
    for expected in (T0, T0 + 5, 0):
        assert (
            adapter.write(lambda uow, e=expected: uow.api_tokens.update(live.revoked(T0 + 7), e))
            is False
        )
    for expected in (None, T0 + 4, T0 + 6):
        assert (
            adapter.write(
                lambda uow, e=expected: uow.api_tokens.update(
                    attrs.evolve(done, revoked_at_ms=T0 + 8), e
                )
            )
            is False
        )
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get(live.token_id)), live)
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get(done.token_id)), done)


@pytest.mark.parametrize(
    "change",
    [
        {"token_hash": "d" * 64},
        {"user_id": "usr_other"},
        {"name": "renamed"},
        {"created_at_ms": T0 + 1},
        {"expires_at_ms": None},
    ],
    ids=lambda change: next(iter(change)),
)
def test_api_tokens_update_refuses_to_change_anything_but_the_revocation(
    adapter: Adapter, change: dict[str, object]
) -> None:
    """Changing any field but revoked_at_ms through update is a ValueError; nothing is kept."""
    owner = _owner(adapter)
    token = entities.api_token(user_id=owner.user_id)
    adapter.add(token)
    changed = attrs.evolve(token.revoked(T0 + 3), **change)
    with pytest.raises(ValueError, match="immutable"):
        adapter.write(lambda uow: uow.api_tokens.update(changed, None))
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get(token.token_id)), token)


def _history(adapter: Adapter) -> tuple[User, list[ApiToken]]:
    """A user's tokens (live, expired, revoked; ties on created_at_ms) and a stranger's."""
    owner, stranger = entities.user(), entities.user()
    adapter.add(owner, stranger)
    specs = [
        # (id, created offset, expires offset or None, revoked offset or None)
        ("pat_h", 3, None, None),
        ("pat_c", 1, 10, None),
        ("pat_j", 3, -5, None),
        ("pat_a", 2, None, 4),
        ("pat_d", 1, 1, 2),
        ("pat_g", 3, None, None),
        ("pat_b", 0, 30, None),
    ]
    tokens = [
        entities.api_token(
            token_id=token_id,
            user_id=owner.user_id,
            created_at_ms=T0 + created,
            expires_at_ms=None if expires is None else T0 + expires,
            revoked_at_ms=None if revoked is None else T0 + revoked,
        )
        for token_id, created, expires, revoked in specs
    ]
    foreign = [entities.api_token(user_id=stranger.user_id, created_at_ms=T0 + i) for i in range(3)]
    adapter.add(*tokens, *foreign)
    return owner, tokens


def test_api_tokens_list_for_user_orders_by_created_then_id_descending(adapter: Adapter) -> None:
    """Every token of the user (revoked and expired ones too), (created_at, id) descending."""
    owner, tokens = _history(adapter)
    got = adapter.read(lambda uow: uow.api_tokens.list_for_user(owner.user_id, None, 100))
    assert [t.token_id for t in got] == [t.token_id for t in expected_page(tokens, _key, None, 100)]
    for token in got:
        assert_identical(token, next(t for t in tokens if t.token_id == token.token_id))
    assert list(adapter.read(lambda uow: uow.api_tokens.list_for_user("usr_none", None, 9))) == []


def test_api_tokens_list_for_user_is_strictly_after_the_keyset(adapter: Adapter) -> None:
    """For every position and limit the page is exactly the reference page."""
    owner, tokens = _history(adapter)
    positions: list[CreatedKey] = [_key(t) for t in tokens]
    positions += [(at, s) for at in range(T0 - 1, T0 + 5) for s in ("", "pat_c5", "pat_zz")]
    for after, limit in itertools.product(positions, (1, 2, 5)):
        got = adapter.read(
            lambda uow, a=after, n=limit: uow.api_tokens.list_for_user(owner.user_id, a, n)
        )
        want = expected_page(tokens, _key, after, limit)
        assert [t.token_id for t in got] == [t.token_id for t in want], (after, limit)


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8])
def test_api_tokens_list_for_user_pages_yield_each_token_once(adapter: Adapter, limit: int) -> None:
    """Walking pages by the last key yields every token of the user exactly once, in order."""
    owner, tokens = _history(adapter)

    def fetch(after: CreatedKey | None, n: int) -> list[ApiToken]:
        return list(adapter.read(lambda uow: uow.api_tokens.list_for_user(owner.user_id, after, n)))

    walked = walk_pages(fetch, _key, limit)
    assert [t.token_id for t in walked] == [
        t.token_id for t in expected_page(tokens, _key, None, len(tokens))
    ]


def test_api_tokens_list_follows_updates(adapter: Adapter) -> None:
    """The list shows a token's stored revocation once it is committed."""
    owner = _owner(adapter)
    token = entities.api_token(user_id=owner.user_id)
    adapter.add(token)
    revoked = token.revoked(T0 + 1)
    adapter.write(lambda uow: uow.api_tokens.update(revoked, None))
    listed = adapter.read(lambda uow: uow.api_tokens.list_for_user(owner.user_id, None, 10))
    assert len(listed) == 1
    assert_identical(listed[0], revoked)


def test_api_tokens_rollback_leaves_nothing(adapter: Adapter) -> None:
    """An add and a revocation left without commit are both undone; the hash is free again."""
    owner = _owner(adapter)
    kept = entities.api_token(user_id=owner.user_id)
    adapter.add(kept)
    added = entities.api_token(user_id=owner.user_id, created_at_ms=T0 + 1)
    with adapter.uow() as uow:
        uow.api_tokens.add(added)
        assert uow.api_tokens.update(kept.revoked(T0 + 2), None)
        assert_identical(uow.api_tokens.get(added.token_id), added)  # visible inside
        assert len(uow.api_tokens.list_for_user(owner.user_id, None, 10)) == 2
    assert adapter.read(lambda uow: uow.api_tokens.get(added.token_id)) is None
    assert adapter.read(lambda uow: uow.api_tokens.get_by_hash(added.token_hash)) is None
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get(kept.token_id)), kept)
    listed = adapter.read(lambda uow: uow.api_tokens.list_for_user(owner.user_id, None, 10))
    assert [t.token_id for t in listed] == [kept.token_id]
    adapter.add(added)  # neither its id nor its hash is taken
    assert_identical(adapter.read(lambda uow: uow.api_tokens.get_by_hash(added.token_hash)), added)

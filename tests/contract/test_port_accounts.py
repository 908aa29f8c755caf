"""AccountRepository and SessionRepository on every storage adapter: round trips,
uniqueness of username and e-mail, compare-and-set password updates, session
touch, deletion per user and the expiry sweep, and rollback."""

from __future__ import annotations

import hashlib
import itertools

import attrs
import pytest

from contract import entities
from contract.entities import T0
from contract.harness import Adapter
from fleetprompt_core.base.errors import DuplicateError
from fleetprompt_core.domain.accounts import Account, BrowserSession
from fleetprompt_core.domain.model import User
from fleetprompt_core.ports import UniqueConstraint, UnitOfWork

_serial = itertools.count()


def _user(adapter: Adapter) -> User:
    user = entities.user()
    adapter.add(user)
    return user


def _account(user: User, **overrides: object) -> Account:
    n = next(_serial)
    value = Account(
        user_id=user.user_id,
        username=f"user{n}",
        email=f"user{n}@example.com",
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$" + "h" * 43,
        password_changed_at_ms=T0,
        created_at_ms=T0,
        updated_at_ms=T0,
    )
    return attrs.evolve(value, **overrides)


def _session(user: User, **overrides: object) -> BrowserSession:
    value = BrowserSession(
        session_hash=hashlib.sha256(str(next(_serial)).encode()).hexdigest(),
        user_id=user.user_id,
        created_at_ms=T0,
        last_seen_at_ms=T0,
        expires_at_ms=T0 + 1_000_000,
    )
    return attrs.evolve(value, **overrides)


def _add(adapter: Adapter, *items: Account | BrowserSession) -> None:
    def write(uow: UnitOfWork) -> None:
        for item in items:
            if isinstance(item, Account):
                uow.accounts.add(item)
            else:
                uow.sessions.add(item)

    adapter.write(write)


def test_accounts_round_trip_by_user_username_and_email(adapter: Adapter) -> None:
    """A stored account reads back equal by user id, username and e-mail; an account
    without e-mail too; unknown keys (and NUL) read as None."""
    one, two = _user(adapter), _user(adapter)
    account = _account(one)
    bare = _account(two, email=None)
    _add(adapter, account, bare)
    assert adapter.read(lambda uow: uow.accounts.get(one.user_id)) == account
    assert adapter.read(lambda uow: uow.accounts.get_by_username(account.username)) == account
    assert adapter.read(lambda uow: uow.accounts.get_by_email(str(account.email))) == account
    assert adapter.read(lambda uow: uow.accounts.get(two.user_id)) == bare
    for probe in ("nobody", account.username.upper(), account.username + "\x00"):
        assert adapter.read(lambda uow, p=probe: uow.accounts.get_by_username(p)) is None


@pytest.mark.parametrize(
    ("field", "constraint"),
    [
        ("user_id", UniqueConstraint.PRIMARY_KEY),
        ("username", UniqueConstraint.ACCOUNT_USERNAME),
        ("email", UniqueConstraint.ACCOUNT_EMAIL),
    ],
)
def test_accounts_are_unique_by_user_username_and_email(
    adapter: Adapter, field: str, constraint: UniqueConstraint
) -> None:
    """A second account repeating one unique value is DuplicateError naming it."""
    one, two = _user(adapter), _user(adapter)
    first = _account(one)
    second = _account(two)
    second = attrs.evolve(second, **{field: getattr(first, field)})
    _add(adapter, first)
    with pytest.raises(DuplicateError) as raised:
        _add(adapter, second)
    assert raised.value.constraint == constraint
    assert adapter.read(lambda uow: uow.accounts.get(one.user_id)) == first


def test_accounts_without_email_do_not_collide(adapter: Adapter) -> None:
    """Several accounts may have no e-mail address."""
    users = [_user(adapter) for _ in range(3)]
    _add(adapter, *(_account(user, email=None) for user in users))
    assert all(adapter.read(lambda uow, u=u: uow.accounts.get(u.user_id)) for u in users)


def test_account_password_update_is_compare_and_set(adapter: Adapter) -> None:
    """update stores a new hash only while the stored one is the expected one."""
    user = _user(adapter)
    account = _account(user)
    _add(adapter, account)
    changed = account.with_password_hash("$argon2id$new", T0 + 5, changed=True)
    assert adapter.write(lambda uow: uow.accounts.update(changed, account.password_hash))
    assert adapter.read(lambda uow: uow.accounts.get(user.user_id)) == changed
    stale = account.with_password_hash("$argon2id$stale", T0 + 6, changed=True)
    assert not adapter.write(lambda uow: uow.accounts.update(stale, account.password_hash))
    assert adapter.read(lambda uow: uow.accounts.get(user.user_id)) == changed


def test_sessions_round_trip_touch_and_delete(adapter: Adapter) -> None:
    """A session reads back by hash; touch only moves forward; delete says whether it
    removed one; a duplicate hash is DuplicateError(PRIMARY_KEY)."""
    user = _user(adapter)
    session = _session(user)
    _add(adapter, session)
    assert adapter.read(lambda uow: uow.sessions.get(session.session_hash)) == session
    with pytest.raises(DuplicateError) as raised:
        _add(adapter, session)
    assert raised.value.constraint == UniqueConstraint.PRIMARY_KEY
    adapter.write(lambda uow: uow.sessions.touch(session.session_hash, T0 + 50))
    adapter.write(lambda uow: uow.sessions.touch(session.session_hash, T0 + 10))
    assert adapter.read(lambda uow: uow.sessions.get(session.session_hash)) == session.seen(T0 + 50)
    assert adapter.write(lambda uow: uow.sessions.delete(session.session_hash))
    assert not adapter.write(lambda uow: uow.sessions.delete(session.session_hash))
    assert not adapter.write(lambda uow: uow.sessions.delete("x\x00"))
    assert adapter.read(lambda uow: uow.sessions.get(session.session_hash)) is None


def test_sessions_end_per_user_and_expired_ones_are_swept(adapter: Adapter) -> None:
    """delete_for_user ends exactly that user's sessions; delete_expired drops the ones
    past their end or idle too long, up to the limit; rollback keeps them all."""
    alice, bob = _user(adapter), _user(adapter)
    mine = [_session(alice) for _ in range(3)]
    theirs = _session(bob)
    _add(adapter, *mine, theirs)

    def end_and_roll_back(uow: UnitOfWork) -> None:
        assert uow.sessions.delete_for_user(alice.user_id) == 3

    adapter.read(end_and_roll_back)
    assert adapter.read(lambda uow: uow.sessions.get(mine[0].session_hash)) is not None
    assert adapter.write(lambda uow: uow.sessions.delete_for_user(alice.user_id)) == 3
    assert adapter.read(lambda uow: uow.sessions.get(theirs.session_hash)) == theirs

    live = _session(bob, last_seen_at_ms=T0 + 900, expires_at_ms=T0 + 5_000)
    idle = _session(bob, last_seen_at_ms=T0, expires_at_ms=T0 + 5_000)
    ended = _session(bob, last_seen_at_ms=T0 + 999, expires_at_ms=T0 + 1_000)
    _add(adapter, live, idle, ended)
    now, idle_ms = T0 + 1_000, 500
    assert adapter.write(lambda uow: uow.sessions.delete_expired(now, idle_ms, 1)) == 1
    assert adapter.write(lambda uow: uow.sessions.delete_expired(now, idle_ms, 100)) == 2
    remaining = {
        s.session_hash
        for s in (theirs, live, idle, ended)
        if adapter.read(lambda uow, s=s: uow.sessions.get(s.session_hash)) is not None
    }
    assert remaining == {live.session_hash}

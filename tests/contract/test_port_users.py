"""UserRepository and PublisherProfileRepository: round trips, uniqueness, updates."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from contract import entities
from contract.harness import Adapter, assert_identical
from fleetprompt_core.base.enums import Role, VerificationStatus
from fleetprompt_core.base.errors import DuplicateError
from fleetprompt_core.domain.model import PublisherProfile, User, Verification
from fleetprompt_core.policies.markdown import rendered
from fleetprompt_core.ports import UniqueConstraint, UnitOfWork

USER_BUILDERS = {
    "typical": entities.user,
    "at_limits": entities.user_at_limits,
    "minimal": entities.user_minimal,
}


@pytest.mark.parametrize("builder", USER_BUILDERS.values(), ids=list(USER_BUILDERS))
def test_users_add_get_round_trip(adapter: Adapter, builder: Callable[[], User]) -> None:
    """A stored user reads back identical by id and by external id."""
    user = builder()
    adapter.add(user)
    assert_identical(adapter.read(lambda uow: uow.users.get(user.user_id)), user)
    assert_identical(adapter.read(lambda uow: uow.users.get_by_external_id(user.external_id)), user)


def test_users_get_unknown_is_none(adapter: Adapter) -> None:
    """Unknown ids and external ids read as None."""
    adapter.add(entities.user(external_id="known"))
    assert adapter.read(lambda uow: uow.users.get("usr_unknown")) is None
    assert adapter.read(lambda uow: uow.users.get_by_external_id("unknown")) is None
    assert adapter.read(lambda uow: uow.users.get_by_external_id("KNOWN")) is None


def test_users_get_many_returns_the_known_users_by_id(adapter: Adapter) -> None:
    """``get_many`` reads several users at once; unknown ids (and a NUL) are left out."""
    first, second, third = entities.user(), entities.user(), entities.user()
    adapter.add(first, second, third)

    got = adapter.read(
        lambda uow: uow.users.get_many(
            [first.user_id, third.user_id, "usr_unknown", first.user_id, "usr\x00"]
        )
    )

    assert set(got) == {first.user_id, third.user_id}
    assert_identical(got[first.user_id], first)
    assert_identical(got[third.user_id], third)
    assert adapter.read(lambda uow: uow.users.get_many([])) == {}


def test_users_external_id_is_unique(adapter: Adapter) -> None:
    """A second user with a stored external id is DuplicateError(USER_EXTERNAL_ID)."""
    first = entities.user(external_id="idp|same")
    adapter.add(first)
    with pytest.raises(DuplicateError) as raised:
        adapter.add(entities.user(external_id="idp|same"))
    assert raised.value.constraint == UniqueConstraint.USER_EXTERNAL_ID
    assert_identical(adapter.read(lambda uow: uow.users.get_by_external_id("idp|same")), first)


def test_users_external_id_is_unique_within_one_unit_of_work(adapter: Adapter) -> None:
    """The uniqueness rule also holds between two adds of the same unit of work."""
    with pytest.raises(DuplicateError) as raised:
        adapter.add(entities.user(external_id="idp|twice"), entities.user(external_id="idp|twice"))
    assert raised.value.constraint == UniqueConstraint.USER_EXTERNAL_ID
    assert adapter.read(lambda uow: uow.users.get_by_external_id("idp|twice")) is None


def test_users_external_id_is_case_and_unicode_exact(adapter: Adapter) -> None:
    """External ids differing only in case or normalisation are distinct users."""
    users = [
        entities.user(external_id="idp|Alice"),
        entities.user(external_id="idp|alice"),
        entities.user(external_id="idp|\u00e9"),  # é precomposed
        entities.user(external_id="idp|e\u0301"),  # e + combining acute
    ]
    adapter.add(*users)
    for user in users:
        got = adapter.read(lambda uow, u=user: uow.users.get_by_external_id(u.external_id))
        assert_identical(got, user)


def test_users_primary_key_is_unique(adapter: Adapter) -> None:
    """A second user with a stored user id is DuplicateError(PRIMARY_KEY)."""
    first = entities.user()
    adapter.add(first)
    with pytest.raises(DuplicateError) as raised:
        adapter.add(entities.user(user_id=first.user_id, external_id="idp|other"))
    assert raised.value.constraint == UniqueConstraint.PRIMARY_KEY
    assert_identical(adapter.read(lambda uow: uow.users.get(first.user_id)), first)
    assert adapter.read(lambda uow: uow.users.get_by_external_id("idp|other")) is None


def test_users_update_replaces_the_stored_user(adapter: Adapter) -> None:
    """update stores every changed field; both lookups see the new value."""
    user = entities.user(roles=frozenset({Role.ADMIN}))
    adapter.add(user)
    changed = attrs.evolve(
        user,
        display_name="\U0001f98a New name",
        email=None,
        roles=frozenset({Role.PUBLISHER}),
        updated_at_ms=user.updated_at_ms + 5,
    )
    adapter.write(lambda uow: uow.users.update(changed))
    assert_identical(adapter.read(lambda uow: uow.users.get(user.user_id)), changed)
    assert_identical(
        adapter.read(lambda uow: uow.users.get_by_external_id(user.external_id)), changed
    )


def test_users_update_to_no_roles_round_trips(adapter: Adapter) -> None:
    """Removing every role stores an empty frozenset, not a stale role set."""
    user = entities.user(roles=frozenset({Role.ADMIN, Role.PUBLISHER}))
    adapter.add(user)
    changed = user.with_roles(frozenset(), user.updated_at_ms + 1)
    adapter.write(lambda uow: uow.users.update(changed))
    assert_identical(adapter.read(lambda uow: uow.users.get(user.user_id)), changed)


PROFILE_BUILDERS = {
    "typical": entities.profile,
    "at_limits": entities.profile_at_limits,
    "minimal": entities.profile_minimal,
}


def _profile_owner(adapter: Adapter) -> User:
    owner = entities.user(roles=frozenset({Role.PUBLISHER}))
    adapter.add(owner)
    return owner


@pytest.mark.parametrize("builder", PROFILE_BUILDERS.values(), ids=list(PROFILE_BUILDERS))
def test_profiles_save_get_round_trip(
    adapter: Adapter, builder: Callable[..., PublisherProfile]
) -> None:
    """A saved profile reads back identical; an unknown publisher id reads as None."""
    owner = _profile_owner(adapter)
    profile = builder(publisher_id=owner.user_id)
    adapter.write(lambda uow: uow.profiles.save(profile))
    assert_identical(adapter.read(lambda uow: uow.profiles.get(owner.user_id)), profile)
    assert adapter.read(lambda uow: uow.profiles.get("usr_unknown")) is None


def test_profiles_save_replaces_the_existing_profile(adapter: Adapter) -> None:
    """Saving again for the same publisher replaces the profile (an upsert, no duplicate)."""
    owner = _profile_owner(adapter)
    first = entities.profile_at_limits(publisher_id=owner.user_id)
    adapter.write(lambda uow: uow.profiles.save(first))
    second = attrs.evolve(
        first,
        display_name="Renamed",
        bio=rendered("new *bio*"),
        verification=Verification(status=VerificationStatus.FAILED, checked_at_ms=7, reason=None),
        updated_at_ms=first.updated_at_ms + 1,
    )
    adapter.write(lambda uow: uow.profiles.save(second))
    assert_identical(adapter.read(lambda uow: uow.profiles.get(owner.user_id)), second)
    got = adapter.read(lambda uow: uow.profiles.get_many([owner.user_id]))
    assert list(got) == [owner.user_id]


def test_profiles_get_many_returns_known_ids_only(adapter: Adapter) -> None:
    """get_many maps each known id to its profile and leaves unknown ids out."""
    owners = [_profile_owner(adapter) for _ in range(3)]
    profiles = [
        entities.profile(publisher_id=o.user_id, display_name=f"P{i}") for i, o in enumerate(owners)
    ]

    def save_all(uow: UnitOfWork) -> None:
        for profile in profiles:
            uow.profiles.save(profile)

    adapter.write(save_all)
    wanted = [profiles[2].publisher_id, "usr_unknown", profiles[0].publisher_id]
    got = adapter.read(lambda uow: dict(uow.profiles.get_many(iter(wanted))))
    assert set(got) == {profiles[0].publisher_id, profiles[2].publisher_id}
    assert_identical(got[profiles[0].publisher_id], profiles[0])
    assert_identical(got[profiles[2].publisher_id], profiles[2])


def test_profiles_get_many_of_nothing_is_empty(adapter: Adapter) -> None:
    """get_many with no ids (or duplicate ids) answers without error."""
    owner = _profile_owner(adapter)
    profile = entities.profile(publisher_id=owner.user_id)
    adapter.write(lambda uow: uow.profiles.save(profile))
    assert dict(adapter.read(lambda uow: uow.profiles.get_many([]))) == {}
    twice = adapter.read(lambda uow: dict(uow.profiles.get_many([owner.user_id, owner.user_id])))
    assert list(twice) == [owner.user_id]
    assert_identical(twice[owner.user_id], profile)


def test_users_list_page_is_ascending_by_id_and_resumes_after_a_key(adapter: Adapter) -> None:
    """Operators list every user: pages in ``user_id`` order, each strictly after the last."""
    users = [entities.user(user_id=f"usr_{n:03d}") for n in (5, 1, 3, 2, 4)]
    for user in users:
        adapter.add(user)
    ordered = sorted(users, key=lambda u: u.user_id)
    assert adapter.read(lambda uow: list(uow.users.list_page(None, 10))) == ordered
    assert adapter.read(lambda uow: list(uow.users.list_page(None, 2))) == ordered[:2]
    after = ordered[1].user_id
    assert adapter.read(lambda uow: list(uow.users.list_page(after, 2))) == ordered[2:4]
    last = ordered[-1].user_id
    assert adapter.read(lambda uow: list(uow.users.list_page(last, 2))) == []

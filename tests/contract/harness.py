"""Machinery of the port contract suite: the adapter under test, strict equality,
keyset walks and threads."""

from __future__ import annotations

import contextlib
import enum
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from fleetprompt_core.domain.model import (
    ApiToken,
    AuditEvent,
    IdempotencyRecord,
    InstallIntent,
    InstallToken,
    Listing,
    PublisherProfile,
    Release,
    User,
)
from fleetprompt_core.ports import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "Adapter",
    "Opener",
    "assert_identical",
    "expected_page",
    "run_threads",
    "store",
    "walk_pages",
]

T = TypeVar("T")
K = TypeVar("K")

#: Opens a fresh, empty store and yields a unit-of-work factory over it; closes it after.
Opener = Callable[[], contextlib.AbstractContextManager[UnitOfWorkFactory]]

# Parents before children, so that an adapter with foreign keys accepts one batch.
_STORE_ORDER: tuple[type, ...] = (
    User,
    PublisherProfile,
    Listing,
    Release,
    InstallIntent,
    InstallToken,
    ApiToken,
    IdempotencyRecord,
    AuditEvent,
)


def store(uow: UnitOfWork, entity: object) -> None:
    """Insert ``entity`` through the repository of its type."""
    if isinstance(entity, User):
        uow.users.add(entity)
    elif isinstance(entity, PublisherProfile):
        uow.profiles.save(entity)
    elif isinstance(entity, Listing):
        uow.listings.add(entity)
    elif isinstance(entity, Release):
        uow.releases.add(entity)
    elif isinstance(entity, InstallIntent):
        uow.intents.add(entity)
    elif isinstance(entity, InstallToken):
        uow.tokens.add(entity)
    elif isinstance(entity, ApiToken):
        uow.api_tokens.add(entity)
    elif isinstance(entity, IdempotencyRecord):
        uow.idempotency.add(entity)
    elif isinstance(entity, AuditEvent):
        uow.audit.append(entity)
    else:  # pragma: no cover - a mistake in a test
        raise TypeError(f"no repository stores {type(entity).__name__}")


@attrs.frozen
class Adapter:
    """The storage adapter under test: ``uow()`` opens a unit of work over its store."""

    name: str
    uow: UnitOfWorkFactory
    opener: Opener = attrs.field(repr=False)

    def read(self, action: Callable[[UnitOfWork], T]) -> T:
        """Run ``action`` in a unit of work that is left without commit."""
        with self.uow() as uow:
            return action(uow)

    def write(self, action: Callable[[UnitOfWork], T]) -> T:
        """Run ``action`` in a unit of work and commit it."""
        with self.uow() as uow:
            result = action(uow)
            uow.commit()
        return result

    def add(self, *entities: object) -> None:
        """Insert ``entities`` (parents first) in one committed unit of work."""
        ordered = sorted(entities, key=lambda e: _STORE_ORDER.index(type(e)))

        def insert(uow: UnitOfWork) -> None:
            for entity in ordered:
                store(uow, entity)

        self.write(insert)

    @contextlib.contextmanager
    def fresh(self) -> Iterator[Adapter]:
        """Another instance of the same adapter over a new empty store (for hypothesis)."""
        with self.opener() as factory:
            yield Adapter(self.name, factory, self.opener)


# --------------------------------------------------------------------------- equality


def _check(got: Any, expected: Any, path: str) -> None:
    if attrs.has(type(expected)):
        assert type(got) is type(expected), f"{path}: {type(got)!r} != {type(expected)!r}"
        for field in attrs.fields(type(expected)):
            _check(getattr(got, field.name), getattr(expected, field.name), f"{path}.{field.name}")
        return
    if isinstance(expected, Mapping):
        assert isinstance(got, Mapping), f"{path}: {type(got)!r} is not a mapping"
        assert set(got) == set(expected), f"{path}: keys {sorted(got)} != {sorted(expected)}"
        for key in expected:
            _check(got[key], expected[key], f"{path}[{key!r}]")
        return
    if isinstance(expected, frozenset):
        assert type(got) is frozenset, f"{path}: {type(got)!r} is not a frozenset"
        assert got == expected, f"{path}: {got!r} != {expected!r}"
        for item in got:
            match = next(e for e in expected if e == item)
            assert type(item) is type(match), f"{path}: element {item!r} has type {type(item)!r}"
        return
    if isinstance(expected, tuple):
        assert type(got) is tuple, f"{path}: {type(got)!r} is not a tuple"
        assert len(got) == len(expected), f"{path}: length {len(got)} != {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _check(g, e, f"{path}[{i}]")
        return
    # Scalars: the exact type matters (an enum member, not its string; a bool, not 1).
    assert type(got) is type(expected), f"{path}: {got!r} ({type(got)!r}) != {expected!r}"
    assert got == expected, f"{path}: {got!r} != {expected!r}"
    if isinstance(expected, enum.Enum):
        assert got is expected, f"{path}: {got!r} is not {expected!r}"


def assert_identical(got: object, expected: object) -> None:
    """``got == expected`` and every field has the same type (enums, bools, tuples)."""
    assert got == expected
    _check(got, expected, type(expected).__name__)


# --------------------------------------------------------------------------- keyset pages


def expected_page(
    items: Iterable[T], key: Callable[[T], K], after: K | None, limit: int
) -> list[T]:
    """The reference answer of a keyset list: ``key`` descending, strictly after ``after``."""
    ordered = sorted(items, key=key, reverse=True)  # type: ignore[arg-type]
    if after is not None:
        ordered = [item for item in ordered if key(item) < after]  # type: ignore[operator]
    return ordered[:limit]


def walk_pages(
    fetch: Callable[[K | None, int], Sequence[T]], key: Callable[[T], K], limit: int
) -> list[T]:
    """Walk every page, feeding the last item's key back; check each page's size."""
    seen: list[T] = []
    after: K | None = None
    for _ in range(10_000):
        page = list(fetch(after, limit))
        assert len(page) <= limit
        if not page:
            return seen
        seen.extend(page)
        if len(page) < limit:
            assert list(fetch(key(page[-1]), limit)) == [], "a short page must be the last"
            return seen
        after = key(page[-1])
    raise AssertionError("pagination did not terminate")


# --------------------------------------------------------------------------- threads


def run_threads(count: int, work: Callable[[int], T], timeout_s: float = 30.0) -> list[T]:
    """Run ``work(i)`` for ``i < count`` in as many threads; re-raise the first error."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            results[i] = work(i)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s)
    assert not any(thread.is_alive() for thread in threads), "a thread hung (deadlock?)"
    if errors:
        raise errors[0]
    return results

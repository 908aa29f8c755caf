"""Machinery of the differential test (``test_sql_differential.py``): one FleetPrompt per
backend, made deterministic, and the comparison of what they answer.

Every backend gets its own :class:`ManualClock` (advanced identically by the
test), its own :class:`SequentialIds` and :class:`SequentialTokens` (same
sequence from the same calls) and the same cursor key, so two correct
backends give equal answers to equal calls: the same ids, timestamps, raw
tokens, cursors and error messages.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import sqlalchemy as sa

from contract.harness import assert_identical
from fleetprompt_adapters import memory, sql
from fleetprompt_adapters.memory import ManualClock
from fleetprompt_adapters.search.follower import SearchFollower
from fleetprompt_adapters.system import Sha256TokenHasher
from fleetprompt_core import CoreSettings, CursorCodec, DomainError, FleetPrompt, Page, Runtime
from fleetprompt_core.policies.tokens import generate_token
from support import CURSOR_KEY, IMAGE_HOST

__all__ = [
    "Backend",
    "Observed",
    "SequentialIds",
    "SequentialTokens",
    "agree",
    "first_difference",
    "memory_backend",
    "observe",
    "sql_backend",
    "walk",
]

_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Pages a walk may take before it is declared endless (test catalogues are far smaller).
MAX_PAGES: Final = 200
#: How much of each answer a failure message shows.
_SHOWN: Final = 1_500


class SequentialIds:
    """``prefix_`` + 26 Crockford characters of ``(clock ms << 80) | n``: ULID-shaped.

    ``n`` counts the ids this generator made, so ids sort by creation (as the
    port requires) and equal call sequences give equal ids on every backend.
    """

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self._count = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        value = (self._clock.now_ms() << 80) | next(self._count)
        chars = []
        for _ in range(26):
            value, digit = divmod(value, 32)
            chars.append(_CROCKFORD[digit])
        return f"{prefix}_{''.join(reversed(chars))}"


class SequentialTokens:
    """Well-formed tokens (valid checksum) whose 256-bit body is a hash of a counter."""

    def __init__(self) -> None:
        self._count = itertools.count(1)

    def new_token(self, prefix: str) -> str:
        entropy = hashlib.sha256(f"differential-{next(self._count)}".encode()).digest()
        return generate_token(prefix, entropy=entropy)


@attrs.define
class Backend:
    """One FleetPrompt over one store; ``sql_store`` is the SQL adapter's store, if any."""

    name: str
    fp: FleetPrompt
    clock: ManualClock
    sql_store: sql.SqlStore | None = None


def _runtime(uow: Any, clock: ManualClock) -> Runtime:
    return Runtime(
        uow=uow,
        clock=clock,
        ids=SequentialIds(clock),
        tokens=SequentialTokens(),
        hasher=Sha256TokenHasher(),
        cursors=CursorCodec(CURSOR_KEY),
        settings=CoreSettings(image_hosts=frozenset({IMAGE_HOST})),
    )


def memory_backend() -> Backend:
    """The in-memory adapter over a new store."""
    clock = ManualClock()
    return Backend("memory", FleetPrompt(_runtime(memory.MemoryStore().unit_of_work, clock)), clock)


def sql_backend(name: str, engine: sa.Engine) -> Backend:
    """The SQL adapter over ``engine`` with its search engine, as ``sql.bootstrap`` composes
    it (the caller empties the database first)."""
    clock = ManualClock()
    store = sql.SqlStore(engine, search_engine=SearchFollower())
    return Backend(name, FleetPrompt(_runtime(store.unit_of_work, clock)), clock, store)


# --------------------------------------------------------------------------- observing


@attrs.frozen
class Observed:
    """What a caller saw: the value, or the domain error as a client sees it."""

    value: Any = None
    error: tuple[object, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _error_shape(error: DomainError) -> tuple[object, ...]:
    return (type(error).__name__, error.code, error.message, error.hint, error.fields)


def observe(what: str, backend: str, action: Callable[[], Any]) -> Observed:
    """Run ``action``: its value or its domain error. Anything else fails the test at once
    (a use case lets only domain errors escape)."""
    try:
        return Observed(action())
    except DomainError as error:
        return Observed(error=_error_shape(error))
    except Exception as error:
        raise AssertionError(
            f"{what} on {backend} raised {type(error).__name__}: {error}"
        ) from error


def walk(fetch: Callable[[str | None], Page[Any]]) -> tuple[Observed, ...]:
    """Every page of a keyset listing from its start (``fetch(cursor)``): one observation
    per page, the last one an error if a page failed."""
    pages: list[Observed] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        try:
            page = fetch(cursor)
        except DomainError as error:
            pages.append(Observed(error=_error_shape(error)))
            return tuple(pages)
        pages.append(Observed(page))
        if page.next_cursor is None:
            return tuple(pages)
        cursor = page.next_cursor
    raise AssertionError(f"the walk did not end after {MAX_PAGES} pages")


# --------------------------------------------------------------------------- comparing


def first_difference(got: Any, expected: Any, path: str = "") -> str | None:
    """Where ``got`` first differs from ``expected`` (values or exact types), or ``None``."""
    if type(got) is not type(expected):
        return f"{path or '.'}: {type(got).__name__} {_short(got)} != {type(expected).__name__}"
    if attrs.has(type(expected)):
        for field in attrs.fields(type(expected)):
            found = first_difference(
                getattr(got, field.name), getattr(expected, field.name), f"{path}.{field.name}"
            )
            if found:
                return found
        return None
    if isinstance(expected, Mapping):
        if set(got) != set(expected):
            return f"{path}: keys {sorted(map(str, got))} != {sorted(map(str, expected))}"
        for key in expected:
            found = first_difference(got[key], expected[key], f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(expected, tuple | list):
        for index, (g, e) in enumerate(zip(got, expected, strict=False)):
            found = first_difference(g, e, f"{path}[{index}]")
            if found:
                return found
        if len(got) != len(expected):
            return f"{path}: {len(got)} items != {len(expected)} items"
        return None
    if got != expected or (isinstance(expected, enum.Enum) and got is not expected):
        return f"{path or '.'}: {got!r} != {expected!r}"
    return None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def agree(what: str, answers: Mapping[str, Any], reference: str = "memory") -> None:
    """Every backend's answer is identical to the ``reference`` backend's (exact types too)."""
    expected = answers[reference]
    for name, got in answers.items():
        if name == reference:
            continue
        where = first_difference(got, expected)
        if where is None:
            try:
                assert_identical(got, expected)
            except AssertionError:
                where = "(equal field by field, yet not identical)"
        if where is not None:
            raise AssertionError(
                f"{what}: {name} disagrees with {reference} at {where}\n"
                f"  {reference}: {_short(expected)}\n  {name}: {_short(got)}"
            )

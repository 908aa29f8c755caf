"""Keyset pages for every list use case: parameters, cursor scope, next cursor."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TypeVar, cast

import attrs

from fleetprompt_core.commands.parsers import parse_cursor, parse_limit
from fleetprompt_core.policies.pagination import Page, Position
from fleetprompt_core.policies.validation import Problems, Reader
from fleetprompt_core.ports import CreatedKey
from fleetprompt_core.services.runtime import Runtime

__all__ = ["CREATED_SHAPE", "PageRequest", "page_request", "paginate"]

T = TypeVar("T")

#: The shape of a ``(timestamp, id)`` keyset position.
CREATED_SHAPE = (int, str)


@attrs.frozen
class PageRequest:
    """A validated ``cursor``/``limit`` pair plus the reader for the other parameters."""

    reader: Reader
    problems: Problems
    cursor: str | None
    limit: int

    def after(
        self, rt: Runtime, scope: str, shape: Sequence[type] = CREATED_SHAPE
    ) -> CreatedKey | None:
        """The keyset position in the cursor (``VALIDATION_FAILED`` if it is not this scope's)."""
        if self.cursor is None:
            return None
        return cast(CreatedKey, rt.cursors.decode(scope, self.cursor, shape))


def page_request(params: Mapping[str, object] | None, *filters: str) -> PageRequest:
    """Start reading list parameters: ``cursor``, ``limit`` and the allowed ``filters``.

    The caller reads its filters from ``.reader`` and then calls
    ``.problems.raise_if_any()``.
    """
    params = params or {}
    problems = Problems()
    allowed: Collection[str] = (*filters, "cursor", "limit")
    reader = Reader(params, problems, allowed=allowed)
    return PageRequest(
        reader=reader,
        problems=problems,
        cursor=parse_cursor(reader.raw("cursor"), problems),
        limit=parse_limit(reader.raw("limit"), problems),
    )


def paginate(
    rt: Runtime, scope: str, rows: Sequence[T], limit: int, key: Callable[[T], Position]
) -> Page[T]:
    """A page of ``rows`` (fetched with ``limit + 1``) and the cursor to the next one."""
    items = tuple(rows[:limit])
    next_cursor = rt.cursors.encode(scope, key(items[-1])) if len(rows) > limit else None
    return Page(items, next_cursor)

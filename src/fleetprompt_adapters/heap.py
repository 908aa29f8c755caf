"""Giving the C heap's free memory back to the operating system (glibc's ``malloc_trim``).

glibc keeps memory that ``free`` returned (SQLite page caches of closed connections,
response bodies, a search index build's buffers) resident in its arenas until asked
to return it; ``malloc_trim(0)`` hands every whole free page of every arena back. On
other C libraries (musl, macOS) this module does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable

__all__ = ["trim_heap"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (``None`` elsewhere: musl, macOS)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def trim_heap() -> bool:
    """Return the heap's free pages to the system; ``False`` where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True

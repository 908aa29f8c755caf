"""Each server process gives its C heap's free memory back every so often (ADR 0041).

A worker frees memory all day: the page caches of SQLite connections the pool
closes, expired and evicted response bodies, the temporaries of every request.
glibc keeps what ``free`` returned resident (fragmented across its per-thread
arenas) until asked; :class:`HeapTrimmer` asks every :data:`TRIM_INTERVAL_S`, in
a worker thread, so the resident set follows what the process holds rather
than its high-water mark.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

from anyio import to_thread

__all__ = ["TRIM_INTERVAL_S", "HeapTrimmer"]

#: How often a process returns its free heap (a pass costs a few milliseconds).
TRIM_INTERVAL_S: Final = 10.0


class HeapTrimmer:
    """Calls ``trim`` (``fleetprompt_adapters.heap.trim_heap``) every ``interval_s``."""

    def __init__(self, trim: Callable[[], bool], interval_s: float = TRIM_INTERVAL_S) -> None:
        self._trim = trim
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(self._stopping))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and self._stopping is not None:
            self._stopping.set()
            await task

    async def _run(self, stopping: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._interval_s)
            if stopping.is_set():
                return
            if not await to_thread.run_sync(self._trim):
                return  # not glibc: nothing to ask

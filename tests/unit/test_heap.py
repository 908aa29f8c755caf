"""A server process returns its free C heap to the system now and then (ADR 0041)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from fleetprompt_adapters.heap import trim_heap
from fleetprompt_http.heap import HeapTrimmer


def test_the_trimmer_asks_until_stopped() -> None:
    """Every interval one trim, in a worker thread; ``stop`` ends the task."""
    calls: list[str] = []

    async def scenario() -> None:
        enough = asyncio.Event()
        loop = asyncio.get_running_loop()

        def trim() -> bool:
            calls.append("trim")
            if len(calls) == 3:
                loop.call_soon_threadsafe(enough.set)
            return True

        trimmer = HeapTrimmer(trim, interval_s=0.0)
        await trimmer.start()
        await enough.wait()
        await trimmer.stop()
        after = len(calls)
        await asyncio.sleep(0)
        assert len(calls) == after  # nothing runs once stopped

    asyncio.run(scenario())
    assert len(calls) >= 3


def test_the_trimmer_gives_up_where_the_heap_cannot_be_trimmed() -> None:
    """``trim`` answering ``False`` (not glibc) ends the task: it is not asked again."""
    calls: list[str] = []

    def trim() -> bool:
        calls.append("trim")
        return False

    async def scenario() -> None:
        trimmer = HeapTrimmer(trim, interval_s=0.0)
        await trimmer.start()
        assert trimmer._task is not None
        await trimmer._task  # ends by itself
        await trimmer.stop()

    asyncio.run(scenario())
    assert calls == ["trim"]


def test_stopping_a_trimmer_that_never_started_does_nothing() -> None:
    asyncio.run(HeapTrimmer(lambda: True).stop())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_heap_trims_on_glibc() -> None:
    """On glibc Linux the heap can be trimmed (musl would answer ``False``)."""
    import platform  # noqa: PLC0415

    libc, _ = platform.libc_ver()
    assert trim_heap() is (libc == "glibc")

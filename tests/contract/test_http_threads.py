"""The per-process thread pool of the HTTP adapter (ADR 0015): a cap, on every event loop;
and the use cases a route runs inline on the event loop instead (ADR 0036)."""

from __future__ import annotations

import asyncio
import threading
import time

import attrs
import pytest

from fleetprompt_core import Unavailable
from fleetprompt_http.app import open_services
from fleetprompt_http.handling import ThreadGate, run_use_case
from fleetprompt_http.settings import Settings


def _busy(gate: ThreadGate, jobs: int) -> int:
    """Run ``jobs`` blocking calls through ``gate`` at once; the most that ran together."""
    lock = threading.Lock()
    running = peak = 0

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    async def main() -> None:
        await asyncio.gather(*(gate.run(job) for _ in range(jobs)))

    asyncio.run(main())
    return peak


def test_thread_gate_runs_at_most_its_size_at_once() -> None:
    """Eight concurrent use cases through a gate of 2 never run more than 2 together."""
    assert _busy(ThreadGate(2), 8) == 2
    assert _busy(ThreadGate(1), 4) == 1


def test_thread_gate_serves_two_event_loops_at_once() -> None:
    """One app driven from two loops (test client and server) gets a working cap on each."""
    gate = ThreadGate(2)
    peaks: list[int] = []
    threads = [threading.Thread(target=lambda: peaks.append(_busy(gate, 6))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert peaks == [2, 2]


@pytest.mark.parametrize(("allowed", "on_loop"), [(True, True), (False, False)])
def test_an_inline_use_case_runs_on_the_event_loop_only_where_allowed(
    allowed: bool, on_loop: bool
) -> None:
    """ADR 0036: a use case a route marks ``inline`` runs on the loop's own thread when the
    process allows it (``Services.inline``: SQLite, memory), else in a worker thread; an
    unmarked one always goes to a thread."""
    storage, services = open_services(Settings(database_url="memory://"))
    services = attrs.evolve(services, inline=allowed)

    async def main() -> tuple[int, int, int]:
        marked = await run_use_case(services, threading.get_ident, inline=True)
        unmarked = await run_use_case(services, threading.get_ident)
        return threading.get_ident(), marked, unmarked

    try:
        loop_thread, marked, unmarked = asyncio.run(main())
    finally:
        storage.close()
    assert (marked == loop_thread) is on_loop
    assert unmarked != loop_thread


def test_an_inline_use_case_raises_like_a_threaded_one() -> None:
    """The core's error reaches the handler the same way on both paths (the envelope)."""
    storage, services = open_services(Settings(database_url="memory://"))

    def refuse() -> None:
        raise Unavailable("stalled")

    async def main(inline: bool) -> None:
        await run_use_case(attrs.evolve(services, inline=True), refuse, inline=inline)

    try:
        for inline in (True, False):
            with pytest.raises(Unavailable):
                asyncio.run(main(inline))
    finally:
        storage.close()

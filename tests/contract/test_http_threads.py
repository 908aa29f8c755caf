"""The per-process thread pool of the HTTP adapter (ADR 0015): a cap, on every event loop."""

from __future__ import annotations

import asyncio
import threading
import time

from fleetprompt_http.handling import ThreadGate


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

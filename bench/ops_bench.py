"""What the operability pieces cost per request (ADR 0026): the security headers, and
the request deadline around a use case.

Each row is compared with a baseline measured in the same run:

- ``SecurityHeaders.apply`` on a typical JSON response's headers, against copying
  the same header list (what the entry point did before);
- ``ThreadGate.run`` of a no-op with the request deadline, against the same gate
  without one (both hop to a worker thread).

Run: ``python bench/ops_bench.py [--repeat N]``; prints medians and p99s in
microseconds (a Markdown table for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import anyio

from fleetprompt_http.handling import ThreadGate
from fleetprompt_http.security_headers import SecurityHeaders

HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", b"1234"),
    (b"idempotent-replayed", b"true"),
]


class _Handler:
    opt: dict[str, Any] = {}  # noqa: RUF012 - a stand-in for a route handler


SCOPE = {"route_handler": _Handler()}


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99


def _time(function: Callable[[], object], repeat: int, batch: int = 100) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(batch):
            function()
        samples.append((time.perf_counter() - started) / batch * 1e6)
    return samples


def _gate_samples(gate: ThreadGate, repeat: int) -> list[float]:
    async def main() -> list[float]:
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            await gate.run(lambda: None)
            samples.append((time.perf_counter() - started) * 1e6)
        return samples

    return anyio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    headers = SecurityHeaders(image_hosts={"img.example.com"}, hsts_max_age_s=0)
    rows = [
        ("baseline: copy the header list", _time(lambda: list(HEADERS), args.repeat)),
        (
            "SecurityHeaders.apply (JSON, private)",
            _time(lambda: headers.apply(SCOPE, 200, HEADERS), args.repeat),
        ),
        ("baseline: ThreadGate.run, no deadline", _gate_samples(ThreadGate(4), args.repeat)),
        (
            "ThreadGate.run with a 15 s deadline",
            _gate_samples(ThreadGate(4, deadline_ms=15_000), args.repeat),
        ),
    ]
    print("| operation | median µs | p99 µs |")
    print("|---|---:|---:|")
    for name, samples in rows:
        median, p99 = _percentiles(samples)
        print(f"| {name} | {median:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()

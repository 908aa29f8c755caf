"""Start-up time of the ``fleetprompt`` command, one fresh process per run.

Prints median and p99 wall time per command (cases run round-robin) and, from the same run:
the floor (``python -c pass``) and the cost the command line used to pay
before every command (importing the whole server stack,
``fleetprompt_http.app``). Usage::

    python bench/cli_bench.py [--repeat 20]

Every command runs against a fresh migrated SQLite file in a temporary
directory. Numbers compare within one run on one machine; they are never
asserted in tests (tests/contract/test_cli.py pins the cause instead: ``--help``
and ``--version`` import no heavy module).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENTRY = "import sys; from fleetprompt_http.console import main; sys.argv[0] = 'fleetprompt'; main()"


def run(argv: list[str], env: dict[str, str]) -> None:
    subprocess.run(argv, env=env, check=True, capture_output=True)  # noqa: S603 - our own argv


def summary(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPROMPT_")}
        env["FLEETPROMPT_DATABASE_URL"] = f"sqlite:///{Path(tmp) / 'bench.db'}"
        command = [sys.executable, "-c", ENTRY]
        run([*command, "db", "upgrade"], env)
        run([*command, "users", "create", "ext-bench"], env)
        cases = [
            ("baseline: python -c pass", [sys.executable, "-c", "pass"]),
            (
                "baseline: import the server stack (fleetprompt_http.app)",
                [sys.executable, "-c", "import fleetprompt_http.app"],
            ),
            ("fleetprompt --version", [*command, "--version"]),
            ("fleetprompt --help", [*command, "--help"]),
            ("fleetprompt db current", [*command, "db", "current"]),
            ("fleetprompt tokens list ext-bench", [*command, "tokens", "list", "ext-bench"]),
            ("fleetprompt users create ext-bench", [*command, "users", "create", "ext-bench"]),
        ]
        print(f"CPython {platform.python_version()}, {platform.machine()}, {args.repeat} runs")
        print("| command | median ms | p99 ms |")
        print("|---|---:|---:|")
        # Round-robin, so that load from other processes falls on every case alike.
        samples: dict[str, list[float]] = {name: [] for name, _ in cases}
        for _ in range(args.repeat):
            for name, argv in cases:
                start = time.perf_counter()
                run(argv, env)
                samples[name].append((time.perf_counter() - start) * 1000)
        for name, _ in cases:
            median, p99 = summary(samples[name])
            print(f"| {name} | {median:.0f} | {p99:.0f} |")


if __name__ == "__main__":
    main()

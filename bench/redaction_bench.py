"""How redaction's time grows with the size of hostile text (linear, not quadratic).

The inputs are those of ``tests/unit/test_redaction_policy.py`` (``HOSTILE_TEXTS``:
repeated token prefixes, ``key=`` runs, JWT-like runs), each cut to 1/8, 1/4,
1/2 and all of its ~300 KB. For every input the script prints the median and
p99 time of ``redact_text`` per size and the growth from 1/8 of the text to
all of it: about 8 for linear work, about 64 for quadratic. Usage::

    python bench/redaction_bench.py [--repeat 5]

Numbers are for comparison within one run on one machine; they are never
asserted in tests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "unit"))

from test_redaction_policy import HOSTILE_TEXTS

from fleetprompt_core.policies.redaction import redact_text

FRACTIONS = (8, 4, 2, 1)


def timed(text: str, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        redact_text(text)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    options = parser.parse_args()
    print(f"{'input':<28} " + " ".join(f"{'1/' + str(f):>16}" for f in FRACTIONS) + "  growth")
    for text in HOSTILE_TEXTS:
        medians = []
        cells = []
        for fraction in FRACTIONS:
            median, p99 = timed(text[: len(text) // fraction], options.repeat)
            medians.append(median)
            cells.append(f"{median:7.1f}/{p99:7.1f}")
        growth = medians[-1] / medians[0] if medians[0] > 0 else float("nan")
        label = repr(text[:12]) + f"… ({len(text) // 1000} KB)"
        print(f"{label:<28} " + " ".join(f"{c:>16}" for c in cells) + f"  ×{growth:.1f}")
    print("cells: median/p99 ms; growth: all of the text against 1/8 of it")
    print("(8 = linear, 64 = quadratic)")


if __name__ == "__main__":
    main()

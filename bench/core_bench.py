"""Latency of the core's use cases over the in-memory adapter.

Prints median and p99 per operation and, for context, a baseline measured in
the same run: one empty unit of work (lock, enter, exit), the floor under
every use case. Usage::

    python bench/core_bench.py [--listings 1000 10000] [--repeat 300] [--markdown FILE]

Numbers are for comparison within one run on one machine; they are never
asserted in tests.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import random
import statistics
import time
from collections.abc import Callable

from fleetprompt_adapters.memory import MemoryStore, bootstrap
from fleetprompt_core import Call, CoreSettings, Role

WORDS = [
    "agent",
    "triage",
    "support",
    "sales",
    "invoice",
    "router",
    "summarizer",
    "crm",
    "ticket",
    "email",
    "slack",
    "calendar",
    "workflow",
    "research",
    "report",
    "scraper",
    "lead",
    "billing",
    "onboarding",
    "compliance",
    "audit",
]


def measure(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def populate(listings: int) -> tuple[object, Call, list[str]]:
    store = MemoryStore()
    fp = bootstrap(store=store, settings=CoreSettings(image_hosts=frozenset({"img.example.com"})))
    fp.operator.ensure_user("bench-pub", roles=[Role.PUBLISHER])
    pub = Call.as_user("bench-pub")
    rng = random.Random(7)
    ids = []
    for n in range(listings):
        name = " ".join(rng.sample(WORDS, 3)).title()
        view = fp.publishing.create_listing(
            pub,
            {
                "assetKind": "whs_agent",
                "name": name,
                "summary": " ".join(rng.sample(WORDS, 8)),
                "tags": rng.sample(WORDS, 3),
            },
            idempotency_key=f"c{n}",
        ).value
        lid = view.listing.listing_id
        fp.publishing.publish_release(
            pub, lid, {"version": "1.0.0", "refs": {"whsAgentId": f"a{n}"}}, idempotency_key=f"r{n}"
        )
        fp.publishing.change_status(pub, lid, {"status": "published"}, idempotency_key=f"p{n}")
        ids.append(lid)
    return fp, pub, ids


def run(listings: int, repeat: int) -> list[tuple[str, float, float]]:
    fp, pub, ids = populate(listings)
    rng = random.Random(11)
    counter = itertools.count()
    rows = []

    def empty_uow() -> None:
        with fp.runtime.uow():  # type: ignore[attr-defined]
            pass

    def create() -> None:
        n = next(counter)
        fp.publishing.create_listing(  # type: ignore[attr-defined]
            pub, {"assetKind": "whs_agent", "name": f"Bench {n}"}, idempotency_key=f"b{n}"
        )

    def install_flow() -> None:
        n = next(counter)
        buyer = Call.as_user("bench-buyer")
        intent = fp.installs.create_intent(  # type: ignore[attr-defined]
            buyer, {"listingId": ids[n % len(ids)], "targetSystem": "whs"}, idempotency_key=f"i{n}"
        ).value
        issued = fp.installs.issue_token(  # type: ignore[attr-defined]
            buyer, intent.install_intent_id, idempotency_key=f"t{n}"
        ).value
        fp.redemption.redeem("whs", {"installToken": issued.install_token, "targetSystem": "whs"})  # type: ignore[attr-defined]

    operations: list[tuple[str, Callable[[], object]]] = [
        ("baseline: empty unit of work", empty_uow),
        ("search q (first page)", lambda: fp.catalog.search({"q": rng.choice(WORDS)})),  # type: ignore[attr-defined]
        ("search tag (first page)", lambda: fp.catalog.search({"tags": rng.choice(WORDS)})),  # type: ignore[attr-defined]
        ("search updated (no filter)", lambda: fp.catalog.search({})),  # type: ignore[attr-defined]
        ("listing detail", lambda: fp.catalog.listing(rng.choice(ids))),  # type: ignore[attr-defined]
        ("listing create (idempotent, audited)", create),
        ("intent + token + redeem", install_flow),
    ]
    for name, fn in operations:
        for _ in range(min(20, repeat)):  # warm up
            fn()
        median, p99 = measure(fn, repeat)
        rows.append((name, median, p99))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listings", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--markdown", help="write the table to this file")
    args = parser.parse_args()
    machine = (
        f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}"
    )
    lines = [f"In-memory adapter, {machine}, {args.repeat} runs per operation.", ""]
    lines += ["| listings | operation | median ms | p99 ms |", "|---:|---|---:|---:|"]
    for count in args.listings:
        for name, median, p99 in run(count, args.repeat):
            lines.append(f"| {count:,} | {name} | {median:.3f} | {p99:.3f} |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()

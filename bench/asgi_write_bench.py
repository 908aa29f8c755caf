"""The two writes of issue 11 through the whole app in process: CPU per request, tree
against tree.

Each measurement is a fresh process on a fresh SQLite file: it builds the app
(``create_app``, the server's logging configured, the access log written to a
file), seeds a published listing and ``--count`` install tokens through the use
cases, then sends ``--count`` signed redemptions (X1) and ``--count`` listing
creates (B2, a fresh ``Idempotency-Key`` each) one after another straight to
the ASGI app — no server, no socket, no concurrency — and reports the median
CPU time of one request (``time.thread_time``: the event loop's thread does
everything, inline use cases and the thread hop of the others included, but
the worker thread's own CPU is not in it; ``--threads`` adds
``time.process_time`` for that). With ``--baseline-src`` the two trees
alternate ``--rounds`` times. Numbers compare within one run on one machine.
Usage::

    python bench/asgi_write_bench.py --baseline-src /work/main/src [--count 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asgi_support import call, lifespan, scope
from redeem_bench import seed_tokens

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "src"
SECRET = b"bench-redeem-secret-0123456789abcdef"


def worker(directory: str, count: int) -> dict[str, Any]:

    import uvloop  # noqa: PLC0415

    from fleetprompt_adapters import sql  # noqa: PLC0415
    from fleetprompt_http.app import create_app, fleetprompt_of  # noqa: PLC0415
    from fleetprompt_http.client import signed_redeem_request  # noqa: PLC0415
    from fleetprompt_http.logs import configure_logging  # noqa: PLC0415
    from fleetprompt_http.settings import Settings  # noqa: PLC0415

    url = f"sqlite:///{directory}/bench.db"
    engine = sql.create_engine(url)
    sql.upgrade(engine)
    engine.dispose()
    log = open(Path(directory) / "access.log", "w", encoding="utf-8")  # noqa: SIM115
    configure_logging("INFO", log)
    env = {
        "FLEETPROMPT_DATABASE_URL": url,
        "FLEETPROMPT_INTERNAL_REDEEM_SECRET": SECRET.decode("ascii"),
        "FLEETPROMPT_RATE_LIMITS": "off",
        "FLEETPROMPT_CURSOR_KEY": "bench-cursor-key-0123456789abcdef0123",
    }
    app = create_app(Settings.from_env(env))
    fp = fleetprompt_of(app)
    tokens = seed_tokens(fp, count)
    api_token = fp.credentials.issue_api_token("bench-pub", name="bench").api_token
    create_body = json.dumps(
        {
            "assetKind": "whs_agent",
            "name": "Bench Agent",
            "summary": "Created by the HTTP benchmark to time the write path.",
            "description": {
                "format": "markdown",
                "markdown": "# Bench\n\nA listing created by the **benchmark**.",
            },
            "tags": ["bench", "support"],
            "categories": ["operations"],
        },
        separators=(",", ":"),
    ).encode("utf-8")

    async def main() -> dict[str, list[float]]:
        async with lifespan(app):
            results: dict[str, list[float]] = {"redeem": [], "create": [], "redeem_all": []}
            for n, raw in enumerate(tokens):
                signed = signed_redeem_request(raw, "whs", key=SECRET, source="whs")
                request = scope("POST", "/v1/internal/install/redeem", dict(signed.headers))
                cpu, process = time.thread_time(), time.process_time()
                status, _ = await call(app, request, signed.body)
                if n >= count // 10:
                    results["redeem"].append(time.thread_time() - cpu)
                    results["redeem_all"].append(time.process_time() - process)
                assert status == 200, status
            results["create_all"] = []
            for n in range(count):
                headers = {
                    "Authorization": f"Bearer {api_token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"bench-{n}",
                }
                request = scope("POST", "/v1/publisher/listings", headers)
                cpu, process = time.thread_time(), time.process_time()
                status, _ = await call(app, request, create_body)
                if n >= count // 10:
                    results["create"].append(time.thread_time() - cpu)
                    results["create_all"].append(time.process_time() - process)
                assert status == 201, status
        return results

    results = uvloop.run(main())
    log.close()
    return {name: [1000 * v for v in values] for name, values in results.items()}


def _run(source: Path, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "--worker", directory, "--count", str(count)],
            env={**os.environ, "PYTHONPATH": str(source)},
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
    if done.returncode != 0:
        raise SystemExit(f"worker failed ({source}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path)
    parser.add_argument("--src", type=Path, default=SOURCE, help="the tree under test")
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(worker(options.worker, options.count)))
        return
    trees = [("this tree", options.src.resolve())]
    if options.baseline_src:
        trees.insert(0, ("baseline", options.baseline_src.resolve()))
    collected: dict[str, dict[str, list[float]]] = {label: {} for label, _ in trees}
    for _round in range(options.rounds):
        for label, source in trees:
            for name, values in _run(source, options.count).items():
                collected[label].setdefault(name, []).extend(values)
    print(f"load average {os.getloadavg()}")
    for label, results in collected.items():
        print(
            f"{label:10} "
            + "  ".join(
                f"{name} {statistics.median(values):.3f} ms" for name, values in results.items()
            )
        )


if __name__ == "__main__":
    main()

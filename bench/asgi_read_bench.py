"""The uncached public reads of issue 11 through the whole app in process: CPU per
request, tree against tree.

The catalogue is ``bench/http_bench.py``'s (``bench/sql_bench.py``'s listings,
bulk-loaded once into ``--cache-dir`` and copied to a working file per run). Each
measurement is a fresh process of one tree on that copy: it builds the app
(``create_app`` with the public response cache off, ``FLEETPROMPT_CACHE_MB=0``,
the server's logging configured, the access log written to a file), then sends
``--count`` browse pages (``GET /v1/public/listings/search``, no filter, 50 cards)
and ``--count`` listing details (``GET /v1/public/listings/{id}``, cycling over
the catalogue's detail listings) one after another straight to the ASGI app — no
server, no socket, no concurrency — and reports the median and p99 CPU time of one
request (``time.process_time``: the event loop's thread and any worker thread a
use case runs in). With ``--baseline-src`` the two trees alternate ``--rounds``
times; both must read the catalogue's schema revision (the 9b7714e baseline does
not: compare against current main, and convert with the ratio main/baseline that
``http_bench.py`` measured). Usage::

    python bench/asgi_read_bench.py --baseline-src /work/main/src --cache-dir /work/bench-data \
        [--tree LABEL=PATH ...] [--size 100000] [--count 1000] [--rounds 3]
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

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "src"
#: The browser-like header of the read requests.
ACCEPT = {"accept": "*/*"}
DETAILS = 200


def worker(url: str, ids: list[str], count: int) -> dict[str, Any]:
    import sql_bench as sb  # noqa: PLC0415 - the worker imports the tree under test
    import uvloop  # noqa: PLC0415
    from asgi_support import call, lifespan, scope  # noqa: PLC0415

    from fleetprompt_http.app import create_app  # noqa: PLC0415
    from fleetprompt_http.logs import configure_logging  # noqa: PLC0415
    from fleetprompt_http.settings import Settings  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as directory:
        log = open(Path(directory) / "access.log", "w", encoding="utf-8")  # noqa: SIM115
        configure_logging("INFO", log)
        env = {
            "FLEETPROMPT_DATABASE_URL": url,
            "FLEETPROMPT_CURSOR_KEY": sb.CURSOR_KEY.decode("ascii"),
            "FLEETPROMPT_RATE_LIMITS": "off",
            "FLEETPROMPT_IMAGE_HOSTS": sb.IMAGE_HOST,
            "FLEETPROMPT_CACHE_MB": "0",
        }
        app = create_app(Settings.from_env(env))

        async def main() -> dict[str, list[float]]:
            async with lifespan(app):
                browse = scope("GET", "/v1/public/listings/search", ACCEPT)
                details = [
                    scope("GET", f"/v1/public/listings/{listing_id}", ACCEPT) for listing_id in ids
                ]
                results: dict[str, list[float]] = {"browse": [], "detail": []}
                warm = count // 10
                for n in range(count + warm):
                    cpu = time.process_time()
                    status, size = await call(app, browse)
                    if n >= warm:
                        results["browse"].append(time.process_time() - cpu)
                    assert status == 200, status
                    assert size > 10_000, size
                for n in range(count + warm):
                    cpu = time.process_time()
                    status, size = await call(app, details[n % len(details)])
                    if n >= warm:
                        results["detail"].append(time.process_time() - cpu)
                    assert status == 200, status
            return results

        results = uvloop.run(main())
        log.close()
    return {name: [1000 * v for v in values] for name, values in results.items()}


def _run(source: Path, url: str, ids: list[str], count: int) -> dict[str, Any]:
    arguments = json.dumps({"url": url, "ids": ids, "count": count})
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, __file__, "--worker", arguments],
        env={**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{HERE}"},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(f"worker failed ({source}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path)
    parser.add_argument("--src", type=Path, default=SOURCE, help="the tree under test")
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="another tree to alternate with (its src directory), repeatable",
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    options = parser.parse_args()
    if options.worker:
        arguments = json.loads(options.worker)
        print(json.dumps(worker(arguments["url"], arguments["ids"], arguments["count"])))
        return
    import http_bench as hb  # noqa: PLC0415 - the catalogue's cache, in the parent only

    trees = [("this tree", options.src.resolve())]
    if options.baseline_src:
        trees.insert(0, ("baseline", options.baseline_src.resolve()))
    for tree in options.tree:
        label, _, path = tree.partition("=")
        trees.insert(-1, (label, Path(path).resolve()))
    collected: dict[str, dict[str, list[float]]] = {label: {} for label, _ in trees}
    per_round: dict[str, list[dict[str, float]]] = {label: [] for label, _ in trees}
    cache = options.cache_dir or hb.DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    with hb.sqlite_dataset(cache, options.size, rebuild=False) as dataset:
        url = dataset.url.render_as_string(hide_password=False)
        ids = dataset.meta.detail_ids[:DETAILS]
        for _round in range(options.rounds):
            for label, source in trees:
                results = _run(source, url, ids, options.count)
                per_round[label].append(
                    {name: statistics.median(values) for name, values in results.items()}
                )
                for name, values in results.items():
                    collected[label].setdefault(name, []).extend(values)
    print(f"load average {os.getloadavg()}")
    for label, results in collected.items():
        print(
            f"{label:12} "
            + "  ".join(
                f"{name} median {statistics.median(values):.3f} ms p99 {_p99(values):.3f} ms"
                for name, values in results.items()
            )
        )
        rounds = "; ".join(
            ", ".join(f"{name} {value:.3f}" for name, value in medians.items())
            for medians in per_round[label]
        )
        print(f"{'':12} per round: {rounds}")


if __name__ == "__main__":
    main()

"""The resident set of one ``fleetprompt serve`` worker under a long mixed load (issue 11).

The target: one worker's RSS below 200 MB after 100 000 requests. ``bench/http_bench.py``
reads it once, after its interleaved rounds (mostly hot, cached requests); this script
measures it on its own, on a copy of a cached catalogue, with a load that touches what
a real worker's day touches:

* hot cached reads (browse, a common tag, a rare word, 200 detail pages);
* a share (``--cold``) of requests that mostly miss the response cache: the detail
  page of every published listing in turn, and searches over many distinct words,
  tags, categories, asset kinds, sorts, page sizes and the next pages of browse
  (their cursors collected before the run);
* listing creates (``--creates``, a share of the mixed requests) and a burst of
  signed redemptions at the end.

``wrk`` (one thread, ``--connections``) replays the mixed requests in phases of
``--phase`` seconds until ``--requests`` were served; after the start-up (the search
index built) and after every phase the script prints the worker's ``VmRSS``, its
parts (``RssAnon``: heap, SQLite's page cache, the search index, the response cache;
``RssFile``: mapped files, the code; ``RssShmem``: the WAL index) and the phase's rate,
and at the end one summary line (``--json`` appends it to a file). ``--env`` passes
settings to the server (``--env FLEETPROMPT_SQLITE_CACHE_MB=8``, ``--env
MALLOC_ARENA_MAX=2``); ``--src`` serves another tree's ``src`` (the code before a change,
``git archive main src``). Usage::

    flock /work/coord/bench.lock python bench/rss_bench.py \
        --catalogue /tmp/fleetprompt_http_bench/sqlite-100000-0007.db --label main

The catalogue and its ``meta-*.json`` come from ``bench/http_bench.py`` (its
``--cache-dir``); the catalogue is copied, never changed. SQLite only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import http_bench as hb
import httpx
import sql_bench as sb
import sqlalchemy as sa

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
#: Detail pages of the hot set (the cache's case), as in ``bench/http_bench.py``.
HOT_DETAILS = 200
#: Browse pages whose cursors are collected for the cold searches.
BROWSE_PAGES = 60
FIELDS = ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM")


def _worker_pid(session: int) -> int:
    """The process of a server's session with the largest resident set (its worker)."""
    best, best_rss = session, -1
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != session:
                continue
            rss = int(fields[21])
        except (OSError, ValueError, IndexError):
            continue
        if rss > best_rss:
            best, best_rss = int(entry.name), rss
    return best


def memory(session: int) -> dict[str, float]:
    """``/proc/<worker>/status`` fields of :data:`FIELDS`, in MB (MiB, as ``_rss_mb``)."""
    pid = _worker_pid(session)
    found: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in FIELDS:
                found[name] = int(rest.split()[0]) / 1024
    return found


def mappings(session: int, top: int = 8) -> list[tuple[str, float]]:
    """The worker's resident memory by mapping kind (``/proc/<pid>/smaps``), in MB: the
    main heap, anonymous mappings (glibc's thread arenas are 64 MiB reservations; large
    blocks are mapped on their own), the shared libraries and other files."""
    pid = _worker_pid(session)
    totals: dict[str, float] = {}
    name, size_kb = "", 0
    with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            head = line.split()
            if not head:
                continue
            if "-" in head[0] and not head[0].endswith(":"):
                start, end = (int(x, 16) for x in head[0].split("-"))
                size_kb = (end - start) // 1024
                path = head[5] if len(head) > 5 else ""
                if path == "[heap]":
                    name = "[heap] (main arena)"
                elif path.startswith("["):
                    name = path
                elif not path:
                    name = (
                        "anon, 64 MiB arena slot"
                        if size_kb in {65_536, 131_072}
                        or (size_kb < 65_536 and (start % (64 << 20)) == 0)
                        else "anon, other"
                    )
                elif ".so" in path:
                    name = "shared libraries"
                else:
                    name = path
            elif head[0] == "Rss:":
                totals[name] = totals.get(name, 0.0) + int(head[1]) / 1024
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def _probe_trim(session: int) -> None:
    """How much of the worker's heap is free but resident: ``malloc_trim(0)`` called in
    it through ``gdb`` (an investigation aid; the server itself is not changed)."""
    gdb = shutil.which("gdb")
    if gdb is None:
        print("    (no gdb: --probe-trim skipped)", flush=True)
        return
    pid = _worker_pid(session)
    subprocess.run(  # noqa: S603 - a fixed command
        [gdb, "-p", str(pid), "-batch", "-ex", "call (int) malloc_trim(0)"],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    print(f"    after malloc_trim(0): {_fmt(memory(session))}", flush=True)


def _fmt(mem: dict[str, float]) -> str:
    return (
        f"VmRSS {mem['VmRSS']:6.1f}  anon {mem['RssAnon']:6.1f}  file {mem['RssFile']:5.1f}  "
        f"shmem {mem['RssShmem']:5.1f}  HWM {mem['VmHWM']:6.1f} MB"
    )


def _note(w: hb.Wrk) -> str:
    errors = hb._errors(w)
    return f"  [{errors}]" if errors else ""


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _meta(catalogue: Path) -> hb.Meta:
    size = catalogue.name.split("-")[1]
    raw = json.loads((catalogue.parent / f"meta-{size}-{hb._revision()}.json").read_text())
    raw["installable"] = [tuple(pair) for pair in raw["installable"]]
    return hb.Meta(**raw)


def _listing_ids(path: Path, seed: int) -> list[str]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        ids = [row[0] for row in conn.execute(
            "SELECT listing_id FROM listings WHERE status = 'published'"
        )]  # fmt: skip
    random.Random(seed).shuffle(ids)
    return ids


def _cursors(url: str, pages: int) -> list[str]:
    """The cursors of browse pages 2 .. ``pages`` + 1 (walked once, before the run)."""
    found: list[str] = []
    cursor: str | None = None
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for _ in range(pages):
            params = {"cursor": cursor} if cursor else {}
            response = client.get(hb.SEARCH_PATH, params=params)
            response.raise_for_status()
            cursor = response.json()["nextCursor"]
            if not cursor:
                break
            found.append(cursor)
    return found


def cold_searches(rng: random.Random, cursors: list[str], count: int) -> list[str]:
    """``count`` search paths, mostly distinct: words, labels, kinds, sorts, sizes, pages."""
    kinds = [kind.value for kind in sb._KINDS]
    sorts = ["updated", "created", "name", "installs"]
    paths: list[str] = []
    for _ in range(count):
        params: dict[str, str] = {}
        roll = rng.random()
        if roll < 0.35:
            params["q"] = rng.choice(sb.VOCABULARY[:4_000])
        elif roll < 0.6:
            params["tags"] = rng.choice(sb.TAGS)
        elif roll < 0.75:
            params["categories"] = rng.choice(sb.CATEGORIES)
        elif roll < 0.85 and cursors:
            params["cursor"] = rng.choice(cursors)
        if "cursor" not in params:  # a cursor belongs to its query: browse pages only
            if rng.random() < 0.3:
                params["assetKind"] = rng.choice(kinds)
            if rng.random() < 0.4:
                params["sort"] = rng.choice(sorts)
            if rng.random() < 0.5:
                params["limit"] = str(rng.choice((10, 20, 25, 50)))
        paths.append(hb.SEARCH_PATH + ("?" + urlencode(params) if params else ""))
    return paths


def mixed_requests(
    meta: hb.Meta,
    people: hb.People,
    ids: list[str],
    cursors: list[str],
    *,
    total: int,
    cold: float,
    creates: float,
    seed: int,
) -> list[bytes]:
    """``total`` requests: hot reads, ``cold`` of them cold reads (detail of listing after
    listing, half as many distinct searches), ``creates`` of them listing creates."""
    rng = random.Random(seed)
    hot = [*hb.search_paths(meta).values()]
    hot_details = [f"/v1/public/listings/{lid}" for lid in meta.detail_ids[:HOT_DETAILS]]
    searches = cold_searches(rng, cursors, max(1, int(total * cold / 3)))
    create = hb.workload("create", meta, people).requests[0]
    requests: list[bytes] = []
    next_id = next_search = 0
    for _ in range(total):
        roll = rng.random()
        if roll < creates:
            requests.append(create)
        elif roll < creates + cold:
            if rng.random() < 2 / 3:
                path = f"/v1/public/listings/{ids[next_id % len(ids)]}"
                next_id += 1
            else:
                path = searches[next_search % len(searches)]
                next_search += 1
            requests.append(hb.raw_request("GET", path))
        elif rng.random() < 0.5:
            requests.append(hb.raw_request("GET", rng.choice(hot)))
        else:
            requests.append(hb.raw_request("GET", rng.choice(hot_details)))
    return requests


def _server_command(src: Path) -> tuple[list[str], dict[str, str]]:
    line = [sys.executable, "-c", "from fleetprompt_http.cli import main; main()"]
    return [*line, "serve", "--host", hb.HOST], {"PYTHONPATH": str(src)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalogue", type=Path, required=True, help="a cached sqlite-N-REV.db")
    parser.add_argument("--work-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "fleetprompt_rss_bench")  # fmt: skip
    parser.add_argument("--src", type=Path, default=SRC, help="the src tree to serve")
    parser.add_argument("--label", default="", help="names the run in the summary")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    parser.add_argument("--requests", type=int, default=120_000, help="mixed requests to serve")
    parser.add_argument("--phase", type=float, default=15.0, help="seconds per wrk phase")
    parser.add_argument("--max-seconds", type=float, default=200.0, help="stop loading after")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cold", type=float, default=0.1, help="share of cold reads")
    parser.add_argument("--creates", type=float, default=0.005, help="share of creates")
    parser.add_argument("--redemptions", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--probe-trim",
        action="store_true",
        help="at the end, call malloc_trim(0) in the worker (gdb) and measure",
    )
    parser.add_argument("--json", type=Path, help="append the summary to this JSON-lines file")
    return parser.parse_args()


def main() -> None:  # noqa: PLR0915 - one run, step by step
    args = parse_args()
    load_before = _load()
    meta = _meta(args.catalogue)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = args.work_dir / "catalogue.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(args.catalogue, work)
    dataset = hb.Dataset("sqlite", sa.make_url(f"sqlite:///{work}"), meta, lambda: None)
    people, (tokens,) = hb.provision(dataset, [args.redemptions])
    ids = _listing_ids(work, args.seed)
    command, extra = _server_command(args.src.resolve())
    env = hb._env(hb._url(dataset), **extra)
    for pair in args.env:
        key, _, value = pair.partition("=")
        env[key] = value
    script = hb._script(args.work_dir)
    print(f"rss_bench {args.label}: {meta.size:,} listings, src {args.src}, "
          f"env {' '.join(args.env) or '-'}, load {load_before}", flush=True)  # fmt: skip
    try:
        started = time.perf_counter()
        with hb.serving("rss-fleetprompt", command, env, args.work_dir) as server:
            session = server.process.pid
            print(f"  up in {time.perf_counter() - started:5.1f} s   {_fmt(memory(session))}",
                  flush=True)  # fmt: skip
            at_start = dict(mappings(session))
            cursors = _cursors(server.url, BROWSE_PAGES)
            requests = mixed_requests(meta, people, ids, cursors, total=args.requests,
                                      cold=args.cold, creates=args.creates,
                                      seed=args.seed)  # fmt: skip
            mixed = hb.write_requests(args.work_dir / "mixed", requests)
            served, busy_s, errors, mixed_served = len(cursors) + 1, 0.0, 0, 0
            rates: list[float] = []
            deadline = time.monotonic() + args.max_seconds
            while served < args.requests and time.monotonic() < deadline:
                w = hb.run_wrk(server.url, mixed, script, mode="template", seconds=args.phase,
                               connections=args.connections, threads=1,
                               session=session)  # fmt: skip
                served += w.requests
                mixed_served += w.requests
                busy_s += w.duration_s
                errors += w.non_2xx + w.socket_errors
                rates.append(w.rps)
                print(f"  {served:8,} requests  {w.rps:7,.0f} req/s  p99 {w.p99_ms:6.1f} ms  "
                      f"server {w.server_cores:.2f} other {w.other_cores:.2f} cores  "
                      f"{_fmt(memory(session))}" + _note(w),
                      flush=True)  # fmt: skip
            signed = hb.workload("redeem", meta, people, tokens).requests
            w = hb.run_wrk(server.url, hb.write_requests(args.work_dir / "redeem", signed), script,
                           mode="once", seconds=max(1.0, args.redemptions / 1_000),
                           connections=args.connections, threads=1)  # fmt: skip
            served += w.requests
            errors += w.non_2xx + w.socket_errors
            print(f"  {served:8,} requests  {w.rps:7,.0f} redemptions/s             "
                  f"{_fmt(memory(session))}" + _note(w),
                  flush=True)  # fmt: skip
            time.sleep(2.0)
            final = memory(session)
            parts = mappings(session)
            if args.probe_trim:
                _probe_trim(session)
            for name, mb in parts:
                print(f"    {mb:7.1f} MB  {name}  (at start {at_start.get(name, 0.0):.1f})",
                      flush=True)  # fmt: skip
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)
    mixed_rps = mixed_served / busy_s if busy_s else 0.0
    summary: dict[str, Any] = {
        "label": args.label,
        "env": args.env,
        "src": str(args.src),
        "requests": served,
        "errors": errors,
        "mixed_rps": round(mixed_rps),
        "phase_rps": [round(r) for r in rates],
        "redeem_rps": round(w.rps),
        "load_before": load_before,
        "load_after": _load(),
        **{name: round(value, 1) for name, value in final.items()},
        "mappings": {name: round(mb, 1) for name, mb in parts},
    }
    print(f"  final ({args.label}): {_fmt(final)} after {served:,} requests, mixed "
          f"{mixed_rps:,.0f} req/s, {errors} errors, load {load_before} -> {summary['load_after']}",
          flush=True)  # fmt: skip
    if args.json:
        with args.json.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()

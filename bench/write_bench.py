"""The two write targets of issue 11 over HTTP, tree against tree, with a profile.

``bench/http_bench.py`` compares FleetPrompt with the 9b7714e baseline and the
bare-Litestar ceiling; this script compares two (or more) trees of today's
schema — main and a change — on the same catalogue, in the same run, on the
two writes: listing create (B2, a fresh ``Idempotency-Key`` per request) and
signed redemption (X1, one fresh install token per request). Each tree serves
its own copy of the working database (a copied SQLite file, or a PostgreSQL
database cloned from it), with one worker (``fleetprompt serve``, granian);
``wrk`` (one thread, ``--connections`` keep-alive connections) loads them
endpoint by endpoint, tree after tree, for ``--rounds`` rounds of
``--duration`` seconds. It prints per sample the requests per second, the
latency and the server's CPU per request (its processes and, on PostgreSQL,
its backends), then the medians and the median of the per-round ratios to the
first tree.

``--profile TREE:ENDPOINT`` then loads that tree with that endpoint for
``--profile-seconds`` more while ``py-spy record --native`` samples its worker,
and prints the frames that took most of the samples (own time and time
inside), from the raw (collapsed) stacks it keeps in ``--out``. Usage::

    python bench/write_bench.py --trees main=/work/main/src,change=src \\
        --databases sqlite --endpoints create,redeem --rounds 2 --duration 5 \\
        --cache-dir /work/bench-data [--profile change:redeem]

The catalogues are ``bench/http_bench.py``'s (``--cache-dir``), built there on
first use. Numbers compare within one run on one machine; never in tests.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import http_bench as hb
import sqlalchemy as sa

BENCH = Path(__file__).resolve().parent


@dataclass
class Tree:
    name: str
    src: Path


def _trees(raw: str) -> list[Tree]:
    trees = []
    for part in raw.split(","):
        name, _, src = part.partition("=")
        trees.append(Tree(name, Path(src).resolve()))
    return trees


@contextlib.contextmanager
def database_copy(dataset: hb.Dataset, name: str) -> Iterator[sa.URL]:
    """A copy of the working database (provisioned tokens included), dropped after."""
    if dataset.database == "sqlite":
        source = dataset.url.database
        assert source is not None
        copy = Path(source).with_name(f"{Path(source).stem}-{name}.db")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(source, copy)
        try:
            yield sa.make_url(f"sqlite:///{copy}")
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{copy}{suffix}").unlink(missing_ok=True)
        return
    database = f"{dataset.url.database}_{name}"
    admin = hb._admin(dataset.url.set(database="postgres"))
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f'CREATE DATABASE "{database}" TEMPLATE "{dataset.url.database}" STRATEGY FILE_COPY'
            )
        try:
            yield dataset.url.set(database=database)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        admin.dispose()


def _worker_pid(session: int) -> int:
    """The serving worker of a server's session: its busiest process."""
    found = hb._scan(session, None)
    return max(found, key=lambda pid: found[pid][1])


def profile(pid: int, seconds: int, out: Path) -> None:
    """py-spy's raw (collapsed) stacks of ``pid`` over ``seconds``, in ``out``."""
    subprocess.run(  # noqa: S603 - py-spy with arguments built here
        [shutil.which("py-spy") or "py-spy", "record", "--native", "-r", "200",
         "-d", str(seconds), "--format", "raw", "-o", str(out), "--pid", str(pid)],
        check=True, capture_output=True, timeout=seconds + 60,
    )  # fmt: skip


_LINE = re.compile(r":\d+\)$")


#: The frame that marks a thread's samples: the event loop's, anyio's worker threads'.
THREADS = {"loop": "run_forever ", "worker": "WorkerThread.run "}
#: Leaf frames of a thread waiting for work (not busy).
_IDLE = ("epoll_pwait ", "epoll_wait ", "pthread_cond_wait ", "pthread_cond_timedwait ")


def top_frames(collapsed: Path, thread: str = "loop", count: int = 40) -> list[str]:
    """Where one kind of thread (:data:`THREADS`) spent its busy samples (those not
    waiting for work): frames by own and by inclusive share; wrappers in every sample
    left out."""
    marker = THREADS[thread]
    own: collections.Counter[str] = collections.Counter()
    inside: collections.Counter[str] = collections.Counter()
    total = loop = busy = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        samples = int(n)
        total += samples
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        if not any(frame.startswith(marker) for frame in frames):
            continue  # another thread
        loop += samples
        if frames[-1].startswith(_IDLE) or any("Queue.get " in frame for frame in frames):
            continue
        busy += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inside[frame] += samples
    lines = [
        f"{total:,} samples; {thread} thread(s) {loop:,}, of them busy {busy:,} "
        f"({100 * busy / max(loop, 1):.0f} %); shares of the busy ones. Own time:"
    ]
    lines += [f"  {100 * n / busy:5.1f} %  {frame}" for frame, n in own.most_common(count)]
    lines.append("inclusive:")
    shown = [(f, n) for f, n in inside.most_common() if n < 0.97 * busy][:count]
    lines += [f"  {100 * n / busy:5.1f} %  {frame}" for frame, n in shown]
    return lines


def measure(database: str, options: argparse.Namespace, directory: Path) -> None:  # noqa: PLR0915
    """Every tree up at once on its copy of one database; the rounds, then the profile."""
    trees = _trees(options.trees)
    endpoints = options.endpoints.split(",")
    extra = dict(p.split("=", 1) for p in options.env.split(",") if p)
    profiled = options.profile.split(":") if options.profile else None
    script = hb._script(directory)
    with contextlib.ExitStack() as stack:
        dataset = stack.enter_context(
            hb.sqlite_dataset(options.cache_dir, options.size, False)
            if database == "sqlite"
            else hb.postgres_dataset(options.postgres_url, options.cache_dir, options.size, False)
        )
        per_run = max(1_000, int(hb.REDEEM_BUDGET_PER_S * options.duration))
        pools = [hb.WARMUP_REDEEM_TOKENS] * len(trees)
        pools += [per_run] * (options.rounds * len(trees))
        if profiled and profiled[1] == "redeem":
            pools.append(hb.REDEEM_BUDGET_PER_S * options.profile_seconds)
        people, tokens = hb.provision(dataset, pools if "redeem" in endpoints else [1])
        servers: dict[str, hb.Server] = {}
        command = [sys.executable, "-c", "from fleetprompt_http.cli import main; main()"]
        for tree in trees:
            url = stack.enter_context(database_copy(dataset, tree.name))
            env = hb._env(url.render_as_string(hide_password=False), **extra)
            env["PYTHONPATH"] = f"{tree.src}{os.pathsep}{BENCH}"
            pg = url.database if database == "postgresql" else None
            line = [*command, "serve", "--host", hb.HOST]
            servers[tree.name] = stack.enter_context(
                hb.serving(f"{database}-{tree.name}", line, env, directory, pg)
            )
        print(f"{database}: {len(trees)} servers up; load {os.getloadavg()}", flush=True)

        def requests(endpoint: str, pool: Sequence[str]) -> tuple[str, list[bytes]]:
            work = hb.workload(endpoint, dataset.meta, people, pool)
            return work.mode, work.requests

        def load(tree: str, endpoint: str, pool: Sequence[str], seconds: float) -> hb.Wrk:
            mode, reqs = requests(endpoint, pool)
            server = servers[tree]
            return hb.run_wrk(
                server.url, hb.write_requests(directory / "requests", reqs), script,
                mode=mode, seconds=seconds, connections=options.connections, threads=1,
                session=server.process.pid, database=server.database,
            )  # fmt: skip

        for index, tree in enumerate(trees):
            for endpoint in endpoints:
                load(tree.name, endpoint, tokens[index] if endpoint == "redeem" else [], 1)
        samples: dict[tuple[str, str], list[hb.Wrk]] = collections.defaultdict(list)
        for round_ in range(options.rounds):
            for endpoint in endpoints:
                for index, tree in enumerate(trees):
                    pool = tokens[len(trees) * (1 + round_) + index] if endpoint == "redeem" else []
                    w = load(tree.name, endpoint, pool, options.duration)
                    samples[tree.name, endpoint].append(w)
                    cpu = 1000 * (w.server_cores + w.database_cores) / max(w.rps, 1e-9)
                    errors = hb._errors(w)
                    print(
                        f"  {database} round {round_ + 1} {endpoint:<7} {tree.name:<10} "
                        f"{w.rps:7,.0f} req/s  p50 {w.p50_ms:6.2f}  p99 {w.p99_ms:6.2f} ms  "
                        f"CPU {cpu:5.2f} ms/req  other {w.other_cores:.2f} cores"
                        + (f"  [{errors}]" if errors else ""),
                        flush=True,
                    )
        print(f"{database}: medians (ratio: median of per-round ratios to {trees[0].name})")
        for endpoint in endpoints:
            first = samples[trees[0].name, endpoint]
            for tree in trees:
                mine = samples[tree.name, endpoint]
                cpu = [1000 * (w.server_cores + w.database_cores) / w.rps for w in mine]
                ratio = statistics.median(a.rps / b.rps for a, b in zip(mine, first, strict=True))
                print(
                    f"  {endpoint:<7} {tree.name:<10} "
                    f"{statistics.median(w.rps for w in mine):7,.0f} req/s  "
                    f"CPU {statistics.median(cpu):5.2f} ms/req  x{ratio:.2f}",
                    flush=True,
                )
        if profiled:
            name, endpoint = profiled
            server = servers[name]
            out = options.out / f"{database}-{name}-{endpoint}.txt"
            mode, reqs = requests(endpoint, tokens[-1] if endpoint == "redeem" else [])
            path = hb.write_requests(directory / "profile", reqs)
            wrk = subprocess.Popen(  # noqa: S603 - wrk with arguments built here
                [hb.wrk_path(), "-t1", f"-c{options.connections}",
                 f"-d{options.profile_seconds + 2}s", "-s", str(script), server.url, "--",
                 str(path), mode, "prof", "1"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                time.sleep(1)
                profile(_worker_pid(server.process.pid), options.profile_seconds, out)
            finally:
                wrk.wait(timeout=options.profile_seconds + 30)
            print(f"profile of {name} {endpoint} ({out}):")
            for thread in THREADS:
                print("\n".join(top_frames(out, thread)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trees", required=True, help="name=src,name=src (the first: reference)")
    parser.add_argument("--databases", default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--endpoints", default="create,redeem")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cache-dir", type=Path, default=hb.DEFAULT_CACHE)
    parser.add_argument("--profile", help="TREE:ENDPOINT to sample with py-spy after the rounds")
    parser.add_argument("--profile-seconds", type=int, default=15)
    parser.add_argument("--env", default="", help="NAME=VALUE,… for every server")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "write_bench")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="write_bench_"))
    print(f"load average {os.getloadavg()}", flush=True)
    try:
        for database in options.databases.split(","):
            measure(database, options, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"load average {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()

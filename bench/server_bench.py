"""Public reads side by side: cache on/off, granian/uvicorn, today's code/the baseline, the ceiling.

One SQLite catalogue of N published listings (``bench/http_bench.py``'s
dataset, cached under its ``--cache-dir``) is served at once by, each with one
worker on 127.0.0.1:

* ``granian`` — ``fleetprompt serve`` (the default server, ADR 0029), public
  response cache on (ADR 0028);
* ``uvicorn`` — ``fleetprompt serve --server uvicorn``, cache on;
* ``granian, no cache`` — ``FLEETPROMPT_CACHE_MB=0``: every request runs its use
  case (the uncached path);
* ``baseline`` — the code of ``--baseline-src`` (a checkout of the commit before
  this work, e.g. ``git worktree add /work/base 9b7714e``) on a copy of the
  catalogue downgraded to that code's schema (uvicorn, its only server);
* ``ceiling`` — ``bench/http_ceiling.py`` under uvicorn: bare Litestar answering
  the same bytes from memory.

Then ``wrk`` (one thread, ``--connections`` keep-alive connections) loads them
endpoint by endpoint, server after server, for ``--rounds`` rounds of
``--duration`` seconds each (interleaved, so a change in the machine's load hits
every server alike). Reported: the median over rounds of requests/s and of
wrk's p99, and the median of the per-round ratio to the ceiling. The machine
is shared: compare ratios, not absolute numbers. Needs ``wrk``
(``apt-get install -y wrk``)::

    python bench/server_bench.py [--size 100000] [--rounds 3] [--duration 5]
        [--baseline-src /work/base/src] [--write-docs]
    python bench/server_bench.py --replot --write-docs   # the recorded samples again

The raw samples go to ``bench/results/server_bench.json``; with the ``bench``
extra (matplotlib) the script also draws ``docs/img/server_bench.png``, each
server's share of the ceiling per endpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import http_bench as hb
import sqlalchemy as sa
from alembic import command

from fleetprompt_adapters.sql.schema import alembic_config

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "## HTTP server: cache, servers and the baseline side by side"
BASELINE_REVISION = "0002"
SAMPLES = Path(__file__).resolve().parent / "results" / "server_bench.json"
CHART = DOCS.parent / "img" / "server_bench.png"
_NUMBER = re.compile(r"Requests/sec:\s+([\d.]+)")
_P99 = re.compile(r"99%\s+([\d.]+)(us|ms|s)\b")


@dataclass
class Sample:
    server: str
    endpoint: str
    rps: float
    p99_ms: float


def _wrk(url: str, seconds: float, connections: int) -> tuple[float, float]:
    run = subprocess.run(  # noqa: S603 - a fixed command
        [hb.wrk_path(), "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    rps = _NUMBER.search(run.stdout)
    p99 = _P99.search(run.stdout)
    if not rps or not p99:
        raise RuntimeError(f"wrk said: {run.stdout}\n{run.stderr}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return float(rps.group(1)), float(p99.group(1)) * scale


def _endpoints(meta: hb.Meta) -> dict[str, str]:
    search = "/v1/public/listings/search"
    return {
        "browse (page of 50)": search,
        "tag `support`": f"{search}?tags=support",
        "rare word": f"{search}?q={meta.rare_term}",
        "common word `agent`": f"{search}?q=agent",
        "listing detail": f"/v1/public/listings/{meta.detail_ids[0]}",
    }


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        action="store_true",
        help="also serve with the search engine (FLEETPROMPT_SEARCH_INDEX=memory), cache off",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated endpoint and server names to keep (substrings; the ceiling "
        "always runs), e.g. 'common word,engine,no cache'",
    )


def _chosen(
    endpoints: dict[str, str], url: str, args: argparse.Namespace
) -> tuple[dict[str, str], dict[str, tuple[list[str], dict[str, str]]]]:
    """The endpoints and servers to run (``--only``, ``--engine``)."""
    wanted = [word for word in args.only.split(",") if word]
    if wanted:
        endpoints = {k: v for k, v in endpoints.items() if any(w in k for w in wanted)}
    configurations = {
        "granian": _fleetprompt(url),
        "uvicorn": _fleetprompt(url, "--server", "uvicorn"),
        "granian, no cache": _fleetprompt(url, FLEETPROMPT_CACHE_MB="0"),
    }
    if args.engine:
        configurations["granian, engine, no cache"] = _fleetprompt(
            url, FLEETPROMPT_CACHE_MB="0", FLEETPROMPT_SEARCH_INDEX="memory"
        )
    if wanted:
        configurations = {
            k: v for k, v in configurations.items() if k == "granian" or any(w in k for w in wanted)
        }
    return endpoints, configurations


def _build_engines(servers: dict[str, hb.Server], endpoints: dict[str, str]) -> None:
    """An engine builds its index at its first search: ask it one, and wait."""
    import httpx  # noqa: PLC0415

    for server in servers.values():
        if "engine" in server.name:
            httpx.get(server.url + endpoints_path(endpoints), timeout=1200)


def endpoints_path(endpoints: dict[str, str]) -> str:
    """A relevance search with words among ``endpoints`` (the common word's)."""
    return next(
        (path for path in endpoints.values() if "?q=" in path), "/v1/public/listings/search?q=agent"
    )


@contextlib.contextmanager
def _baseline_copy(dataset: hb.Dataset, directory: Path) -> Iterator[str]:
    """A copy of the SQLite catalogue at the baseline's schema revision."""
    source = dataset.url.database
    assert source is not None
    copy = directory / "baseline.db"
    shutil.copyfile(source, copy)
    engine = sa.create_engine(f"sqlite:///{copy}")
    try:
        command.downgrade(alembic_config(engine), BASELINE_REVISION)
    finally:
        engine.dispose()
    yield f"sqlite:///{copy}"


def _fleetprompt(url: str, *extra: str, **env: str) -> tuple[list[str], dict[str, str]]:
    command_line = [*hb._fleetprompt_command(), "serve", "--host", hb.HOST, *extra]
    environment = hb._clean_env(
        FLEETPROMPT_DATABASE_URL=url,
        FLEETPROMPT_CURSOR_KEY=hb.sb.CURSOR_KEY.decode("ascii"),
        FLEETPROMPT_RATE_LIMITS="off",
        FLEETPROMPT_IMAGE_HOSTS=hb.sb.IMAGE_HOST,
        FLEETPROMPT_LOG_LEVEL="INFO",
        **env,
    )
    return command_line, environment


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=hb.DEFAULT_CACHE)
    parser.add_argument("--write-docs", action="store_true")
    _engine_options(parser)
    parser.add_argument(
        "--samples", type=Path, default=SAMPLES, help="where the raw samples are written (JSON)"
    )
    parser.add_argument(
        "--replot",
        action="store_true",
        help="measure nothing: report and chart the samples of --samples again",
    )
    args = parser.parse_args()
    if args.replot:
        recorded = json.loads(args.samples.read_text(encoding="utf-8"))
        finish([Sample(**item) for item in recorded["samples"]], recorded["endpoints"],
               recorded["servers"], args, tuple(recorded["load"]))  # fmt: skip
        return
    hb.wrk_path()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    with (
        tempfile.TemporaryDirectory(prefix="fleetprompt_server_bench_") as temporary,
        hb.sqlite_dataset(args.cache_dir, args.size, False) as dataset,
        contextlib.ExitStack() as stack,
    ):
        directory = Path(temporary)
        url = dataset.url.render_as_string(hide_password=False)
        endpoints = _endpoints(dataset.meta)
        endpoints, configurations = _chosen(endpoints, url, args)
        servers: dict[str, hb.Server] = {}
        for name, (line, env) in configurations.items():
            servers[name] = stack.enter_context(hb.serving(name, line, env, directory))
        if args.baseline_src is not None:
            base_url = stack.enter_context(_baseline_copy(dataset, directory))
            line, env = _fleetprompt(base_url)
            # The baseline's own command line (the installed script may name newer modules).
            line[: len(hb._fleetprompt_command())] = [
                sys.executable,
                "-c",
                "from fleetprompt_http.cli import main; main()",
            ]
            env["PYTHONPATH"] = str(args.baseline_src)
            servers["baseline"] = stack.enter_context(hb.serving("baseline", line, env, directory))
        # The ceiling answers the bytes FleetPrompt answered.
        bodies = {}
        import httpx  # noqa: PLC0415

        for index, path in enumerate(endpoints.values()):
            answer = httpx.get(servers["granian"].url + path, timeout=60)
            bodies[f"e{index}"] = {"status": answer.status_code, "body": answer.json()}
        bodies_file = directory / "bodies.json"
        bodies_file.write_text(json.dumps(bodies), encoding="utf-8")
        line = [
            sys.executable, "-m", "uvicorn", "http_ceiling:create_app", "--factory",
            "--app-dir", str(Path(__file__).parent), "--host", hb.HOST,
            "--no-access-log", "--no-server-header", "--log-level", "warning",
        ]  # fmt: skip
        env = hb._clean_env(FLEETPROMPT_BENCH_CEILING_BODIES=str(bodies_file))
        servers["ceiling"] = stack.enter_context(hb.serving("ceiling", line, env, directory))
        _build_engines(servers, endpoints)
        for server in servers.values():  # warm-up: every cache filled, every page touched
            for index, path in enumerate(endpoints.values()):
                target = f"/ceiling/e{index}" if server.name == "ceiling" else path
                _wrk(server.url + target, 1, 4)
        for round_ in range(args.rounds):
            for index, (endpoint, path) in enumerate(endpoints.items()):
                for server in servers.values():
                    target = f"/ceiling/e{index}" if server.name == "ceiling" else path
                    rps, p99 = _wrk(server.url + target, args.duration, args.connections)
                    samples.append(Sample(server.name, endpoint, rps, p99))
                    print(f"round {round_ + 1} {endpoint:<22} {server.name:<18} "
                          f"{rps:>9,.0f} req/s  p99 {p99:7.1f} ms", flush=True)  # fmt: skip
    args.samples.parent.mkdir(parents=True, exist_ok=True)
    args.samples.write_text(
        json.dumps(
            {
                "endpoints": list(endpoints),
                "servers": list(servers),
                "load": os.getloadavg(),
                "samples": [vars(sample) for sample in samples],
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    finish(samples, list(endpoints), list(servers), args, os.getloadavg())


def finish(
    samples: list[Sample],
    endpoints: list[str],
    servers: list[str],
    args: argparse.Namespace,
    load: tuple[float, ...],
) -> None:
    lines = report(samples, endpoints, servers, args, load)
    chart = chart_of(samples, endpoints, servers)
    if chart is not None:
        picture = chart.relative_to(DOCS.parent)
        lines += ["", f"![Throughput against the ceiling per endpoint]({picture})"]
    print("\n".join(lines))
    if args.write_docs:
        write_docs(lines)


def chart_of(samples: list[Sample], endpoints: list[str], servers: list[str]) -> Path | None:
    """A bar chart of each server's median share of the ceiling per endpoint (needs the
    ``bench`` extra, matplotlib); ``None`` without matplotlib."""
    try:
        import matplotlib as mpl  # noqa: PLC0415

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ModuleNotFoundError:
        print("(no chart: pip install -e '.[bench]' for matplotlib)")
        return None
    shown = [server for server in servers if server != "ceiling"]
    figure, axes = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(shown)
    for offset, server in enumerate(shown):
        shares = []
        for endpoint in endpoints:
            mine = [s for s in samples if s.server == server and s.endpoint == endpoint]
            top = [s for s in samples if s.server == "ceiling" and s.endpoint == endpoint]
            shares.append(
                100 * statistics.median(m.rps / c.rps for m, c in zip(mine, top, strict=True))
            )
        axes.bar([i + offset * width for i in range(len(endpoints))], shares, width, label=server)
    axes.axhline(50, color="grey", linestyle="--", linewidth=1, label="target: 50 %")
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(endpoints))], endpoints, fontsize=8)
    axes.set_ylabel("% of the bare-Litestar ceiling (median of rounds)")
    axes.set_title("Public reads, one worker, SQLite: share of the ceiling")
    axes.legend(fontsize=8)
    figure.tight_layout()
    CHART.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(CHART, dpi=110)
    plt.close(figure)
    return CHART


def report(
    samples: list[Sample],
    endpoints: list[str],
    servers: list[str],
    args: argparse.Namespace,
    load: tuple[float, ...],
) -> list[str]:
    def of(server: str, endpoint: str) -> list[Sample]:
        return [s for s in samples if s.server == server and s.endpoint == endpoint]

    lines = [
        SECTION,
        "",
        f"`python bench/server_bench.py --size {args.size} --rounds {args.rounds} "
        f"--duration {args.duration:g}"
        + (" --baseline-src /work/base/src" if args.baseline_src else "")
        + " --write-docs` (`apt-get install -y wrk`). Generated by the script; do not edit by "
        "hand. One SQLite catalogue of "
        f"{args.size:,} published listings, every server up at once with one worker, "
        f"wrk at {args.connections} connections, {args.rounds} interleaved rounds of "
        f"{args.duration:g} s per endpoint and server; medians over the rounds; ratio = the "
        "median of the per-round ratios to the ceiling. `baseline` is the code before "
        "this work (commit 9b7714e), `granian, no cache` is today's code with every "
        "request a cache miss. The machine was shared with other work (load average at "
        f"the end {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} on {os.cpu_count()} cores): "
        "the ratios are the result, the absolute numbers are not.",
        "",
        "| endpoint | server | req/s | ratio to ceiling | p99 ms |",
        "|---|---|---:|---:|---:|",
    ]
    for endpoint in endpoints:
        ceiling = of("ceiling", endpoint)
        for server in servers:
            mine = of(server, endpoint)
            ratios = [m.rps / c.rps for m, c in zip(mine, ceiling, strict=True) if c.rps]
            ratio = "" if server == "ceiling" else f"{statistics.median(ratios):.0%}"
            lines.append(
                f"| {endpoint} | {server} | {statistics.median(s.rps for s in mine):,.0f} | "
                f"{ratio} | {statistics.median(s.p99_ms for s in mine):.1f} |"
            )
    if "baseline" in servers:
        lines += ["", "Uncached path against the baseline (median of per-round ratios):", ""]
        for endpoint in endpoints:
            base = of("baseline", endpoint)
            mine = of("granian, no cache", endpoint)
            ratios = [m.rps / b.rps for m, b in zip(mine, base, strict=True) if b.rps]
            lines.append(f"- {endpoint}: {statistics.median(ratios):.2f}× the baseline")
    return lines


def write_docs(lines: list[str]) -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = "\n".join(lines) + "\n"
    if SECTION in text:
        start = text.index(SECTION)
        following = text.find("\n## ", start + len(SECTION))
        text = text[:start] + block + (text[following + 1 :] if following != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    DOCS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

"""Throughput and latency of the HTTP server over loopback, against a bare-Litestar ceiling.

For each database (SQLite, PostgreSQL) with N published listings (the
catalogue of ``bench/sql_bench.py``, bulk-loaded straight into the tables) and
each worker count (one, then all cores), the script starts ``fleetprompt
serve --workers W`` on 127.0.0.1 and loads it with ``wrk`` (16 keep-alive
connections, 10 s per measurement after a 1 s warm-up), endpoint by endpoint:

* public search (P1): browse (no filter), a common tag, a rare word, a common word;
* listing detail (P2), cycling over ~4 000 listings;
* listing create (B2) with a fresh ``Idempotency-Key`` per request;
* signed redemption (X1) of install tokens issued beforehand (bulk-inserted,
  one per request, each request signed with HMAC-SHA256 just before the run).

In the same run, ``bench/http_ceiling.py`` (a bare Litestar endpoint answering
the very JSON body FleetPrompt returned, from memory) is served by uvicorn
with the same worker count and loaded with the same requests; each endpoint's
throughput is reported as a ratio of that ceiling. Usage::

    python bench/http_bench.py [--sizes 100000] [--databases sqlite,postgresql]
        [--workers 1,2] [--duration 10] [--connections 16] [--endpoints ...]
        [--cache-dir /tmp/fleetprompt_http_bench] [--write-docs]

Needs ``wrk`` (``apt-get install wrk`` on Debian/Ubuntu, ``brew install wrk`` on
macOS). Rate limits are off (``FLEETPROMPT_RATE_LIMITS=off``); the server
logs at ``--log-level`` (INFO by default: one access line per request, as in
production) to a file.

Datasets are cached: the SQLite catalogue as a file under ``--cache-dir``
(copied to a working file per run) and the PostgreSQL one as a template
database ``fleetprompt_httpbench_<N>_<revision>`` (cloned per run into a
database dropped at the end); both are rebuilt when the schema revision
changes or with ``--rebuild``, and removed with ``--drop-cache``.
``--write-docs`` rewrites the ``## HTTP server`` section of
``docs/benchmarks.md``. Every server and every ``wrk`` stops by itself
(time-bounded) and is killed on any error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import sql_bench as sb
import sqlalchemy as sa

from fleetprompt_adapters import sql
from fleetprompt_adapters.sql import mapping as m
from fleetprompt_adapters.sql import tables as t
from fleetprompt_core import Role
from fleetprompt_core.base.enums import (
    InstallIntentStatus,
    InstallTargetSystem,
    InstallTokenStatus,
)
from fleetprompt_core.domain.model import InstallIntent, InstallToken, TargetContext
from fleetprompt_core.policies.tokens import INSTALL_TOKEN_PREFIX, generate_token, hash_token
from fleetprompt_http.client import REDEEM_PATH, signed_redeem_request

BENCH = Path(__file__).resolve().parent
DOCS = BENCH.parent / "docs" / "benchmarks.md"
SECTION = "## HTTP server"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "fleetprompt_http_bench"
REDEEM_SECRET = b"bench-redeem-secret-0123456789abcdef"
REDEEM_SOURCE = "whs"
HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 60.0
#: Redemption tokens provisioned per measurement: enough for this many per second.
REDEEM_BUDGET_PER_S = 3_000
WARMUP_REDEEM_TOKENS = 3_000
SEARCH_PATH = "/v1/public/listings/search"
RS = b"\x1e"  # separates the pre-built requests in a wrk request file

ENDPOINTS = (
    "search-browse",
    "search-tag",
    "search-q-rare",
    "search-q-common",
    "detail",
    "create",
    "redeem",
)
LABELS = {
    "search-browse": "search: browse, no filter (page of 50)",
    "search-tag": f"search: tag `{sb.COMMON_TAG}` (page of 50)",
    "search-q-rare": "search: q = rare word",
    "search-q-common": f"search: q = `{sb.COMMON_TERM}` (common word, page of 50)",
    "detail": "listing detail",
    "create": "listing create (idempotent)",
    "redeem": "signed redemption",
}
READ_TARGETS = ("search-browse", "search-tag", "search-q-rare", "search-q-common", "detail")
TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0
TARGET_REDEEM_RPS = 1_000.0

# --------------------------------------------------------------------------- wrk

WRK_SCRIPT = r"""
-- Replays pre-built raw HTTP requests (written by bench/http_bench.py), separated by
-- the byte 0x1E. args: file, mode ("cycle" | "once" | "template"), nonce.
-- Each thread takes every n-th request, so no two threads send the same one.
-- "template" replaces @@KEY@@ by a key unique to the request; "once" counts in
-- `wrapped` how often the requests ran out (redemption tokens must not repeat).
local threads = {}
local count = 0

function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  mode = args[2]
  nonce = args[3]
  reqs = {}
  local start, n = 1, 0
  local nthreads = tonumber(args[4])
  while true do
    local stop = string.find(data, "\30", start, true)
    if not stop then break end
    if n % nthreads == id then
      reqs[#reqs + 1] = string.sub(data, start, stop - 1)
    end
    n = n + 1
    start = stop + 1
  end
  index = 0
  seq = 0
  wrapped = 0
end

function request()
  index = index + 1
  if index > #reqs then
    index = 1
    wrapped = wrapped + 1
  end
  if mode == "template" then
    seq = seq + 1
    return (string.gsub(reqs[index], "@@KEY@@", nonce .. "-" .. id .. "-" .. seq))
  end
  return reqs[index]
end

function done(summary, latency, requests)
  local w = 0
  for _, thread in ipairs(threads) do
    w = w + (thread:get("wrapped") or 0)
  end
  if mode ~= "once" then w = 0 end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50": %d, "p90": %d, "p99": %d, ' ..
    '"max": %d, "mean": %.1f, "wrapped": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, w))
end
"""

INSTALL_HINT = (
    "wrk is not installed. Install it with `apt-get install -y wrk` (Debian/Ubuntu), "
    "`brew install wrk` (macOS), or build it from https://github.com/wg/wrk."
)


@dataclass
class Wrk:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    non_2xx: int
    socket_errors: int
    wrapped: int
    #: CPU used during the run, in cores: by the server's processes, by its PostgreSQL
    #: backends, by wrk, and by every other process on the machine (other load, which
    #: distorts the figures).
    server_cores: float = 0.0
    database_cores: float = 0.0
    wrk_cores: float = 0.0
    other_cores: float = 0.0


# --------------------------------------------------------------------------- CPU accounting

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_s() -> float:
    """CPU seconds spent by everything on the machine since boot (not idle, not iowait)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _HZ


def _scan(session: int, database: str | None) -> dict[int, tuple[str, int]]:
    """``pid → (group, CPU ticks)`` of the live processes in ``session`` (group
    ``server``: a server and its workers) and of the PostgreSQL backends connected to
    ``database`` (group ``database``; ``None`` for SQLite, which runs in-process)."""
    found: dict[int, tuple[str, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as handle:
                comm, rest = handle.read().rsplit(")", 1)
            fields = rest.split()
            ticks = int(fields[11]) + int(fields[12])  # utime, stime
            if int(fields[3]) == session:  # fields[0] is the state, stat's field 3
                found[int(entry.name)] = ("server", ticks)
            elif database and comm.endswith("(postgres"):
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    title = handle.read().decode("utf-8", "replace")
                if f" {database} " in title:
                    found[int(entry.name)] = ("database", ticks)
        except (OSError, ValueError, IndexError):
            continue
    return found


class CpuWatch:
    """CPU seconds of a server's processes and of its database backends over a period.

    A thread samples ``/proc`` every 0.2 s, so that processes which end meanwhile
    (pooled database connections closed after use) still count up to their last
    sample; processes born meanwhile count from zero.
    """

    def __init__(self, session: int, database: str | None) -> None:
        self.session, self.database = session, database
        self.first = _scan(session, database)
        self.last = dict(self.first)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(0.2):
            self.last.update(_scan(self.session, self.database))

    def stop(self) -> dict[str, float]:
        self.stopped.set()
        self.thread.join()
        self.last.update(_scan(self.session, self.database))
        used = {"server": 0.0, "database": 0.0}
        for pid, (group, ticks) in self.last.items():
            used[group] += (ticks - self.first.get(pid, (group, 0))[1]) / _HZ
        return used


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def other_load(session: int, database: str | None, seconds: float = 1.0) -> float:
    """Cores used by processes other than this one and the server, over ``seconds``."""
    machine, own = _machine_busy_s(), _self_cpu_s()
    watch = CpuWatch(session, database)
    time.sleep(seconds)
    used = _machine_busy_s() - machine
    ours = sum(watch.stop().values()) + _self_cpu_s() - own
    return max(0.0, used - ours) / seconds


def wait_for_quiet(
    session: int, database: str | None, *, threshold: float, timeout_s: float
) -> float:
    """Wait (at most ``timeout_s``) until other processes use under ``threshold`` cores."""
    deadline = time.monotonic() + timeout_s
    while True:
        load = other_load(session, database)
        if load < threshold or time.monotonic() > deadline:
            if load >= threshold:
                print(f"    (machine still busy: {load:.2f} cores used by others)", flush=True)
            return load
        print(f"    waiting for a quiet machine ({load:.2f} cores used by others)…", flush=True)
        time.sleep(2.0)


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit(INSTALL_HINT)
    return path


def wrk_version() -> str:
    run = subprocess.run(  # noqa: S603 - a fixed command
        [wrk_path(), "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    return (run.stdout or run.stderr).split("Copyright")[0].strip()


def run_wrk(
    url: str,
    requests_file: Path,
    script: Path,
    *,
    mode: str,
    seconds: float,
    connections: int,
    threads: int,
    session: int | None = None,
    database: str | None = None,
) -> Wrk:
    """One bounded ``wrk`` run replaying ``requests_file``; its summary, with the CPU
    used meanwhile by the server (the processes of ``session``), its PostgreSQL backends
    (connected to ``database``), wrk and the rest of the machine."""
    nonce = secrets.token_hex(6)
    command = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        str(requests_file),
        mode,
        nonce,
        str(threads),
    ]
    started, machine, children, own = (
        time.perf_counter(),
        _machine_busy_s(),
        _children_cpu_s(),
        _self_cpu_s(),
    )
    watch = CpuWatch(session, database) if session else None
    try:
        run = subprocess.run(  # noqa: S603 - wrk with arguments built here
            command, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    finally:
        used = watch.stop() if watch else {"server": 0.0, "database": 0.0}
    elapsed = time.perf_counter() - started
    machine = _machine_busy_s() - machine
    server, backends = used["server"], used["database"]
    wrk = _children_cpu_s() - children
    own = _self_cpu_s() - own
    line = next((x for x in run.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if run.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    duration = raw["duration_us"] / 1e6
    return Wrk(
        requests=raw["requests"],
        duration_s=duration,
        rps=raw["requests"] / duration,
        p50_ms=raw["p50"] / 1000,
        p90_ms=raw["p90"] / 1000,
        p99_ms=raw["p99"] / 1000,
        max_ms=raw["max"] / 1000,
        mean_ms=raw["mean"] / 1000,
        non_2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        wrapped=raw["wrapped"],
        server_cores=server / elapsed,
        database_cores=backends / elapsed,
        wrk_cores=wrk / elapsed,
        other_cores=max(0.0, machine - server - backends - wrk - own) / elapsed,
    )


def raw_request(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """A complete HTTP/1.1 request as wrk will send it."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def write_requests(path: Path, requests: Sequence[bytes]) -> Path:
    with path.open("wb") as handle:
        for request in requests:
            assert RS not in request
            handle.write(request + RS)
    return path


# --------------------------------------------------------------------------- datasets


@dataclass
class Meta:
    """What the requests need to know about a loaded catalogue."""

    size: int
    rare_term: str
    detail_ids: list[str]
    installable: list[tuple[str, str]]  # (listing id, its newest release id)
    publisher_external_id: str
    rows: int
    load_s: float


@dataclass
class Dataset:
    database: str
    url: sa.URL
    meta: Meta
    drop: Callable[[], None]


def _revision() -> str:
    return sql.head_revision() or "none"


def _meta_path(cache: Path, size: int) -> Path:
    return cache / f"meta-{size}-{_revision()}.json"


def _load(url: sa.URL, size: int, cache: Path) -> Meta:
    """Migrate and bulk-load the catalogue of ``bench/sql_bench.py``; its request metadata."""
    engine = sql.create_engine(url)
    try:
        sql.upgrade(engine)
    finally:
        engine.dispose()
    catalogue = sb.Catalogue(size)
    load = sb.load_sql(url, catalogue)
    engine = sql.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.releases.c.listing_id, t.releases.c.release_id).where(
                    t.releases.c.listing_id.in_(catalogue.installable_ids)
                )
            ).all()
            conn.rollback()
    finally:
        engine.dispose()
    newest: dict[str, str] = {}
    for listing_id, release_id in rows:
        newest[listing_id] = max(newest.get(listing_id, ""), release_id)
    meta = Meta(
        size=size,
        rare_term=catalogue.rare_term(),
        detail_ids=list(catalogue.detail_ids),
        installable=sorted(newest.items()),
        publisher_external_id=catalogue.users[0].external_id,
        rows=load.rows,
        load_s=load.total_s,
    )
    _meta_path(cache, size).write_text(json.dumps(meta.__dict__), encoding="utf-8")
    return meta


def _read_meta(cache: Path, size: int) -> Meta | None:
    path = _meta_path(cache, size)
    if not path.exists():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["installable"] = [tuple(pair) for pair in raw["installable"]]
    return Meta(**raw)


@contextlib.contextmanager
def sqlite_dataset(cache: Path, size: int, rebuild: bool) -> Iterator[Dataset]:
    base = cache / f"sqlite-{size}-{_revision()}.db"
    meta = _read_meta(cache, size)
    if rebuild or meta is None or not base.exists():
        print(f"sqlite: loading {size:,} listings into {base} (cached for next runs)…", flush=True)
        partial = base.with_suffix(".partial")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{partial}{suffix}").unlink(missing_ok=True)
        meta = _load(sa.make_url(f"sqlite:///{partial}"), size, cache)
        partial.replace(base)
        print(f"  loaded {meta.rows:,} rows in {meta.load_s:.1f} s", flush=True)
    work = cache / f"work-sqlite-{size}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    shutil.copyfile(base, work)
    print(f"sqlite: working copy {work} in {time.perf_counter() - started:.1f} s", flush=True)

    def drop() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)

    try:
        yield Dataset("sqlite", sa.make_url(f"sqlite:///{work}"), meta, drop)
    finally:
        drop()


def _admin(server: sa.URL) -> sa.Engine:
    return sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def _template_name(size: int) -> str:
    return f"fleetprompt_httpbench_{size}_{_revision()}"


@contextlib.contextmanager
def postgres_dataset(server_url: str, cache: Path, size: int, rebuild: bool) -> Iterator[Dataset]:
    server = sql.normalize_url(server_url)
    template = _template_name(size)
    marker = f"fleetprompt http bench cache, {size} listings: complete"
    admin = _admin(server)
    try:
        with admin.connect() as conn:
            comment = conn.execute(
                sa.text(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname = :name"
                ),
                {"name": template},
            ).scalar()
        meta = _read_meta(cache, size)
        if rebuild or comment != marker or meta is None:
            print(f"postgresql: loading {size:,} listings into template database {template}…")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
                conn.exec_driver_sql(f'CREATE DATABASE "{template}"')
            meta = _load(server.set(database=template), size, cache)
            with admin.connect() as conn:
                conn.exec_driver_sql(f"COMMENT ON DATABASE \"{template}\" IS '{marker}'")
            print(f"  loaded {meta.rows:,} rows in {meta.load_s:.1f} s", flush=True)
        work = f"fleetprompt_httpbench_work_{secrets.token_hex(4)}"
        started = time.perf_counter()
        with admin.connect() as conn:
            try:
                conn.exec_driver_sql(
                    f'CREATE DATABASE "{work}" TEMPLATE "{template}" STRATEGY FILE_COPY'
                )
            except sa.exc.ProgrammingError:  # before PostgreSQL 15
                conn.exec_driver_sql(f'CREATE DATABASE "{work}" TEMPLATE "{template}"')
        print(f"postgresql: working copy {work} in {time.perf_counter() - started:.1f} s")

        def drop() -> None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{work}" WITH (FORCE)')

        try:
            yield Dataset("postgresql", server.set(database=work), meta, drop)
        finally:
            drop()
    finally:
        admin.dispose()


def drop_cache(cache: Path, server_url: str) -> None:
    """Remove the SQLite files and metadata, and drop every benchmark database."""
    shutil.rmtree(cache, ignore_errors=True)
    admin = _admin(sql.normalize_url(server_url))
    try:
        with admin.connect() as conn:
            names = conn.execute(
                sa.text(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'fleetprompt_httpbench_%'"
                )
            ).scalars()
            for name in list(names):
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                print(f"dropped database {name}")
    finally:
        admin.dispose()
    print(f"removed {cache}")


# --------------------------------------------------------------------------- per-run data


@dataclass
class People:
    publisher_token: str
    buyer_token: str


def provision(dataset: Dataset, pools: Sequence[int]) -> tuple[People, list[list[str]]]:
    """API tokens for a publisher and a buyer, and pools of fresh install tokens
    (bulk-inserted with their intents, valid for two hours): one list per pool size."""
    engine = sql.create_engine(dataset.url, pool_size=1, max_overflow=0)
    try:
        app = sql.bootstrap(engine)
        buyer = app.operator.ensure_user("bench-buyer", display_name="Bench Buyer")
        publisher = dataset.meta.publisher_external_id
        app.operator.ensure_user(publisher, roles=[Role.PUBLISHER])
        people = People(
            publisher_token=app.credentials.issue_api_token(publisher, name="bench").api_token,
            buyer_token=app.credentials.issue_api_token("bench-buyer", name="bench").api_token,
        )
        now = int(time.time() * 1000)
        expires = now + 2 * 3_600_000
        installable = dataset.meta.installable
        copy = not dataset.url.get_backend_name().startswith("sqlite")
        result: list[list[str]] = []
        serial = 0
        for size in pools:
            raw_tokens: list[str] = []
            intents: list[dict[str, Any]] = []
            tokens: list[dict[str, Any]] = []
            for _ in range(size):
                serial += 1
                listing_id, release_id = installable[serial % len(installable)]
                intent_id = f"ii_bench{secrets.token_hex(9).upper()}"
                intents.append(
                    m.intent_row(
                        InstallIntent(
                            install_intent_id=intent_id,
                            buyer_user_id=buyer.user_id,
                            listing_id=listing_id,
                            release_id=release_id,
                            target_system=InstallTargetSystem.WHS,
                            target_context=TargetContext(),
                            status=InstallIntentStatus.TOKEN_ISSUED,
                            expires_at_ms=expires,
                            created_at_ms=now,
                            updated_at_ms=now,
                        )
                    )
                )
                raw = generate_token(INSTALL_TOKEN_PREFIX)
                raw_tokens.append(raw)
                tokens.append(
                    m.token_row(
                        InstallToken(
                            token_id=f"itk_bench{secrets.token_hex(9).upper()}",
                            install_intent_id=intent_id,
                            buyer_user_id=buyer.user_id,
                            target_system=InstallTargetSystem.WHS,
                            token_hash=hash_token(raw),
                            status=InstallTokenStatus.ISSUED,
                            issued_at_ms=now,
                            expires_at_ms=expires,
                        )
                    )
                )
            with engine.begin() as conn:
                sb._insert(conn, t.install_intents, intents, copy)
                sb._insert(conn, t.install_tokens, tokens, copy)
            result.append(raw_tokens)
    finally:
        engine.dispose()
    return people, result


# --------------------------------------------------------------------------- servers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    #: The PostgreSQL database it uses (its backends' CPU is the server's too).
    database: str | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def _fleetprompt_command() -> list[str]:
    script = shutil.which("fleetprompt", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    return [sys.executable, "-c", "from fleetprompt_http.cli import main; main()"]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPROMPT_")}
    env.update(extra)
    return env


@contextlib.contextmanager
def serving(
    name: str,
    command: list[str],
    env: dict[str, str],
    directory: Path,
    database: str | None = None,
) -> Iterator[Server]:
    """A server process (its own session), healthy on ``/healthz``; always stopped."""
    port = _free_port()
    log = directory / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - commands built here
            [*command, "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, port, process, log, database)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with httpx.Client(timeout=2.0) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited at start-up:\n{_tail(log)}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(server.url + "/healthz").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not healthy in {STARTUP_TIMEOUT_S:.0f} s")
                time.sleep(0.1)
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


def _tail(log: Path) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-6000:]
    except OSError:
        return "(no log)"


def fleetprompt_server(
    dataset: Dataset, workers: int, directory: Path, log_level: str
) -> contextlib.AbstractContextManager[Server]:
    env = _clean_env(
        FLEETPROMPT_DATABASE_URL=dataset.url.render_as_string(hide_password=False),
        FLEETPROMPT_INTERNAL_REDEEM_SECRET=REDEEM_SECRET.decode("ascii"),
        FLEETPROMPT_CURSOR_KEY=sb.CURSOR_KEY.decode("ascii"),
        FLEETPROMPT_RATE_LIMITS="off",
        FLEETPROMPT_IMAGE_HOSTS=sb.IMAGE_HOST,
        FLEETPROMPT_LOG_LEVEL=log_level,
    )
    command = [*_fleetprompt_command(), "serve", "--host", HOST, "--workers", str(workers)]
    database = dataset.url.database if dataset.database == "postgresql" else None
    return serving(f"fleetprompt-{dataset.database}-w{workers}", command, env, directory, database)


def ceiling_server(
    bodies: Path, workers: int, directory: Path
) -> contextlib.AbstractContextManager[Server]:
    env = _clean_env(FLEETPROMPT_BENCH_CEILING_BODIES=str(bodies))
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "http_ceiling:create_app",
        "--factory",
        "--app-dir",
        str(BENCH),
        "--host",
        HOST,
        "--workers",
        str(workers),
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
    ]
    return serving(f"ceiling-w{workers}", command, env, directory)


# --------------------------------------------------------------------------- the workload


@dataclass
class Workload:
    """The requests of one endpoint: for FleetPrompt and for its ceiling."""

    name: str
    mode: str  # wrk script mode
    requests: list[bytes]
    ceiling: list[bytes]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


CREATE_BODY = json.dumps(
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


def search_paths(meta: Meta) -> dict[str, str]:
    return {
        "search-browse": SEARCH_PATH,
        "search-tag": f"{SEARCH_PATH}?tags={sb.COMMON_TAG}",
        "search-q-rare": f"{SEARCH_PATH}?q={meta.rare_term}",
        "search-q-common": f"{SEARCH_PATH}?q={sb.COMMON_TERM}",
    }


def _ceiling_path(name: str, path: str) -> str:
    query = path.partition("?")[2]
    return f"/ceiling/{name}" + (f"?{query}" if query else "")


def workload(name: str, meta: Meta, people: People, tokens: Sequence[str] = ()) -> Workload:
    if name.startswith("search-"):
        path = search_paths(meta)[name]
        return Workload(
            name,
            "cycle",
            [raw_request("GET", path)],
            [raw_request("GET", _ceiling_path(name, path))],
        )
    if name == "detail":
        paths = [f"/v1/public/listings/{listing_id}" for listing_id in meta.detail_ids]
        return Workload(
            name,
            "cycle",
            [raw_request("GET", path) for path in paths],
            [raw_request("GET", f"/ceiling/detail?id={path.rsplit('/', 1)[1]}") for path in paths],
        )
    if name == "create":
        headers = {
            **_auth(people.publisher_token),
            "Content-Type": "application/json",
            "Idempotency-Key": "bench-@@KEY@@",
        }
        return Workload(
            name,
            "template",
            [raw_request("POST", "/v1/publisher/listings", headers, CREATE_BODY)],
            [raw_request("POST", "/ceiling/create", headers, CREATE_BODY)],
        )
    if name == "redeem":
        fp, ceiling = [], []
        for token in tokens:
            signed = signed_redeem_request(token, "whs", key=REDEEM_SECRET, source=REDEEM_SOURCE)
            fp.append(raw_request("POST", REDEEM_PATH, dict(signed.headers), signed.body))
            ceiling.append(
                raw_request("POST", "/ceiling/redeem", dict(signed.headers), signed.body)
            )
        return Workload(name, "once", fp, ceiling)
    raise ValueError(name)


@dataclass
class Captured:
    status: int
    body: Any
    #: FleetPrompt's body size (detail: the mean over 200 listings).
    size: int
    #: The ceiling's body size (the same JSON, re-serialised by the bare app).
    ceiling_size: int | None = None


def capture(server: Server, meta: Meta, people: People, token: str) -> dict[str, Captured]:
    """Each endpoint's answer, checked: the bodies the ceiling will serve."""
    found: dict[str, Captured] = {}
    with httpx.Client(base_url=server.url, timeout=30.0) as client:

        def keep(name: str, response: httpx.Response, status: int) -> None:
            if response.status_code != status:
                raise RuntimeError(f"{name}: HTTP {response.status_code} {response.text[:500]}")
            found[name] = Captured(status, response.json(), len(response.content))

        for name, path in search_paths(meta).items():
            keep(name, client.get(path), 200)
        sizes = []
        for listing_id in meta.detail_ids[:200]:
            response = client.get(f"/v1/public/listings/{listing_id}")
            assert response.status_code == 200, response.text
            sizes.append((len(response.content), listing_id))
        mean = statistics.mean(size for size, _ in sizes)
        _, typical = min(sizes, key=lambda pair: abs(pair[0] - mean))
        keep("detail", client.get(f"/v1/public/listings/{typical}"), 200)
        found["detail"].size = round(mean)
        keep(
            "create",
            client.post(
                "/v1/publisher/listings",
                content=CREATE_BODY,
                headers={
                    **_auth(people.publisher_token),
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"bench-capture-{secrets.token_hex(6)}",
                },
            ),
            201,
        )
        signed = signed_redeem_request(token, "whs", key=REDEEM_SECRET, source=REDEEM_SOURCE)
        keep("redeem", client.post(REDEEM_PATH, content=signed.body, headers=signed.headers), 200)
    return found


# --------------------------------------------------------------------------- measuring


@dataclass
class Result:
    server: str  # "sqlite" | "postgresql" | "ceiling"
    size: int
    workers: int
    endpoint: str
    body_bytes: int
    wrk: Wrk


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    metas: dict[tuple[str, int], Meta] = field(default_factory=dict)
    postgres_version: str | None = None
    started: float = field(default_factory=time.time)


@dataclass
class Options:
    duration: float
    warmup: float
    connections: int
    threads: int
    endpoints: list[str]
    log_level: str
    #: Before each measurement, wait up to this long for other processes to use
    #: under ``quiet_threshold`` cores (0 = do not wait).
    quiet_timeout: float = 120.0
    quiet_threshold: float = 0.25
    #: Repeat a measurement (at most this often) when other processes took more
    #: than ``retry_threshold`` cores during it.
    retries: int = 2
    retry_threshold: float = 0.4


def _script(directory: Path) -> Path:
    script = directory / "replay.lua"
    if not script.exists():
        script.write_text(WRK_SCRIPT, encoding="utf-8")
    return script


def warm_up(server: Server, requests: list[bytes], directory: Path, options: Options) -> None:
    """Load every worker (and the database cache) for a few seconds; nothing is recorded."""
    run_wrk(
        server.url,
        write_requests(directory / "warm-up.requests", requests),
        _script(directory),
        mode="cycle",
        seconds=2,
        connections=options.connections,
        threads=options.threads,
    )


def measure(
    server: Server,
    name: str,
    mode: str,
    requests_for: Callable[[int], list[bytes]],
    *,
    directory: Path,
    options: Options,
    warm: list[bytes] | None = None,
) -> Wrk:
    """``options.duration`` seconds of wrk after a warm-up, on a quiet machine if possible.

    When other processes took more than ``options.retry_threshold`` cores during
    the run, it is repeated (at most ``options.retries`` times, with
    ``requests_for(attempt)``) and the least disturbed run is kept.
    """
    script = _script(directory)
    session = server.process.pid
    best: Wrk | None = None
    for attempt in range(options.retries + 1):
        if options.quiet_timeout > 0:
            wait_for_quiet(
                session,
                server.database,
                threshold=options.quiet_threshold,
                timeout_s=options.quiet_timeout,
            )
        requests = requests_for(attempt)
        if options.warmup > 0:
            run_wrk(
                server.url,
                write_requests(directory / f"{name}.warm", warm or requests),
                script,
                mode=mode,
                seconds=options.warmup,
                connections=options.connections,
                threads=options.threads,
            )
        wrk = run_wrk(
            server.url,
            write_requests(directory / f"{name}.requests", requests),
            script,
            mode=mode,
            seconds=options.duration,
            connections=options.connections,
            threads=options.threads,
            session=session,
            database=server.database,
        )
        if best is None or wrk.other_cores < best.other_cores:
            best = wrk
        if wrk.other_cores <= options.retry_threshold:
            break
        print(
            f"    {name}: other processes used {wrk.other_cores:.2f} cores meanwhile; "
            + ("measuring again" if attempt < options.retries else "keeping the quietest run"),
            flush=True,
        )
    assert best is not None
    return best


def report(result: Result) -> Result:
    w = result.wrk
    flags = []
    if w.non_2xx:
        flags.append(f"{w.non_2xx} non-2xx")
    if w.socket_errors:
        flags.append(f"{w.socket_errors} socket errors")
    if w.wrapped:
        flags.append("TOKENS RAN OUT")
    print(
        f"  {result.server:<10} w={result.workers} {result.endpoint:<16} "
        f"{w.rps:9,.0f} req/s  p50 {w.p50_ms:7.2f} ms  p99 {w.p99_ms:7.2f} ms  "
        f"max {w.max_ms:7.1f} ms  ({w.requests:,} requests, {result.body_bytes:,} B; "
        f"CPU server {w.server_cores:.2f}, db {w.database_cores:.2f}, wrk {w.wrk_cores:.2f}, "
        f"other {w.other_cores:.2f})" + (f"  [{', '.join(flags)}]" if flags else ""),
        flush=True,
    )
    return result


def run_fleetprompt(
    dataset: Dataset,
    workers_list: Sequence[int],
    options: Options,
    directory: Path,
    run: Run,
    bodies: dict[int, dict[str, Captured]],
) -> None:
    meta = dataset.meta
    run.metas[(dataset.database, meta.size)] = meta
    per_run = max(1_000, int(REDEEM_BUDGET_PER_S * options.duration))
    attempts = options.retries + 1
    pools = []
    for _ in workers_list:
        pools += [WARMUP_REDEEM_TOKENS * attempts, per_run * attempts]
    started = time.perf_counter()
    people, tokens = provision(dataset, pools)
    print(
        f"{dataset.database}: {sum(pools):,} install tokens provisioned in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    for index, workers in enumerate(workers_list):
        warm_tokens, measured_tokens = tokens[2 * index], tokens[2 * index + 1]
        with fleetprompt_server(dataset, workers, directory, options.log_level) as server:
            captured = capture(server, meta, people, warm_tokens.pop())
            bodies.setdefault(workers, captured)
            warm_up(server, workload("detail", meta, people).requests, directory, options)
            for name in options.endpoints:
                # Redemption warms up with tokens of its own; each attempt redeems new ones.
                work = workload(name, meta, people, warm_tokens if name == "redeem" else ())
                warm = work.requests if name == "redeem" else None

                def requests_for(
                    attempt: int, pool: list[str] = measured_tokens, work: Workload = work
                ) -> list[bytes]:
                    if work.mode != "once":
                        return work.requests
                    batch = pool[attempt * per_run : (attempt + 1) * per_run]
                    return workload(work.name, meta, people, batch).requests

                wrk = measure(
                    server,
                    name,
                    work.mode,
                    requests_for,
                    directory=directory,
                    options=options,
                    warm=warm,
                )
                run.results.append(
                    report(
                        Result(dataset.database, meta.size, workers, name, captured[name].size, wrk)
                    )
                )


def run_ceiling(
    workers: int,
    captured: dict[str, Captured],
    meta: Meta,
    options: Options,
    directory: Path,
    run: Run,
) -> None:
    bodies_file = directory / f"ceiling-bodies-w{workers}.json"
    bodies_file.write_text(
        json.dumps({name: {"status": c.status, "body": c.body} for name, c in captured.items()}),
        encoding="utf-8",
    )
    people = People("fpat_" + "x" * 49, "fpat_" + "x" * 49)
    tokens = [generate_token(INSTALL_TOKEN_PREFIX) for _ in range(1_000)]
    with ceiling_server(bodies_file, workers, directory) as server:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            for name, expected in captured.items():
                response = client.request(
                    "POST" if name in ("create", "redeem") else "GET", f"/ceiling/{name}"
                )
                assert response.status_code == expected.status, response.text
                expected.ceiling_size = len(response.content)
        for name in options.endpoints:
            requests = workload(name, meta, people, tokens).ceiling
            # Redemption requests may repeat here: the ceiling redeems nothing.
            mode = "template" if name == "create" else "cycle"
            wrk = measure(
                server,
                f"ceiling-{name}",
                mode,
                lambda _attempt, requests=requests: requests,
                directory=directory,
                options=options,
            )
            size = captured[name].ceiling_size or captured[name].size
            run.results.append(report(Result("ceiling", meta.size, workers, name, size, wrk)))


# --------------------------------------------------------------------------- reporting


def machine(run: Run) -> str:
    ram = "unknown RAM"
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    parts = [
        f"{os.cpu_count()} cores ({cpu})",
        ram,
        f"{platform.python_implementation()} {platform.python_version()}",
        f"uvicorn {metadata.version('uvicorn')} (uvloop, httptools)",
        f"Litestar {metadata.version('litestar')}",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    if run.postgres_version:
        parts.append(f"PostgreSQL {run.postgres_version} (local, default configuration)")
    parts.append(wrk_version())
    return ", ".join(parts) + f"; load average at the end {load}"


def command() -> str:
    args = list(sys.argv[1:])
    for index, arg in enumerate(args):
        if arg.startswith("--postgres-url="):
            url = sa.make_url(arg.split("=", 1)[1])
            args[index] = "--postgres-url=" + url.render_as_string(hide_password=True)
        elif index and args[index - 1] == "--postgres-url":
            args[index] = sa.make_url(arg).render_as_string(hide_password=True)
    return " ".join(["python bench/http_bench.py", *args])


def _ceiling_of(results: Sequence[Result], r: Result) -> Result | None:
    return next(
        (
            c
            for c in results
            if c.server == "ceiling" and c.workers == r.workers and c.endpoint == r.endpoint
        ),
        None,
    )


def table(results: Sequence[Result]) -> list[str]:
    lines = [
        "| server | workers | endpoint | body B | req/s | ceiling req/s | ratio "
        "| p50 ms | p99 ms | max ms | CPU ms/request | CPU cores server / db / wrk / other "
        "| errors |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    order = {"ceiling": 0, "sqlite": 1, "postgresql": 2}
    for r in sorted(
        results, key=lambda r: (r.workers, order[r.server], ENDPOINTS.index(r.endpoint))
    ):
        ceiling = _ceiling_of(results, r) if r.server != "ceiling" else None
        ratio = f"{r.wrk.rps / ceiling.wrk.rps:.0%}" if ceiling else ""
        top = f"{ceiling.wrk.rps:,.0f}" if ceiling else ""
        errors = []
        if r.wrk.non_2xx:
            errors.append(f"{r.wrk.non_2xx:,} non-2xx")
        if r.wrk.socket_errors:
            errors.append(f"{r.wrk.socket_errors:,} socket")
        if r.wrk.wrapped:
            errors.append("tokens ran out")
        cpu_ms = 1000 * (r.wrk.server_cores + r.wrk.database_cores) / r.wrk.rps
        lines.append(
            f"| {r.server} | {r.workers} | {LABELS[r.endpoint]} | {r.body_bytes:,} | "
            f"{r.wrk.rps:,.0f} | {top} | {ratio} | {r.wrk.p50_ms:.2f} | {r.wrk.p99_ms:.2f} | "
            f"{r.wrk.max_ms:.1f} | {cpu_ms:.2f} | "
            f"{r.wrk.server_cores:.2f} / {r.wrk.database_cores:.2f} / "
            f"{r.wrk.wrk_cores:.2f} / {r.wrk.other_cores:.2f} | {', '.join(errors) or '–'} |"
        )
    return lines


def targets(results: Sequence[Result]) -> list[tuple[str, str, int, str, bool]]:
    """``(target, database, workers, measured, met)`` for every target measured."""
    rows = []
    for r in results:
        if r.server == "ceiling":
            continue
        clean = not (r.wrk.non_2xx or r.wrk.socket_errors or r.wrk.wrapped)
        if r.endpoint in READ_TARGETS:
            ceiling = _ceiling_of(results, r)
            if ceiling is None:
                continue
            ratio = r.wrk.rps / ceiling.wrk.rps
            met = clean and ratio >= TARGET_RATIO and r.wrk.p99_ms < TARGET_P99_MS
            rows.append(
                (
                    f"{LABELS[r.endpoint]}: ≥ 50 % of ceiling, p99 < 25 ms",
                    r.server,
                    r.workers,
                    f"{ratio:.0%} of ceiling, p99 {r.wrk.p99_ms:.1f} ms",
                    met,
                )
            )
        elif r.endpoint == "redeem" and r.workers == 1:
            rows.append(
                (
                    "redemption ≥ 1 000/s on one worker",
                    r.server,
                    r.workers,
                    f"{r.wrk.rps:,.0f}/s",
                    clean and r.wrk.rps >= TARGET_REDEEM_RPS,
                )
            )
    return rows


def section(run: Run, options: Options) -> str:
    sizes = sorted({size for _, size in run.metas})
    rare = {size: meta.rare_term for (_, size), meta in run.metas.items()}
    intro = (
        "Generated by `bench/http_bench.py --write-docs`; do not edit by hand. Each database "
        f"holds the catalogue of `bench/sql_bench.py` ({', '.join(f'{s:,}' for s in sizes)} "
        "published listings, bulk-loaded and analysed). `fleetprompt serve --workers W` runs "
        f"on 127.0.0.1 with rate limits off and {options.log_level} logs (at INFO, one "
        "access line per request) to a file; `wrk` loads it over "
        f"{options.connections} keep-alive connections ({options.threads} wrk thread) for "
        f"{options.duration:g} s per endpoint after a {options.warmup:g} s warm-up, on the "
        "same machine (wrk takes CPU too). Detail cycles over ~4 000 listings; create sends "
        "a fresh Idempotency-Key per request; redemption redeems install tokens issued "
        "beforehand (bulk-inserted, one per request, every request HMAC-signed). The "
        "ceiling is `bench/http_ceiling.py`: a bare Litestar endpoint under the same uvicorn "
        "and worker count that answers, from memory, the JSON body FleetPrompt returned "
        "(for detail, the one closest to the mean size over 200 listings), re-serialised "
        "per request, to the same requests; ratio = FleetPrompt req/s ÷ ceiling req/s at "
        "the same worker count. Latencies are wrk's (closed loop: p50 ≈ connections ÷ "
        "throughput). CPU ms/request: server and database CPU per request. CPU cores: "
        "cores used during the run by the server's processes, "
        "its PostgreSQL backends, wrk, and everything else on the machine (other load "
        "distorts a run; before each one the script waits for a quiet machine and repeats "
        "a disturbed run, keeping the quietest)."
    )
    lines = [
        SECTION,
        "",
        f"`{command()}`",
        "",
        textwrap.fill(intro, width=78),
        "",
        textwrap.fill(f"Machine: {machine(run)}.", width=78),
        "",
        "Search queries: "
        + "; ".join(
            f"N = {size:,}: rare word `{rare[size]}`, common word `{sb.COMMON_TERM}`, "
            f"tag `{sb.COMMON_TAG}`"
            for size in sizes
        )
        + ".",
        "",
        *table(run.results),
        "",
        "Targets (public search and detail: ≥ 50 % of the ceiling with p99 < 25 ms at "
        f"{options.connections} connections; redemption ≥ 1 000/s on one worker):",
        "",
        "| target | database | workers | measured | result |",
        "|---|---|---:|---|---|",
    ]
    for target, database, workers, measured, met in targets(run.results):
        lines.append(
            f"| {target} | {database} | {workers} | {measured} | {'met' if met else '**missed**'} |"
        )
    return "\n".join(lines) + "\n"


def write_docs(text: str) -> None:
    lines = DOCS.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        body = "".join(lines).rstrip("\n")
        DOCS.write_text(body + "\n\n" + text, encoding="utf-8")
        return
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    rest = "".join(lines[end:])
    DOCS.write_text("".join(lines[:start]) + text + ("\n" + rest if rest else ""), encoding="utf-8")


# --------------------------------------------------------------------------- main


def parse_args() -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000", help="comma-separated listing counts")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=sb.DEFAULT_POSTGRES_URL)
    parser.add_argument(
        "--workers", default=f"1,{os.cpu_count() or 1}", help="comma-separated worker counts"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each one")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--log-level", default="INFO", help="the server's FLEETPROMPT_LOG_LEVEL")
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        default=120.0,
        help="seconds to wait before each measurement for other load to go (0: never wait)",
    )
    parser.add_argument(
        "--quiet-threshold", type=float, default=0.25, help="cores other processes may use"
    )
    parser.add_argument(
        "--retries", type=int, default=2, help="repeats of a measurement disturbed by others"
    )
    parser.add_argument(
        "--retry-threshold", type=float, default=0.4, help="cores of other load that disturb"
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--rebuild", action="store_true", help="reload the cached datasets")
    parser.add_argument("--drop-cache", action="store_true", help="remove the cache and exit")
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite {SECTION!r}")
    return parser, parser.parse_args()


def main() -> None:
    parser, args = parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    if args.drop_cache:
        drop_cache(args.cache_dir, args.postgres_url)
        return
    wrk_path()
    databases = [name.strip() for name in args.databases.split(",")]
    unknown = set(databases) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown databases: {sorted(unknown)}")
    endpoints = [name.strip() for name in args.endpoints.split(",")]
    if set(endpoints) - set(ENDPOINTS):
        parser.error(f"unknown endpoints: {sorted(set(endpoints) - set(ENDPOINTS))}")
    workers_list = [int(w) for w in args.workers.split(",")]
    options = Options(
        args.duration,
        args.warmup,
        args.connections,
        args.threads,
        endpoints,
        args.log_level,
        args.quiet_timeout,
        args.quiet_threshold,
        args.retries,
        args.retry_threshold,
    )
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    run = Run()
    if "postgresql" in databases:
        admin = _admin(sql.normalize_url(args.postgres_url))
        try:
            with admin.connect() as conn:
                run.postgres_version = conn.exec_driver_sql("SHOW server_version").scalar_one()
        finally:
            admin.dispose()
    with tempfile.TemporaryDirectory(prefix="fleetprompt_http_bench_") as temporary:
        directory = Path(temporary)
        for size in sizes:
            bodies: dict[int, dict[str, Captured]] = {}
            meta: Meta | None = None
            for database in databases:
                opener = (
                    sqlite_dataset(args.cache_dir, size, args.rebuild)
                    if database == "sqlite"
                    else postgres_dataset(args.postgres_url, args.cache_dir, size, args.rebuild)
                )
                with opener as dataset:
                    meta = dataset.meta
                    run_fleetprompt(dataset, workers_list, options, directory, run, bodies)
            assert meta is not None
            for workers in workers_list:
                run_ceiling(workers, bodies[workers], meta, options, directory, run)
    print()
    print(f"Machine: {machine(run)}")
    print()
    print("\n".join(table(run.results)))
    print()
    for target, database, workers, measured, met in targets(run.results):
        verdict = "met" if met else "MISSED"
        print(f"{verdict:<7} {target} — {database}, {workers} worker(s): {measured}")
    if args.write_docs:
        write_docs(section(run, options))
        print(f"\nrewrote {SECTION!r} in {DOCS}")


if __name__ == "__main__":
    main()

"""Every HTTP target of issue 11 in one interleaved run, against the bare-Litestar ceiling.

Per database (SQLite, PostgreSQL) and catalogue size (the catalogue of
``bench/sql_bench.py``, bulk-loaded once into ``--cache-dir`` and reused), the
script starts at once, each with one worker on 127.0.0.1:

* ``fleetprompt`` — ``fleetprompt serve`` (granian, public response cache on);
* ``no cache`` — the same with ``FLEETPROMPT_CACHE_MB=0`` (every read a miss);
* ``baseline`` — the code of ``--baseline-src`` (``git archive 9b7714e src``, the
  design before issue 11) on a copy of the catalogue downgraded to its schema;
* ``ceiling`` — ``bench/http_ceiling.py`` under granian: bare Litestar answering,
  from memory, the JSON FleetPrompt answered, to the same requests.

``wrk`` (one thread, 16 keep-alive connections) then loads them endpoint by
endpoint, server after server, for ``--rounds`` rounds of ``--duration``
seconds (interleaved: a change in the machine's load hits every server alike):

* public search (P1): browse, a common tag, a rare word (``search-q-common``,
  a common word, on request);
* listing detail (P2), cycling over :data:`DETAIL_LISTINGS` listings;
* listing create (B2) with a fresh ``Idempotency-Key`` per request;
* signed redemption (X1) of install tokens issued beforehand (bulk-inserted,
  one per request, each request signed with HMAC-SHA256).

At the largest size it then reads the resident set of the ``fleetprompt``
worker after at least 100 000 requests. Smaller sizes measure
the reads only (latency against catalogue size). It prints medians over the
rounds and the verdict of every target, keeps the raw samples in
``bench/results/http_bench.json`` (``--keep`` adds a run to them, replacing the
databases and sizes it measured; ``--replot`` reports them again) and, with
``--write-docs`` and the ``bench`` extra (matplotlib), draws
``docs/img/http_bench_ceiling.png`` and ``docs/img/http_bench_latency.png``. Usage::

    git archive 9b7714e src | tar -x -C /tmp/base
    python bench/http_bench.py --sizes 10000,100000 --databases sqlite,postgresql \
        --rounds 3 --duration 5 --baseline-src /tmp/base/src --write-docs

Needs ``wrk`` (``apt-get install wrk`` on Debian/Ubuntu, ``brew install wrk`` on
macOS). Datasets are cached: the SQLite catalogue as a file under
``--cache-dir`` (copied to a working file per run) and the PostgreSQL one as a
template database ``<prefix>_<N>_<revision>`` (cloned per run into a database
dropped at the end); both are rebuilt when the schema revision changes or with
``--rebuild``, and removed with ``--drop-cache``. ``--write-docs`` rewrites the
section :data:`SECTION` of ``docs/benchmarks.md``. Every server and every
``wrk`` stops by itself (time-bounded) and is killed on any error.
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
from dataclasses import dataclass
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
    AssetKind,
    InstallIntentStatus,
    InstallTargetSystem,
    InstallTokenStatus,
)
from fleetprompt_core.domain.model import (
    InstallIntent,
    InstallToken,
    TargetContext,
    accepted_targets,
)
from fleetprompt_core.policies.tokens import INSTALL_TOKEN_PREFIX, generate_token, hash_token
from fleetprompt_http.client import REDEEM_PATH, signed_redeem_request

BENCH = Path(__file__).resolve().parent
DOCS = BENCH.parent / "docs" / "benchmarks.md"
SECTION = "## HTTP server: every target in one run (issue 11)"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "fleetprompt_http_bench"
REDEEM_SECRET = b"bench-redeem-secret-0123456789abcdef"
REDEEM_SOURCE = "whs"
HOST = "127.0.0.1"
#: A server builds its in-RAM search index before it answers /healthz: at 100 000 listings
#: on a busy 2-core machine that alone took over a minute.
STARTUP_TIMEOUT_S = 240.0
#: Redemption tokens provisioned per measurement: enough for this many per second.
REDEEM_BUDGET_PER_S = 3_000
WARMUP_REDEEM_TOKENS = 3_000
SEARCH_PATH = "/v1/public/listings/search"
#: Detail requests cycle over this many listings (a hot set: the cache's case; the
#: ``no cache`` server measures every detail as a miss).
DETAIL_LISTINGS = 200
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


#: Name prefix of the PostgreSQL databases (``--database-prefix``).
DATABASE_PREFIX = "fleetprompt_httpbench"


def _template_name(size: int) -> str:
    return f"{DATABASE_PREFIX}_{size}_{_revision()}"


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
        work = f"{DATABASE_PREFIX}_work_{secrets.token_hex(4)}"
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
                sa.text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)"),
                {"prefix": DATABASE_PREFIX + "_"},
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
        # Only listings whose asset kind the target system accepts (ADR 0024): a token
        # for any other would be refused at redemption (404, not_installable).
        with engine.connect() as conn:
            kinds = dict(
                conn.execute(
                    sa.select(t.listings.c.listing_id, t.listings.c.asset_kind).where(
                        t.listings.c.listing_id.in_([lid for lid, _ in dataset.meta.installable])
                    )
                ).all()
            )
            conn.rollback()
        installable = [
            (lid, rid)
            for lid, rid in dataset.meta.installable
            if InstallTargetSystem.WHS in accepted_targets(AssetKind(kinds[lid]))
        ]
        assert installable, "no listing of the catalogue accepts WHS installs"
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
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
    # Anything of its session still alive (a server's workers may outlive their parent).
    for pid in _scan(process.pid, None):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


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
        hot = meta.detail_ids[:DETAIL_LISTINGS]
        paths = [f"/v1/public/listings/{listing_id}" for listing_id in hot]
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


def _first_search(client: httpx.Client, path: str) -> httpx.Response:
    """``GET path``, again while it answers ``503``: the first search of a process builds
    its in-memory index from the database, which may outlast the request's deadline on a
    busy machine (the build goes on in its thread; the server answers once it is done)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        response = client.get(path)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(1.0)


def capture(server: Server, meta: Meta, people: People, token: str) -> dict[str, Captured]:
    """Each endpoint's answer, checked: the bodies the ceiling will serve."""
    found: dict[str, Captured] = {}
    with httpx.Client(base_url=server.url, timeout=30.0) as client:

        def keep(name: str, response: httpx.Response, status: int) -> None:
            if response.status_code != status:
                raise RuntimeError(f"{name}: HTTP {response.status_code} {response.text[:500]}")
            found[name] = Captured(status, response.json(), len(response.content))

        for name, path in search_paths(meta).items():
            keep(name, _first_search(client, path), 200)
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

#: The servers of one interleaved run, in the order each round visits them.
FLEETPROMPT, NO_CACHE, BASELINE, CEILING = "fleetprompt", "no cache", "baseline", "ceiling"
SERVER_ORDER = (FLEETPROMPT, NO_CACHE, BASELINE, CEILING)
#: Endpoints each kind of server is measured on (the cache only matters to reads).
WRITES = ("create", "redeem")
TARGET_UNCACHED_SPEEDUP = 2.0
UNCACHED_TARGETS = ("search-browse", "detail", "redeem")
TARGET_CREATE_RPS = 500.0
TARGET_RSS_MB = 200.0
TARGET_RSS_REQUESTS = 100_000
BASELINE_COMMIT = "9b7714e"
BASELINE_REVISION = "0002"
DEFAULT_ENDPOINTS = ("search-browse", "search-tag", "search-q-rare", "detail", "create", "redeem")
SAMPLES = BENCH / "results" / "http_bench.json"
IMG = DOCS.parent / "img"


@dataclass
class Sample:
    """One wrk run of one server on one endpoint, in one round."""

    database: str
    size: int
    server: str
    endpoint: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # server (and PostgreSQL backends) CPU per request
    other_cores: float
    errors: str = ""


@dataclass
class Memory:
    database: str
    size: int
    server: str
    requests: int
    rss_mb: float


def _script(directory: Path) -> Path:
    script = directory / "replay.lua"
    if not script.exists():
        script.write_text(WRK_SCRIPT, encoding="utf-8")
    return script


def _errors(w: Wrk) -> str:
    found = []
    if w.non_2xx:
        found.append(f"{w.non_2xx:,} non-2xx")
    if w.socket_errors:
        found.append(f"{w.socket_errors:,} socket")
    if w.wrapped:
        found.append("tokens ran out")
    return ", ".join(found)


def _rss_mb(session: int) -> float:
    """The largest resident set among a server's processes (its worker), in MB."""
    largest = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != session:
                continue
            with open(f"/proc/{entry.name}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        largest = max(largest, int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            continue
    return largest / 1024


def _env(dataset_url: str, **extra: str) -> dict[str, str]:
    return _clean_env(
        FLEETPROMPT_DATABASE_URL=dataset_url,
        FLEETPROMPT_INTERNAL_REDEEM_SECRET=REDEEM_SECRET.decode("ascii"),
        FLEETPROMPT_CURSOR_KEY=sb.CURSOR_KEY.decode("ascii"),
        FLEETPROMPT_RATE_LIMITS="off",
        FLEETPROMPT_IMAGE_HOSTS=sb.IMAGE_HOST,
        FLEETPROMPT_LOG_LEVEL="INFO",
        **extra,
    )


def _url(dataset: Dataset) -> str:
    return dataset.url.render_as_string(hide_password=False)


@contextlib.contextmanager
def baseline_database(dataset: Dataset) -> Iterator[sa.URL]:
    """A copy of the working database at the baseline's schema revision (dropped after)."""
    from alembic import command as alembic  # noqa: PLC0415

    from fleetprompt_adapters.sql.schema import alembic_config  # noqa: PLC0415

    if dataset.database == "sqlite":
        source = dataset.url.database
        assert source is not None
        copy = Path(source).with_name(Path(source).stem + "-baseline.db")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(source, copy)
        url = sa.make_url(f"sqlite:///{copy}")

        def drop() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{copy}{suffix}").unlink(missing_ok=True)
    else:
        name = f"{dataset.url.database}_base"
        admin = _admin(dataset.url.set(database="postgres"))
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f'CREATE DATABASE "{name}" TEMPLATE "{dataset.url.database}" STRATEGY FILE_COPY'
            )
        url = dataset.url.set(database=name)

        def drop() -> None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()

    try:
        engine = sql.create_engine(url)
        try:
            alembic.downgrade(alembic_config(engine), BASELINE_REVISION)
        finally:
            engine.dispose()
        yield url
    finally:
        drop()


def start_servers(
    stack: contextlib.ExitStack,
    dataset: Dataset,
    directory: Path,
    servers: Sequence[str],
    baseline_src: Path | None,
    baseline_url: sa.URL | None,
) -> dict[str, Server]:
    started: dict[str, Server] = {}
    database = dataset.url.database if dataset.database == "postgresql" else None
    command = [*_fleetprompt_command(), "serve", "--host", HOST]
    tag = f"{dataset.database}-{dataset.meta.size}"
    if FLEETPROMPT in servers:
        started[FLEETPROMPT] = stack.enter_context(
            serving(f"{tag}-fleetprompt", command, _env(_url(dataset)), directory, database)
        )
    if NO_CACHE in servers:
        env = _env(_url(dataset), FLEETPROMPT_CACHE_MB="0")
        started[NO_CACHE] = stack.enter_context(
            serving(f"{tag}-no-cache", command, env, directory, database)
        )
    if BASELINE in servers and baseline_src is not None and baseline_url is not None:
        # The baseline's own command line (the installed script may name newer modules).
        line = [sys.executable, "-c", "from fleetprompt_http.cli import main; main()"]
        env = _env(baseline_url.render_as_string(hide_password=False))
        env["PYTHONPATH"] = str(baseline_src)
        started[BASELINE] = stack.enter_context(
            serving(
                f"{tag}-baseline",
                [*line, "serve", "--host", HOST],
                env,
                directory,
                baseline_url.database if dataset.database == "postgresql" else None,
            )
        )
    return started


def ceiling(
    stack: contextlib.ExitStack, captured: dict[str, Captured], directory: Path, tag: str
) -> Server:
    """The bare-Litestar ceiling under granian (FleetPrompt's server) with one worker."""
    bodies_file = directory / f"ceiling-bodies-{tag}.json"
    bodies_file.write_text(
        json.dumps({name: {"status": c.status, "body": c.body} for name, c in captured.items()}),
        encoding="utf-8",
    )
    env = _clean_env(FLEETPROMPT_BENCH_CEILING_BODIES=str(bodies_file), PYTHONPATH=str(BENCH))
    command = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", HOST,
        "--workers", "1", "--no-ws", "--http", "1", "--log-level", "warning",
        "http_ceiling:create_app",
    ]  # fmt: skip
    server = stack.enter_context(serving(f"ceiling-{tag}", command, env, directory))
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        for name, expected in captured.items():
            response = client.request("POST" if name in WRITES else "GET", f"/ceiling/{name}")
            assert response.status_code == expected.status, response.text
            expected.ceiling_size = len(response.content)
    return server


def check_baseline(server: Server, meta: Meta, people: People, token: str) -> None:
    """The baseline answers every endpoint like today's code (status codes)."""
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for name, path in search_paths(meta).items():
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"baseline {name}: HTTP {response.status_code}")
        response = client.get(f"/v1/public/listings/{meta.detail_ids[0]}")
        if response.status_code != 200:
            raise RuntimeError(f"baseline detail: HTTP {response.status_code}")
        response = client.post(
            "/v1/publisher/listings",
            content=CREATE_BODY,
            headers={
                **_auth(people.publisher_token),
                "Content-Type": "application/json",
                "Idempotency-Key": f"bench-capture-{secrets.token_hex(6)}",
            },
        )
        if response.status_code != 201:
            raise RuntimeError(f"baseline create: HTTP {response.status_code} {response.text}")
        signed = signed_redeem_request(token, "whs", key=REDEEM_SECRET, source=REDEEM_SOURCE)
        response = client.post(REDEEM_PATH, content=signed.body, headers=signed.headers)
        if response.status_code != 200:
            raise RuntimeError(f"baseline redeem: HTTP {response.status_code} {response.text}")


@dataclass
class Plan:
    endpoints: list[str]
    rounds: int
    duration: float
    connections: int
    #: Catalogue sizes below the largest measure only the reads (latency against size).
    reads_only: bool
    baseline_src: Path | None


def measure_dataset(  # noqa: PLR0915 - one run, step by step
    dataset: Dataset, plan: Plan, directory: Path, samples: list[Sample], memory: list[Memory]
) -> None:
    """Every server of ``SERVER_ORDER`` up at once on ``dataset``; ``plan.rounds`` rounds,
    each endpoint after endpoint and, per endpoint, server after server."""
    meta = dataset.meta
    endpoints = [e for e in plan.endpoints if not (plan.reads_only and e in WRITES)]
    names = [FLEETPROMPT, NO_CACHE]
    if not plan.reads_only and plan.baseline_src is not None:
        names.append(BASELINE)
    redeemers = [n for n in names if n != NO_CACHE] if "redeem" in endpoints else []
    per_run = max(1_000, int(REDEEM_BUDGET_PER_S * plan.duration))
    pools = [WARMUP_REDEEM_TOKENS + 1] * len(redeemers) + [per_run] * (plan.rounds * len(redeemers))
    # The baseline's check redeems one token even when ``redeem`` is not measured.
    spare = 1 if BASELINE in names and BASELINE not in redeemers else 0
    pools += [1] * spare
    started = time.perf_counter()
    people, tokens = provision(dataset, pools or [1])
    print(f"{dataset.database} {meta.size:,}: {sum(pools):,} install tokens provisioned in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    warm_pool = dict(zip(redeemers, tokens[: len(redeemers)], strict=True))
    measured = tokens[len(redeemers) : len(tokens) - spare]
    if spare:
        warm_pool[BASELINE] = tokens[-1]
    script = _script(directory)
    tag = f"{dataset.database}-{meta.size}"
    with contextlib.ExitStack() as stack:
        baseline_url = (
            stack.enter_context(baseline_database(dataset)) if BASELINE in names else None
        )
        servers = start_servers(stack, dataset, directory, names, plan.baseline_src, baseline_url)
        first = warm_pool[FLEETPROMPT].pop() if FLEETPROMPT in warm_pool else ""
        if not first:
            provisioned = provision(dataset, [1])[1][0]
            first = provisioned[0]
        captured = capture(servers[FLEETPROMPT], meta, people, first)
        if BASELINE in servers:
            check_baseline(servers[BASELINE], meta, people, warm_pool[BASELINE].pop())
        servers[CEILING] = ceiling(stack, captured, directory, tag)
        served = dict.fromkeys(servers, 0)
        ceiling_tokens = [generate_token(INSTALL_TOKEN_PREFIX) for _ in range(1_000)]

        def requests_of(server: str, endpoint: str, round_: int | None) -> tuple[str, list[bytes]]:
            if server == CEILING:
                tokens_ = ceiling_tokens
                work = workload(endpoint, meta, people, tokens_)
                return ("template" if endpoint == "create" else "cycle"), work.ceiling
            if endpoint == "redeem":
                index = redeemers.index(server)
                pool = (
                    warm_pool[server]
                    if round_ is None
                    else measured[round_ * len(redeemers) + index]
                )
                return "once", workload(endpoint, meta, people, pool).requests
            work = workload(endpoint, meta, people)
            return work.mode, work.requests

        def who(endpoint: str) -> list[str]:
            if endpoint in WRITES:
                return [n for n in (FLEETPROMPT, BASELINE, CEILING) if n in servers]
            return list(servers)

        def warm(name: str, endpoint: str) -> None:
            """One second of the endpoint's requests (caches filled, pages touched)."""
            mode, requests = requests_of(name, endpoint, None)
            w = run_wrk(servers[name].url, write_requests(directory / "warm", requests),
                        script, mode=mode, seconds=1, connections=plan.connections,
                        threads=1)  # fmt: skip
            served[name] += w.requests

        # Writes warm up once, first (their tokens are provisioned for one warm-up). A read
        # warms up right before each of its measurements: its cached answers live 10 s
        # (ENTRY_TTL_MS), so a warm-up made before the other servers' and endpoints' runs
        # would have expired and every cached run would start cold.
        for endpoint in endpoints:
            if endpoint in WRITES:
                for name in who(endpoint):
                    warm(name, endpoint)
        for round_ in range(plan.rounds):
            for endpoint in endpoints:
                for name in who(endpoint):
                    server = servers[name]
                    if endpoint not in WRITES:
                        warm(name, endpoint)
                    mode, requests = requests_of(name, endpoint, round_)
                    w = run_wrk(
                        server.url,
                        write_requests(directory / "measured", requests),
                        script,
                        mode=mode,
                        seconds=plan.duration,
                        connections=plan.connections,
                        threads=1,
                        session=server.process.pid,
                        database=server.database,
                    )
                    served[name] += w.requests
                    cpu_ms = 1000 * (w.server_cores + w.database_cores) / max(w.rps, 1e-9)
                    sample = Sample(dataset.database, meta.size, name, endpoint, round_ + 1,
                                    w.rps, w.p50_ms, w.p99_ms, cpu_ms, w.other_cores,
                                    _errors(w))  # fmt: skip
                    samples.append(sample)
                    print(
                        f"  {tag} round {round_ + 1} {endpoint:<14} {name:<11} "
                        f"{w.rps:9,.0f} req/s  p50 {w.p50_ms:7.2f}  p99 {w.p99_ms:7.2f} ms  "
                        f"CPU {cpu_ms:5.2f} ms/req  other {w.other_cores:.2f} cores"
                        + (f"  [{sample.errors}]" if sample.errors else ""),
                        flush=True,
                    )
        if not plan.reads_only:
            # The served configuration (cache on); "no cache" would take minutes to get there.
            for name in (FLEETPROMPT,):
                server = servers[name]
                # Top up to the request count the RSS target names (public reads).
                work = workload("detail", meta, people)
                while served[name] < TARGET_RSS_REQUESTS:
                    w = run_wrk(server.url, write_requests(directory / "rss", work.requests),
                                script, mode="cycle", seconds=5, connections=plan.connections,
                                threads=1)  # fmt: skip
                    served[name] += w.requests
                rss = _rss_mb(server.process.pid)
                memory.append(Memory(dataset.database, meta.size, name, served[name], rss))
                print(f"  {tag} {name}: RSS {memory[-1].rss_mb:.0f} MB after "
                      f"{served[name]:,} requests", flush=True)  # fmt: skip


# --------------------------------------------------------------------------- reporting


def machine(postgres_version: str | None) -> str:
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
    parts = [
        f"{os.cpu_count()} cores ({cpu})",
        ram,
        f"{platform.python_implementation()} {platform.python_version()}",
        f"granian {metadata.version('granian')}",
        f"uvicorn {metadata.version('uvicorn')} (the baseline's server)",
        f"Litestar {metadata.version('litestar')}",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    if postgres_version:
        parts.append(f"PostgreSQL {postgres_version} (local, default configuration)")
    parts.append(wrk_version())
    return ", ".join(parts)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Report:
    """Medians over rounds, ratios per round (a round's servers ran minutes apart at most)."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = list(samples)

    def of(self, database: str, size: int, server: str, endpoint: str) -> list[Sample]:
        return sorted(
            (
                s
                for s in self.samples
                if (s.database, s.size, s.server, s.endpoint) == (database, size, server, endpoint)
            ),
            key=lambda s: s.round,
        )

    def ratio(self, database: str, size: int, server: str, other: str, endpoint: str) -> float:
        mine = {s.round: s.rps for s in self.of(database, size, server, endpoint)}
        theirs = {s.round: s.rps for s in self.of(database, size, other, endpoint)}
        return _median([mine[r] / theirs[r] for r in mine if theirs.get(r)])

    def catalogues(self) -> list[tuple[str, int]]:
        order = {"sqlite": 0, "postgresql": 1}
        return sorted(
            {(s.database, s.size) for s in self.samples}, key=lambda k: (k[1], order[k[0]])
        )

    def endpoints(self, database: str, size: int) -> list[str]:
        found = {s.endpoint for s in self.samples if (s.database, s.size) == (database, size)}
        return [e for e in ENDPOINTS if e in found]

    def servers(self, database: str, size: int) -> list[str]:
        found = {s.server for s in self.samples if (s.database, s.size) == (database, size)}
        return [n for n in SERVER_ORDER if n in found]


def tables(report: Report) -> list[str]:
    lines: list[str] = []
    for database, size in report.catalogues():
        lines += [
            f"**{database}, {size:,} listings** (medians over rounds; ratio: median of the "
            "per-round ratios):",
            "",
            "| endpoint | server | req/s | ratio to ceiling | p50 ms | p99 ms "
            "| CPU ms/request | errors |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]  # fmt: skip
        for endpoint in report.endpoints(database, size):
            for server in report.servers(database, size):
                mine = report.of(database, size, server, endpoint)
                if not mine:
                    continue
                ratio = (
                    ""
                    if server == CEILING
                    else f"{report.ratio(database, size, server, CEILING, endpoint):.0%}"
                )
                errors = "; ".join(sorted({s.errors for s in mine if s.errors})) or "–"
                lines.append(
                    f"| {LABELS[endpoint]} | {server} | {_median([s.rps for s in mine]):,.0f} | "
                    f"{ratio} | {_median([s.p50_ms for s in mine]):.2f} | "
                    f"{_median([s.p99_ms for s in mine]):.2f} | "
                    f"{_median([s.cpu_ms for s in mine]):.2f} | {errors} |"
                )
        lines.append("")
    return lines


def verdicts(report: Report, memory: Sequence[Memory]) -> list[tuple[str, str, str, bool]]:
    """``(target, database, measured, met)`` for every target the samples cover."""
    rows: list[tuple[str, str, str, bool]] = []
    for database, size in report.catalogues():
        servers = report.servers(database, size)
        endpoints = report.endpoints(database, size)
        if size != max(s for d, s in report.catalogues() if d == database):
            continue
        where = f"{database}, {size:,}"
        for endpoint in endpoints:
            mine = report.of(database, size, FLEETPROMPT, endpoint)
            if not mine:
                continue
            clean = not any(s.errors for s in mine)
            rps = _median([s.rps for s in mine])
            p99 = _median([s.p99_ms for s in mine])
            if endpoint in READ_TARGETS and endpoint != "search-q-common":
                ratio = report.ratio(database, size, FLEETPROMPT, CEILING, endpoint)
                rows.append((f"{LABELS[endpoint]}: ≥ 50 % of the ceiling, p99 < 25 ms", where,
                             f"{ratio:.0%}, p99 {p99:.1f} ms",
                             clean and ratio >= TARGET_RATIO and p99 < TARGET_P99_MS))  # fmt: skip
            if endpoint == "redeem":
                rows.append(("redemption ≥ 1 000/s on one worker", where, f"{rps:,.0f}/s",
                             clean and rps >= TARGET_REDEEM_RPS))  # fmt: skip
            if endpoint == "create":
                rows.append(("listing create ≥ 500/s on one worker", where, f"{rps:,.0f}/s",
                             clean and rps >= TARGET_CREATE_RPS))  # fmt: skip
            if endpoint in UNCACHED_TARGETS and BASELINE in servers:
                uncached = NO_CACHE if endpoint not in WRITES else FLEETPROMPT
                speedup = report.ratio(database, size, uncached, BASELINE, endpoint)
                rows.append((f"{LABELS[endpoint]}{', uncached' * (endpoint not in WRITES)}: "
                             "≥ 2× the baseline", where,
                             f"{speedup:.2f}×", speedup >= TARGET_UNCACHED_SPEEDUP))  # fmt: skip
    for row in memory:
        met = row.rss_mb < TARGET_RSS_MB and row.requests >= TARGET_RSS_REQUESTS
        rows.append((f"RSS of one worker ({row.server}) < 200 MB after 100 000 requests",
                     f"{row.database}, {row.size:,}",
                     f"{row.rss_mb:.0f} MB after {row.requests:,}", met))  # fmt: skip
    return rows


def _plt() -> Any:
    try:
        import matplotlib as mpl  # noqa: PLC0415

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ModuleNotFoundError:
        print("(no charts: pip install -e '.[bench]' for matplotlib)")
        return None
    return plt


def charts(report: Report) -> list[Path]:
    """Throughput against the ceiling per endpoint (largest catalogue, one panel per
    database) and latency against catalogue size; ``[]`` without matplotlib."""
    plt = _plt()
    if plt is None:
        return []
    made: list[Path] = []
    databases = sorted({d for d, _ in report.catalogues()}, key=["sqlite", "postgresql"].index)
    figure, axes = plt.subplots(1, len(databases), figsize=(6.5 * len(databases), 4.6),
                                squeeze=False)  # fmt: skip
    for panel, database in zip(axes[0], databases, strict=True):
        size = max(s for d, s in report.catalogues() if d == database)
        endpoints = report.endpoints(database, size)
        shown = [n for n in report.servers(database, size) if n != CEILING]
        width = 0.8 / max(1, len(shown))
        for offset, server in enumerate(shown):
            xs, shares = [], []
            for index, endpoint in enumerate(endpoints):
                if report.of(database, size, server, endpoint):
                    xs.append(index + offset * width)
                    shares.append(100 * report.ratio(database, size, server, CEILING, endpoint))
            panel.bar(xs, shares, width, label=server)
        panel.axhline(50, color="grey", linestyle="--", linewidth=1, label="target: 50 %")
        panel.set_xticks([i + 0.4 - width / 2 for i in range(len(endpoints))],
                         [LABELS[e].split(" (")[0].replace("search: ", "") for e in endpoints],
                         fontsize=8, rotation=15)  # fmt: skip
        panel.set_ylabel("% of the bare-Litestar ceiling")
        panel.set_title(f"{database}, {size:,} listings, one worker, 16 connections", fontsize=10)
        panel.legend(fontsize=8)
    figure.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    path = IMG / "http_bench_ceiling.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    made.append(path)
    sizes = sorted({s for _, s in report.catalogues()})
    if len(sizes) > 1:
        figure, axes = plt.subplots(1, len(databases), figsize=(6.5 * len(databases), 4.6),
                                    squeeze=False)  # fmt: skip
        for panel, database in zip(axes[0], databases, strict=True):
            for server, style in ((FLEETPROMPT, "-"), (NO_CACHE, "--")):
                for endpoint in (e for e in ENDPOINTS if e in READ_TARGETS):
                    points = [(size, report.of(database, size, server, endpoint)) for size in sizes]
                    points = [(size, found) for size, found in points if found]
                    if len(points) < 2:
                        continue
                    panel.plot([size for size, _ in points],
                               [_median([s.p99_ms for s in found]) for _, found in points],
                               style, marker="o",
                               label=f"{LABELS[endpoint].split(' (')[0]} ({server})")  # fmt: skip
            panel.axhline(TARGET_P99_MS, color="grey", linestyle=":", linewidth=1,
                          label="target: p99 25 ms")  # fmt: skip
            panel.set_xscale("log")
            panel.set_yscale("log")
            panel.set_xlabel("published listings")
            panel.set_ylabel("p99 latency, ms (16 connections)")
            panel.set_title(f"{database}: latency against catalogue size", fontsize=10)
            panel.legend(fontsize=6)
        figure.tight_layout()
        path = IMG / "http_bench_latency.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        made.append(path)
    return made


def command() -> str:
    args = list(sys.argv[1:])
    for index, arg in enumerate(args):
        if arg.startswith("--postgres-url="):
            url = sa.make_url(arg.split("=", 1)[1])
            args[index] = "--postgres-url=" + url.render_as_string(hide_password=True)
        elif index and args[index - 1] == "--postgres-url":
            args[index] = sa.make_url(arg).render_as_string(hide_password=True)
    return " ".join(["python bench/http_bench.py", *args])


def section(recorded: dict[str, Any], report: Report, memory: Sequence[Memory],
            pictures: Sequence[Path]) -> str:  # fmt: skip
    runs = recorded["runs"]
    intro = (
        "Generated by `bench/http_bench.py --write-docs`; do not edit by hand. Per database "
        "and catalogue size (the catalogue of `bench/sql_bench.py`, bulk-loaded once and "
        "reused from `--cache-dir`), every server is up at once with one worker on "
        "127.0.0.1: `fleetprompt` (`fleetprompt serve`: granian, public response cache on), "
        "`no cache` (the same with `FLEETPROMPT_CACHE_MB=0`: every read runs its use case), "
        f"`baseline` (the code of commit {BASELINE_COMMIT}, before issue 11, on a copy of the "
        "catalogue at its schema, served by its uvicorn) and `ceiling` (`bench/http_ceiling.py`"
        " under granian: bare Litestar answering, from memory, the JSON FleetPrompt answered, "
        "re-serialised per request). `wrk` (one thread, 16 keep-alive connections) loads "
        "them endpoint by endpoint, server after server, in interleaved rounds, after one "
        "warm-up pass; rate limits off, INFO logs (one access line per request) to a file. "
        f"Detail cycles over {DETAIL_LISTINGS} listings (a hot set: `no cache` shows every "
        "detail as a miss); create sends a fresh Idempotency-Key per "
        "request; redemption redeems install tokens issued beforehand (bulk-inserted, one "
        "per request, every request HMAC-signed; the ceiling answers the same requests). "
        "CPU ms/request: the server's and its PostgreSQL backends' CPU per request. The "
        "RSS is the worker's resident set at the end, after at least 100 000 requests "
        "(topped up with detail reads)."
    )
    lines = [
        SECTION,
        "",
        "Re-run (needs `wrk`, `apt-get install -y wrk`; charts need the `bench` extra):",
        "",
        "```bash",
        f"mkdir -p /tmp/base && git archive {BASELINE_COMMIT} src | tar -x -C /tmp/base",
        "python bench/http_bench.py --sizes 10000,100000 --databases sqlite,postgresql \\",
        "    --rounds 3 --duration 5 --baseline-src /tmp/base/src --write-docs",
        "python bench/http_bench.py --replot --write-docs   # the recorded samples again",
        "```",
        "",
        "The run below: " + "; ".join(f"`{run['command']}`" for run in runs) + ".",
        "",
        textwrap.fill(intro, width=78),
        "",
    ]
    for run in runs:
        lines.append(textwrap.fill(
            f"Run {run['started']} ({', '.join(run['measured'])}): load average before "
            f"{run['load_before']}, after {run['load_after']}.", width=78))  # fmt: skip
    lines += ["", textwrap.fill(f"Machine: {recorded['machine']}.", width=78), ""]
    lines += tables(report)
    lines += ["Targets:", "", "| target | database, listings | measured | result |",
              "|---|---|---|---|"]  # fmt: skip
    for target, where, measured, met in verdicts(report, memory):
        lines.append(f"| {target} | {where} | {measured} | {'met' if met else '**missed**'} |")
    lines.append("")
    for picture in pictures:
        title = (
            "Throughput against the ceiling per endpoint"
            if "ceiling" in picture.name
            else "p99 latency against catalogue size"
        )
        lines.append(f"![{title}]({picture.relative_to(DOCS.parent)})")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--endpoints", default=",".join(DEFAULT_ENDPOINTS))
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help=f"the src/ of commit {BASELINE_COMMIT} (git archive {BASELINE_COMMIT} src | tar -x)",
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--database-prefix",
        default="fleetprompt_httpbench",
        help="name prefix of the PostgreSQL template and working databases",
    )
    parser.add_argument("--rebuild", action="store_true", help="reload the cached datasets")
    parser.add_argument("--drop-cache", action="store_true", help="remove the cache and exit")
    parser.add_argument("--samples", type=Path, default=SAMPLES, help="raw samples (JSON)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="add to the recorded samples (replacing only the databases and sizes measured)",
    )
    parser.add_argument("--replot", action="store_true", help="measure nothing; report --samples")
    parser.add_argument("--write-docs", action="store_true", help=f"rewrite {SECTION!r}")
    return parser, parser.parse_args()


def main() -> None:  # noqa: PLR0915 - measure, record, report
    global DATABASE_PREFIX  # noqa: PLW0603 - one setting for the dataset helpers
    parser, args = parse_args()
    DATABASE_PREFIX = args.database_prefix
    if args.drop_cache:
        drop_cache(args.cache_dir, args.postgres_url)
        return
    recorded: dict[str, Any] = {"runs": [], "samples": [], "memory": [], "machine": ""}
    if (args.replot or args.keep) and args.samples.exists():
        recorded = json.loads(args.samples.read_text(encoding="utf-8"))
    if not args.replot:
        wrk_path()
        sizes = sorted(int(size) for size in args.sizes.split(","))
        databases = [name.strip() for name in args.databases.split(",")]
        if set(databases) - {"sqlite", "postgresql"}:
            parser.error(f"unknown databases: {sorted(set(databases) - {'sqlite', 'postgresql'})}")
        endpoints = [name.strip() for name in args.endpoints.split(",")]
        if set(endpoints) - set(ENDPOINTS):
            parser.error(f"unknown endpoints: {sorted(set(endpoints) - set(ENDPOINTS))}")
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        postgres_version = None
        if "postgresql" in databases:
            admin = _admin(sql.normalize_url(args.postgres_url))
            try:
                with admin.connect() as conn:
                    postgres_version = conn.exec_driver_sql("SHOW server_version").scalar_one()
            finally:
                admin.dispose()
        load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        samples: list[Sample] = []
        memory: list[Memory] = []
        with tempfile.TemporaryDirectory(prefix="fleetprompt_http_bench_") as temporary:
            directory = Path(temporary)
            for size in reversed(sizes):  # the largest (every target) first
                for database in databases:
                    opener = (
                        sqlite_dataset(args.cache_dir, size, args.rebuild)
                        if database == "sqlite"
                        else postgres_dataset(args.postgres_url, args.cache_dir, size, args.rebuild)
                    )
                    plan = Plan(endpoints, args.rounds, args.duration, args.connections,
                                size != sizes[-1], args.baseline_src)  # fmt: skip
                    with opener as dataset:
                        measure_dataset(dataset, plan, directory, samples, memory)
        measured = {(s.database, s.size) for s in samples}
        recorded["samples"] = [
            s for s in recorded["samples"] if (s["database"], s["size"]) not in measured
        ] + [vars(s) for s in samples]
        recorded["memory"] = [
            m for m in recorded["memory"] if (m["database"], m["size"]) not in measured
        ] + [vars(m) for m in memory]
        recorded["runs"].append(
            {
                "command": command(),
                "started": started,
                "measured": [f"{d} {s:,}" for d, s in sorted(measured)],
                "load_before": load_before,
                "load_after": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
            }
        )
        recorded["machine"] = machine(postgres_version or recorded.get("postgres_version"))
        recorded["postgres_version"] = postgres_version or recorded.get("postgres_version")
        args.samples.parent.mkdir(parents=True, exist_ok=True)
        args.samples.write_text(json.dumps(recorded, indent=1), encoding="utf-8")
    if not recorded["samples"]:
        sys.exit(f"no samples in {args.samples}: measure first")
    report = Report([Sample(**s) for s in recorded["samples"]])
    memory_rows = [Memory(**m) for m in recorded["memory"]]
    print()
    print("\n".join(tables(report)))
    for target, where, measured_text, met in verdicts(report, memory_rows):
        print(f"{'met' if met else 'MISSED':<7} {target} — {where}: {measured_text}")
    if args.write_docs:  # the charts belong to the docs: a run without it leaves them alone
        write_docs(section(recorded, report, memory_rows, charts(report)))
        print(f"\nrewrote {SECTION!r} in {DOCS}")


if __name__ == "__main__":
    main()

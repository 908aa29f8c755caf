"""`fleetprompt serve` bounds what one connection can do (issue 14 item 1, ADR 0029).

The real console script serves a SQLite database (one worker, then two) with
a 1 s request-head timeout. Over raw sockets: a request head above the bound
or with too many fields is answered ``431`` and the connection closed; a
client that trickles its head is disconnected after the timeout; and while
one connection floods the server with oversized heads and another trickles,
a third client's ``/healthz`` latency stays near its baseline measured in the
same run (a ratio, never an absolute time).
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT_S = 60.0
HEAD_TIMEOUT_MS = 1_000
#: Keep-alive /healthz requests measured before and during the flood.
SAMPLES = 40


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _serve(tmp_path: Path, workers: int) -> Iterator[int]:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLEETPROMPT")}
    env.update(
        {
            "FLEETPROMPT_DATABASE_URL": f"sqlite:///{tmp_path / 'limits.db'}",
            "FLEETPROMPT_RATE_LIMITS": "off",
            "FLEETPROMPT_LOG_LEVEL": "WARNING",
            "FLEETPROMPT_HEAD_TIMEOUT_MS": str(HEAD_TIMEOUT_MS),
        }
    )
    log = tmp_path / f"serve-{workers}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from fleetprompt_http.console import main; main()",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
                *os.environ.get("FP_TEST_SERVE_ARGS", "").split(),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited: {log.read_text(errors='replace')[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"serve did not start: {log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _connect(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.settimeout(10)
    return connection


def _answer(connection: socket.socket) -> bytes:
    """What the server sent until it closed the connection (or 64 KiB of it)."""
    received = b""
    with contextlib.suppress(OSError):
        while len(received) < 65536:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def _send_head(port: int, extra: bytes) -> bytes:
    with _connect(port) as connection:
        with contextlib.suppress(OSError):  # the server may close before we are done
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n")
        return _answer(connection)


def _healthz_latencies(port: int, count: int) -> list[float]:
    """``count`` sequential /healthz requests on one keep-alive connection (ms)."""
    latencies = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)
    return latencies


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


@pytest.fixture(scope="module", params=[1, 2], ids=["workers-1", "workers-2"])
def port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One server per worker count for the module (starting one costs seconds)."""
    with _serve(tmp_path_factory.mktemp(f"limits-{request.param}"), request.param) as served:
        yield served


def test_s_dos_01_oversized_or_too_many_headers_are_431_and_close(port: int) -> None:
    """A 1 MiB header and a head of 500 fields are refused with 431 before the app
    sees them; a normal head on a fresh connection still works."""
    big = _send_head(port, b"X-Big: " + b"a" * (1 << 20) + b"\r\n")
    assert big.startswith(b"HTTP/1.1 431"), big[:80]
    many = _send_head(port, b"".join(b"X-H%d: v\r\n" % i for i in range(500)))
    assert many.startswith(b"HTTP/1.1 431"), many[:80]
    ok = _send_head(port, b"X-Small: " + b"a" * 1000 + b"\r\nConnection: close\r\n")
    assert ok.startswith(b"HTTP/1.1 200"), ok[:80]


def test_s_dos_02_a_client_that_trickles_its_head_is_disconnected(port: int) -> None:
    """One header line every 100 ms: the connection is closed once the head timeout passes,
    long before the trickle would end."""
    started = time.monotonic()
    with _connect(port) as connection:
        closed = False
        for _ in range(100):  # 10 s of trickle if nothing closes it
            try:
                connection.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            time.sleep(0.1)
    elapsed = time.monotonic() - started
    assert closed
    assert elapsed < 10 * HEAD_TIMEOUT_MS / 1000 / 2, elapsed


def test_s_dos_03_a_flood_on_one_connection_leaves_another_clients_latency_normal(
    port: int,
) -> None:
    """While one client sends 64 MiB heads over and over and another trickles, a third
    client's /healthz p90 stays within 10x (+ 50 ms) of its own baseline in this run."""
    _healthz_latencies(port, 5)  # warm up
    baseline = _healthz_latencies(port, SAMPLES)
    stop = threading.Event()

    def flood() -> None:
        chunk = b"a" * (1 << 20)
        while not stop.is_set():
            with contextlib.suppress(OSError), _connect(port) as connection:
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: ")
                for _ in range(64):
                    if stop.is_set():
                        break
                    connection.sendall(chunk)

    def trickle() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError), _connect(port) as connection:
                connection.sendall(b"GET /healthz HTTP/1.1\r\n")
                while not stop.is_set():
                    connection.sendall(b"X-Slow: 1\r\n")
                    time.sleep(0.05)

    attackers = [threading.Thread(target=flood), threading.Thread(target=trickle)]
    for attacker in attackers:
        attacker.start()
    try:
        time.sleep(0.2)
        during = _healthz_latencies(port, SAMPLES)
    finally:
        stop.set()
        for attacker in attackers:
            attacker.join(timeout=15)
    assert _p90(during) <= 10 * _p90(baseline) + 50, (
        f"baseline p90 {_p90(baseline):.1f} ms, during the flood {_p90(during):.1f} ms"
    )

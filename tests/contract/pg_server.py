"""A throw-away PostgreSQL server for fault tests: its own data directory, port and life.

:func:`throwaway_postgres` runs ``initdb`` into a temporary directory and starts
the server with ``pg_ctl`` on a free loopback port (as the ``postgres`` user
when the tests run as root, since PostgreSQL refuses to run as root). A test
may stop it — ``immediate`` mode is a crash: no shutdown checkpoint, every
connection dropped — and start it again on the same port and data. Durability
settings are off (``fsync``, ``full_page_writes``): the server is the thing a
test breaks, not the disk. Skips when no PostgreSQL binaries are installed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

__all__ = ["ThrowawayPostgres", "throwaway_postgres"]

_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_TIMEOUT_S = 30


def _bin_dir() -> Path | None:
    for candidate in sorted(glob.glob(_BIN_GLOB), reverse=True):
        if Path(candidate, "initdb").is_file() and Path(candidate, "pg_ctl").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.define
class ThrowawayPostgres:
    bin_dir: Path
    base: Path
    port: int
    as_user: tuple[str, ...]

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [*self.as_user, str(self.bin_dir / args[0]), *args[1:]]
        done = subprocess.run(
            command, capture_output=True, timeout=_TIMEOUT_S, check=False, cwd=self.base
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
                f"\n{self.log_tail()}"
            )

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4_000:]
        except OSError:
            return "(no server log)"

    def initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
            "-c max_connections=40"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(_TIMEOUT_S),
            "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A started server of its own; stopped and deleted afterwards."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip(f"needs PostgreSQL server binaries (initdb, pg_ctl) in {_BIN_GLOB}")
    as_user: tuple[str, ...] = ()
    base = Path(tempfile.mkdtemp(prefix="fp-pg-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if runuser is None or owner is None:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("running as root needs a postgres user and runuser to run initdb")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_user = (runuser, "-u", "postgres", "--")
    server = ThrowawayPostgres(bin_dir, base, _free_port(), as_user)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            if server.running():
                server.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)

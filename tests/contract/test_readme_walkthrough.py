"""The README's server walk-through works as written, against a real server.

It starts ``fleetprompt serve`` (the console script) on the embedded SQLite
default in an empty directory, runs the README's second-terminal block with
bash (curl, jq, openssl) and checks what it printed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "walkthrough-secret-of-at-least-32-bytes"
_TOOLS = ("bash", "curl", "jq", "openssl", "fleetprompt")


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the walk-through needs {', '.join(missing)} on PATH")
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLEETPROMPT_")}
    env["FLEETPROMPT_INTERNAL_REDEEM_SECRET"] = SECRET
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        ["fleetprompt", "serve", "--port", str(port)],  # noqa: S607 - the console script
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # start-up on a loaded machine (two processes: granian)
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("server did not start:\n" + (tmp_path / "server.log").read_text())
            time.sleep(0.1)
        yield url, tmp_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
            process.kill()
            process.wait()
        log.close()


def test_e2e_04_readme_walkthrough_publishes_installs_and_redeems_once(
    server: tuple[str, Path],
) -> None:
    """The README's curl walk-through runs as written: published, found, redeemed once."""
    url, directory = server
    (terminal_1,) = [
        b
        for b in _bash_blocks()
        if b.startswith("export FLEETPROMPT_INTERNAL_REDEEM_SECRET") and "FP=" not in b
    ]
    (terminal_2,) = [b for b in _bash_blocks() if "FP=http://127.0.0.1:8000" in b]
    assert f"FLEETPROMPT_INTERNAL_REDEEM_SECRET={SECRET}" in terminal_1
    script = terminal_2.replace("FP=http://127.0.0.1:8000", f"FP={url}")
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLEETPROMPT_")}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"usr_[0-9A-Z]+", lines[0])
    assert lines[2:] == [
        '"published"',
        '"Ticket Triage"',
        '"1.0.0"',
        '{"status":"redeemed","refs":"agent-42"}',
        '"NOT_FOUND"',
    ]
    assert "fpat_" not in result.stdout

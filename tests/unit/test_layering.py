"""The hexagon's rules hold: the core imports no adapter, HTTP package or framework,
and inside the core each layer imports only the layers below it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("lint-imports")
    command = [str(script)] if script.exists() else ["lint-imports"]
    return subprocess.run(
        [*command, "--config", str(config), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_import_linter_contracts_hold() -> None:
    """import-linter's contracts are kept: core ⇸ adapters, http, sqlalchemy, litestar…;
    adapters ⇸ http; and the core's inner layers (base ← policies ← domain ←
    commands | ports ← services ← app)."""
    result = _lint_imports(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout
    assert "The core is a strict stack" in result.stdout


def test_import_linter_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The checker is live: forbidding something the core does import (attrs) breaks."""
    config = tmp_path / "importlinter.ini"
    config.write_text(
        "[importlinter]\n"
        "root_packages =\n    fleetprompt_core\n"
        "include_external_packages = True\n\n"
        "[importlinter:contract:probe]\n"
        "name = probe\n"
        "type = forbidden\n"
        "source_modules =\n    fleetprompt_core\n"
        "forbidden_modules =\n    attrs\n",
        encoding="utf-8",
    )
    result = _lint_imports(config)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_import_linter_catches_an_upward_import_between_layers(tmp_path: Path) -> None:
    """The layers contract is live: declaring the entities below the policies breaks,
    because ``domain.model`` imports ``policies.markdown``."""
    config = tmp_path / "importlinter.ini"
    config.write_text(
        "[importlinter]\n"
        "root_packages =\n    fleetprompt_core\n\n"
        "[importlinter:contract:probe]\n"
        "name = probe\n"
        "type = layers\n"
        "containers =\n    fleetprompt_core\n"
        "layers =\n    policies\n    domain\n    base\n",
        encoding="utf-8",
    )
    result = _lint_imports(config)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "fleetprompt_core.domain.model -> fleetprompt_core.policies.markdown" in result.stdout


def test_importing_the_core_loads_no_framework_or_adapter() -> None:
    """At run time, importing the core loads no adapter, web framework or database driver."""
    code = (
        "import sys, fleetprompt_core, fleetprompt_core.app;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'fleetprompt_adapters','fleetprompt_http','sqlalchemy','litestar','alembic',"
        "'psycopg','redis'});"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"the core imported: {result.stdout.strip()}"


def test_the_in_memory_adapter_needs_no_database_library() -> None:
    """The base install (core + memory adapter) never imports SQLAlchemy, Alembic or a driver."""
    code = (
        "import sys, fleetprompt_adapters.memory, fleetprompt_adapters.system;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'sqlalchemy','alembic','psycopg','redis','litestar','fleetprompt_http'});"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"the memory adapter imported: {result.stdout.strip()}"


_NO_IO_PROBE = """
import builtins, socket, threading
opened = []
real_open = builtins.open
def spy_open(file, mode="r", *args, **kwargs):
    if any(flag in mode for flag in "wax+"):
        opened.append((file, mode))
    return real_open(file, mode, *args, **kwargs)
def no_socket(*args, **kwargs):
    raise AssertionError("socket opened at import")
builtins.open = spy_open
socket.socket.__init__ = no_socket
before = threading.active_count()
import fleetprompt_core, fleetprompt_adapters.memory, fleetprompt_adapters.system, fleetprompt_http
import fleetprompt_adapters.sql
assert not opened, opened
assert threading.active_count() == before
"""


def test_no_io_at_import_time() -> None:
    """Importing every package opens no file for writing, no socket and no thread."""
    result = subprocess.run(
        [sys.executable, "-c", _NO_IO_PROBE], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr

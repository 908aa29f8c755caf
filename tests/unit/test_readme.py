"""The README's embedding example runs as written."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_readme_embedding_example_runs_a_full_publish_install_redeem_flow(capsys: object) -> None:
    """The README's python block publishes, installs and redeems against the in-memory adapter."""
    blocks = _python_blocks()
    assert len(blocks) == 2
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    redemption = namespace["redemption"]
    assert redemption.install_intent.status == "redeemed"  # type: ignore[attr-defined]
    assert redemption.release.version == "1.0.0"  # type: ignore[attr-defined]


def test_readme_sql_example_stores_a_listing_in_a_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's SQL block migrates a SQLite file and stores a draft listing in it."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(_python_blocks()[1], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert capsys.readouterr().out == "draft\n"
    engine = namespace["engine"]
    with contextlib.closing(sqlite3.connect(tmp_path / "fleetprompt.db")) as connection:
        names = connection.execute("SELECT name FROM listings").fetchall()
    assert names == [("Release Notes Writer",)]
    engine.dispose()  # type: ignore[attr-defined]


def test_readme_test_command_is_what_ci_runs() -> None:
    """.ci/run runs the README's test command verbatim."""
    command = 'python3 -m pip install -e ".[dev]" && python3 -m pytest'
    assert command in README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci
    assert "set -euo pipefail" in ci

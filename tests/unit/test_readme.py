"""The README's embedding example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_embedding_example_runs_a_full_publish_install_redeem_flow(capsys: object) -> None:
    """The README's python block publishes, installs and redeems against the in-memory adapter."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - our own README
    redemption = namespace["redemption"]
    assert redemption.install_intent.status == "redeemed"  # type: ignore[attr-defined]
    assert redemption.release.version == "1.0.0"  # type: ignore[attr-defined]


def test_readme_test_command_is_what_ci_runs() -> None:
    """.ci/run runs the README's test command verbatim."""
    command = 'python3 -m pip install -e ".[dev]" && python3 -m pytest'
    assert command in README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci
    assert "set -euo pipefail" in ci

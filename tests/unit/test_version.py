"""The version is written once, in pyproject.toml; everything else reads it."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import fleetprompt_core
from fleetprompt_http.app import package_version

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_comes_from_the_installed_distribution() -> None:
    assert fleetprompt_core.__version__ == metadata.version("fleetprompt")
    assert package_version() == fleetprompt_core.__version__


def test_no_module_writes_a_version_of_its_own() -> None:
    literal = re.compile(r"""^\s*(__version__|VERSION|version)\s*[:=].*["']\d+\.\d+""", re.M)
    written = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "src").rglob("*.py")
        if literal.search(path.read_text(encoding="utf-8"))
    ]
    assert written == []

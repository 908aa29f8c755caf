"""Fixtures shared by every suite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import Market  # noqa: E402


@pytest.fixture
def market() -> Market:
    """A fresh in-memory marketplace with a manual clock."""
    return Market.create()

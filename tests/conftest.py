"""Fixtures shared by every suite (``tests`` is on ``pythonpath``, see pyproject)."""

from __future__ import annotations

import pytest

from support import Market


@pytest.fixture
def market() -> Market:
    """A fresh in-memory marketplace with a manual clock."""
    return Market.create()

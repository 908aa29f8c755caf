"""Fixtures shared by every suite (``tests`` is on ``pythonpath``, see pyproject), and the
hypothesis profiles.

Profiles: ``dev`` (the default) runs few examples so that the suite stays quick
while you work; ``ci`` runs many, and is chosen when ``CI=true`` (as CI services
set it, and ``.ci/run`` does). ``HYPOTHESIS_PROFILE=ci`` picks one explicitly. A
test that sets no example count of its own gets the profile's.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from support import Market

# Timing is not what these tests prove, and the machines they run on are shared:
# neither profile fails a test because generating or running an example was slow
# on a loaded machine (the too_slow health check, the per-example deadline).
# Speed is measured in bench/, never asserted here.
_UNTIMED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("dev", max_examples=25, **_UNTIMED)
settings.register_profile("ci", max_examples=200, print_blob=True, **_UNTIMED)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE")
    or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
)


@pytest.fixture
def market() -> Market:
    """A fresh in-memory marketplace with a manual clock."""
    return Market.create()

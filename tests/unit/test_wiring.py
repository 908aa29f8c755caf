"""One bootstrap signature: every adapter's ``bootstrap`` takes :class:`Wiring`'s keywords."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fleetprompt_adapters import memory
from fleetprompt_adapters.memory import MemoryRateLimiter
from fleetprompt_adapters.passwords import Argon2PasswordHasher
from fleetprompt_adapters.system import (
    ManualClock,
    SecretTokenGenerator,
    Sha256TokenHasher,
    UlidIdGenerator,
    Wiring,
)
from fleetprompt_core import CoreSettings, FleetPrompt
from fleetprompt_core.policies.rate_limits import RateLimits

sa = pytest.importorskip("sqlalchemy", reason="the sql extra is not installed")
sql = pytest.importorskip("fleetprompt_adapters.sql", reason="the sql extra is not installed")


def _memory(**wiring: Any) -> FleetPrompt:
    return memory.bootstrap(**wiring)


def _sql(**wiring: Any) -> FleetPrompt:
    # Wiring opens no connection: an unmigrated in-memory engine is enough here.
    return sql.bootstrap(sa.create_engine("sqlite://"), **wiring)


ADAPTERS: dict[str, Callable[..., FleetPrompt]] = {"memory": _memory, "sql": _sql}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_every_wiring_keyword_reaches_the_runtime(adapter: str) -> None:
    """Each key of Wiring, given to an adapter's bootstrap, is what the use cases get."""
    clock = ManualClock()
    given: Wiring = {
        "clock": clock,
        "settings": CoreSettings(image_hosts=frozenset({"img.example.com"})),
        "cursor_key": b"k" * 32,
        "ids": UlidIdGenerator(clock),
        "tokens": SecretTokenGenerator(),
        "hasher": Sha256TokenHasher(),
        "limiter": MemoryRateLimiter(),
        "rate_limits": RateLimits(rules={}),
        "passwords": Argon2PasswordHasher(),
    }
    assert set(given) == Wiring.__optional_keys__, "the test names every key of Wiring"
    runtime = ADAPTERS[adapter](**given).runtime
    assert runtime.clock is given["clock"]
    assert runtime.settings is given["settings"]
    assert runtime.cursors.key == given["cursor_key"]
    assert runtime.ids is given["ids"]
    assert runtime.tokens is given["tokens"]
    assert runtime.hasher is given["hasher"]
    assert runtime.limiter is given["limiter"]
    assert runtime.rate_limits is given["rate_limits"]
    assert runtime.passwords is given["passwords"]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_missing_wiring_keywords_get_the_same_defaults(adapter: str) -> None:
    """Without keywords both adapters wire the system defaults, and no limiter."""
    runtime = ADAPTERS[adapter]().runtime
    assert isinstance(runtime.ids, UlidIdGenerator)
    assert isinstance(runtime.tokens, SecretTokenGenerator)
    assert isinstance(runtime.hasher, Sha256TokenHasher)
    assert isinstance(runtime.passwords, Argon2PasswordHasher)
    assert runtime.settings == CoreSettings()
    assert runtime.rate_limits == RateLimits()
    assert runtime.limiter is None
    assert len(runtime.cursors.key) == 32
    assert runtime.catalog_version is not None


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_unknown_keyword_is_a_type_error(adapter: str) -> None:
    """A misspelt collaborator is refused, not silently ignored."""
    with pytest.raises(TypeError, match="clokc"):
        ADAPTERS[adapter](clokc=ManualClock())

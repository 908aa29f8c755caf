"""The Redis rate limiter beyond the port contract: keys, expiry, processes, failures.

The port contract suite (``test_port_rate_limiter.py``) already runs against
Redis; these tests cover what only a shared server has: keys that expire, one
budget across clients (processes), atomicity under threads, and failures that
must come out as ``Unavailable`` (an outage) or ``Internal`` (an error reply)
without driver text.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import traceback
from collections.abc import Iterator

import pytest
import redis

import databases
from contract.harness import run_threads
from fleetprompt_adapters.redis_limiter import DEFAULT_EXPIRY_GRACE_MS, RedisRateLimiter
from fleetprompt_core.base.errors import DomainError, ErrorCode, Internal, Unavailable
from fleetprompt_core.ports import RateDecision

T = 1_767_225_600_000


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    url = databases.redis_url()
    prefix = databases.redis_key_prefix()
    yield prefix
    with contextlib.closing(redis.Redis.from_url(url)) as client:
        databases.delete_redis_keys(client, prefix)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """A plain client on the test Redis, to look at keys."""
    with contextlib.closing(redis.Redis.from_url(databases.redis_url())) as client:
        yield client


@contextlib.contextmanager
def limiter_at(url: str, prefix: str, **options: int) -> Iterator[RedisRateLimiter]:
    """A limiter with a client of its own (as another process would have); closed after."""
    limiter = RedisRateLimiter.from_url(url, prefix=prefix, **options)
    try:
        yield limiter
    finally:
        limiter.close()


@pytest.fixture
def limiter(prefix: str) -> Iterator[RedisRateLimiter]:
    """A limiter under this test's prefix."""
    with limiter_at(databases.redis_url(), prefix) as limiter:
        yield limiter


def _keys(client: redis.Redis, prefix: str) -> set[bytes]:
    return set(client.scan_iter(match=prefix + "*", count=1_000))


# --------------------------------------------------------------------------- keys


def test_redis_limiter_stores_a_bucket_as_one_sorted_set_under_the_prefix(
    limiter: RedisRateLimiter, client: redis.Redis, prefix: str
) -> None:
    """One sorted set per bucket at prefix + bucket, one member per counted hit scored by time."""
    assert limiter.hit("user:a", 3, 1_000, T).allowed
    assert limiter.hit("user:a", 3, 1_000, T).allowed
    assert limiter.hit("user:a", 3, 1_000, T + 5).allowed
    assert not limiter.hit("user:a", 3, 1_000, T + 6).allowed  # refused: not stored
    key = (prefix + "user:a").encode()
    assert _keys(client, prefix) == {key}
    assert client.type(key) == b"zset"
    scores = [score for _, score in client.zrange(key, 0, -1, withscores=True)]
    assert scores == [T, T, T + 5]  # equal timestamps are still separate members


def test_redis_limiter_bucket_names_are_exact_bytes(
    limiter: RedisRateLimiter, client: redis.Redis, prefix: str
) -> None:
    """Colons, case, unicode and even lone surrogates name distinct keys, byte for byte."""
    buckets = ["a:b", "a:B", "A:b", "a", "a:", ":a", "ключ", "🔑", "a\x00b", "x\ud800y", " a"]
    for bucket in buckets:
        assert limiter.hit(bucket, 1, 60_000, T).allowed
    for bucket in buckets:
        assert limiter.hit(bucket, 1, 60_000, T) == RateDecision(False, 60_000)
    expected = {prefix.encode() + b.encode("utf-8", "surrogatepass") for b in buckets}
    assert _keys(client, prefix) == expected
    assert {limiter.key(b) for b in buckets} == expected


def test_redis_limiter_prefixes_keep_deployments_apart(prefix: str) -> None:
    """Two limiters with different prefixes on one server never share a bucket."""
    url = databases.redis_url()
    with limiter_at(url, prefix + "one:") as one, limiter_at(url, prefix + "two:") as two:
        assert one.hit("b", 1, 60_000, T).allowed
        assert two.hit("b", 1, 60_000, T).allowed
        assert not one.hit("b", 1, 60_000, T).allowed
        assert not two.hit("b", 1, 60_000, T).allowed


def test_redis_limiter_key_expires_when_its_newest_hit_leaves_the_window(
    client: redis.Redis, prefix: str
) -> None:
    """PEXPIRE is window + grace after the newest hit: an idle bucket's key vanishes."""
    with limiter_at(databases.redis_url(), prefix, expiry_grace_ms=0) as limiter:
        assert limiter.hit("idle", 5, 150, T).allowed
        key = limiter.key("idle")
        assert 0 < client.pttl(key) <= 150
        deadline = time.monotonic() + 5
        while client.exists(key) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not client.exists(key)
        assert _keys(client, prefix) == set()


def test_redis_limiter_default_grace_keeps_a_key_a_little_longer(
    limiter: RedisRateLimiter, client: redis.Redis
) -> None:
    """By default a key outlives its window by the grace period (clock skew between processes)."""
    assert limiter.hit("b", 5, 10_000, T).allowed
    ttl = client.pttl(limiter.key("b"))
    assert 10_000 < ttl <= 10_000 + DEFAULT_EXPIRY_GRACE_MS


def test_redis_limiter_expiry_follows_the_newest_hit_never_shortens(
    limiter: RedisRateLimiter, client: redis.Redis
) -> None:
    """A hit stamped earlier (a process with a lagging clock) does not cut a later hit's life."""
    assert limiter.hit("b", 5, 10_000, T + 5_000).allowed
    assert limiter.hit("b", 5, 10_000, T).allowed  # 5 s behind: newest is still T + 5 000
    ttl = client.pttl(limiter.key("b"))
    assert 15_000 < ttl <= 15_000 + DEFAULT_EXPIRY_GRACE_MS


def test_redis_limiter_refusals_do_not_extend_the_key(
    limiter: RedisRateLimiter, client: redis.Redis
) -> None:
    """A refused hit is not counted and leaves the key's expiry alone."""
    assert limiter.hit("b", 1, 10_000, T).allowed
    key = limiter.key("b")
    client.pexpire(key, 4_000)  # mark it: a refusal must not reset this
    assert not limiter.hit("b", 1, 10_000, T + 9_000).allowed
    assert 0 < client.pttl(key) <= 4_000
    assert client.zcard(key) == 1


def test_redis_limiter_limit_zero_refuses_without_touching_redis(
    limiter: RedisRateLimiter, client: redis.Redis, prefix: str
) -> None:
    """A limit of 0 refuses for a whole window, as the memory limiter does, and stores nothing."""
    assert limiter.hit("b", 0, 5_000, T) == RateDecision(False, 5_000)
    assert _keys(client, prefix) == set()


def test_redis_limiter_survives_a_flushed_script_cache(
    limiter: RedisRateLimiter, client: redis.Redis
) -> None:
    """After SCRIPT FLUSH (a restart, a failover) the registered script is loaded again."""
    assert limiter.hit("b", 2, 60_000, T).allowed
    client.script_flush()
    assert limiter.hit("b", 2, 60_000, T).allowed
    assert limiter.hit("b", 2, 60_000, T) == RateDecision(False, 60_000)


# --------------------------------------------------------------------------- processes and threads


def test_redis_limiter_two_clients_share_one_budget(prefix: str) -> None:
    """Two limiters with their own connections (two processes) draw on one budget per bucket."""
    url = databases.redis_url()
    with limiter_at(url, prefix) as first, limiter_at(url, prefix) as second:
        assert first.client is not second.client
        decisions = [
            (first if i % 2 else second).hit("user:shared", 5, 1_000, T + i) for i in range(8)
        ]
        assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
        assert first.hit("user:shared", 5, 1_000, T + 500) == RateDecision(False, 500)
        assert second.hit("user:shared", 5, 1_000, T + 1_000).allowed  # the hit at T left
        assert not first.hit("user:shared", 5, 1_000, T + 1_000).allowed


def test_redis_limiter_concurrent_hits_from_many_clients_never_exceed_the_limit(
    prefix: str,
) -> None:
    """Threads, each with its own client, hammering one bucket are allowed exactly limit times."""
    url = databases.redis_url()
    threads = 8
    with contextlib.ExitStack() as stack:
        limiters = [stack.enter_context(limiter_at(url, prefix)) for _ in range(threads)]
        start = threading.Barrier(threads)

        def worker(i: int) -> int:
            start.wait()
            return sum(limiters[i].hit("hot", 37, 60_000, T + j).allowed for j in range(25))

        allowed = run_threads(threads, worker)
        assert sum(allowed) == 37
        assert limiters[0].client.zcard(limiters[0].key("hot")) == 37


def test_redis_limiter_concurrent_hits_on_one_shared_client_never_exceed_the_limit(
    limiter: RedisRateLimiter,
) -> None:
    """Threads sharing one limiter (one pool) are allowed exactly limit times per bucket."""

    def worker(i: int) -> tuple[int, int]:
        hot = sum(limiter.hit("hot", 50, 10_000, T).allowed for _ in range(20))
        own = sum(limiter.hit(f"own:{i % 2}", 30, 10_000, T).allowed for _ in range(10))
        return hot, own

    results = run_threads(8, worker)
    assert sum(hot for hot, _ in results) == 50
    assert sum(own for _, own in results) == 60  # 2 buckets x 30; 80 attempts


# --------------------------------------------------------------------------- failures


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _assert_clean(error: DomainError, code: ErrorCode, *driver_words: str) -> None:
    """``code``, no chained exception, and none of the driver's words in anything shown."""
    assert error.code is code
    assert error.__cause__ is None
    assert error.__context__ is None
    rendered = "".join(traceback.format_exception(error))
    assert "During handling of the above exception" not in rendered
    assert "direct cause" not in rendered
    shown = f"{error} {error!r} {error.message} {error.hint}".lower()
    for word in ("redis", "error 111", "refused", "127.0.0.1", "timeout reading", *driver_words):
        assert word.lower() not in shown


@pytest.mark.parametrize("port", [1, None], ids=["port-1", "released-port"])
def test_redis_limiter_unreachable_server_raises_unavailable_without_driver_text(
    port: int | None,
) -> None:
    """A closed port: Unavailable (503, retry) with a generic message, nothing of the
    driver in it or its chain; readiness's ping says the same."""
    url = f"redis://127.0.0.1:{port or _closed_port()}/0"
    with limiter_at(url, "fleetprompt_test:closed:") as limiter:
        started = time.monotonic()
        with pytest.raises(Unavailable) as caught:
            limiter.hit("user:secret-bucket", 5, 1_000, T)
        assert time.monotonic() - started < 5
        with pytest.raises(Unavailable):
            limiter.ping()
    error = caught.value
    assert str(error) == "The rate limiter is unavailable."
    assert error.hint == "retry after 1 s"
    _assert_clean(error, ErrorCode.UNAVAILABLE, "secret-bucket")


def test_redis_limiter_server_that_never_answers_raises_unavailable_within_the_timeout() -> None:
    """A server that accepts but never replies: Unavailable after the socket timeouts,
    not a hang."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshake; nothing ever reads or writes
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        limiter = RedisRateLimiter.from_url(url, prefix="fleetprompt_test:silent:", timeout_s=0.2)
        try:
            started = time.monotonic()
            with pytest.raises(Unavailable) as caught:
                limiter.hit("b", 5, 1_000, T)
            elapsed = time.monotonic() - started
        finally:
            limiter.close()
    assert elapsed < 2.0
    assert str(caught.value) == "The rate limiter is unavailable."
    _assert_clean(caught.value, ErrorCode.UNAVAILABLE)


def test_redis_limiter_server_error_raises_internal_without_driver_text(
    limiter: RedisRateLimiter, client: redis.Redis
) -> None:
    """A Redis error reply (a key of the wrong type under the prefix) is Internal, no reply text."""
    client.set(limiter.key("taken"), "a string, not a sorted set")
    with pytest.raises(Internal) as caught:
        limiter.hit("taken", 5, 1_000, T)
    assert str(caught.value) == "The rate limiter failed."
    _assert_clean(caught.value, ErrorCode.INTERNAL, "WRONGTYPE", "a string")


def test_redis_limiter_from_url_connects_lazily() -> None:
    """from_url makes no connection: building a limiter for a dead server succeeds."""
    limiter = RedisRateLimiter.from_url(f"redis://127.0.0.1:{_closed_port()}/0")
    limiter.close()


def test_redis_limiter_rejects_a_negative_grace() -> None:
    """The expiry grace cannot be negative (keys would vanish while their hits still count)."""
    with contextlib.closing(redis.Redis()) as client, pytest.raises(ValueError, match="grace"):
        RedisRateLimiter(client, expiry_grace_ms=-1)

"""RateLimiter.hit and .peek: a sliding window of ``window_ms`` per bucket.

An allowed hit at ``t`` counts against its bucket while ``now < t + window_ms``;
refused hits are not counted. A refusal says how long until the oldest counted
hit leaves the window, so a retry exactly then is allowed.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.harness import run_threads
from fleetprompt_adapters.memory import MemoryRateLimiter
from fleetprompt_core.ports import RateDecision, RateLimiter

T = 1_767_225_600_000
_examples = itertools.count()


def test_rate_limiter_allows_exactly_limit_hits_per_window(rate_limiter: RateLimiter) -> None:
    """limit hits in the same instant are allowed, the next one is refused."""
    decisions = [rate_limiter.hit("b", 5, 1_000, T) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[-1].retry_after_ms == 1_000


def test_rate_limiter_buckets_are_independent(rate_limiter: RateLimiter) -> None:
    """Filling one bucket leaves every other bucket untouched."""
    for _ in range(3):
        assert rate_limiter.hit("user:a", 3, 1_000, T).allowed
    assert not rate_limiter.hit("user:a", 3, 1_000, T).allowed
    assert all(rate_limiter.hit("user:b", 3, 1_000, T).allowed for _ in range(3))
    assert rate_limiter.hit("user:A", 3, 1_000, T).allowed  # bucket names are exact
    assert rate_limiter.hit("client:a", 3, 1_000, T).allowed
    assert not rate_limiter.hit("user:b", 3, 1_000, T).allowed


def test_rate_limiter_window_slides(rate_limiter: RateLimiter) -> None:
    """Hits leave the window one by one, window_ms after each was counted."""
    assert rate_limiter.hit("b", 3, 1_000, T).allowed
    assert rate_limiter.hit("b", 3, 1_000, T + 100).allowed
    assert rate_limiter.hit("b", 3, 1_000, T + 200).allowed
    refused = rate_limiter.hit("b", 3, 1_000, T + 300)
    assert refused == RateDecision(allowed=False, retry_after_ms=700)
    assert rate_limiter.hit("b", 3, 1_000, T + 999) == RateDecision(False, 1)
    assert rate_limiter.hit("b", 3, 1_000, T + 1_000).allowed  # the hit at T left
    assert rate_limiter.hit("b", 3, 1_000, T + 1_001) == RateDecision(False, 99)
    assert rate_limiter.hit("b", 3, 1_000, T + 1_100).allowed  # the hit at T + 100 left
    assert rate_limiter.hit("b", 3, 1_000, T + 1_150) == RateDecision(False, 50)


def test_rate_limiter_retry_after_is_exact(rate_limiter: RateLimiter) -> None:
    """A retry 1 ms before retry_after is refused; exactly at retry_after it is allowed."""
    for i in range(4):
        assert rate_limiter.hit("b", 4, 60_000, T + i * 10).allowed
    refused = rate_limiter.hit("b", 4, 60_000, T + 5_000)
    assert not refused.allowed
    assert refused.retry_after_ms == 55_000
    early = rate_limiter.hit("b", 4, 60_000, T + 5_000 + refused.retry_after_ms - 1)
    assert not early.allowed
    assert early.retry_after_ms == 1
    assert rate_limiter.hit("b", 4, 60_000, T + 5_000 + refused.retry_after_ms).allowed


def test_rate_limiter_allows_a_full_window_again_after_the_window(
    rate_limiter: RateLimiter,
) -> None:
    """After window_ms of quiet a bucket has its whole limit again; refusals did not count."""
    for _ in range(2):
        assert rate_limiter.hit("b", 2, 500, T).allowed
    for offset in range(0, 500, 50):
        assert not rate_limiter.hit("b", 2, 500, T + offset).allowed
    assert [rate_limiter.hit("b", 2, 500, T + 500).allowed for _ in range(3)] == [True, True, False]


def test_rate_limiter_counts_exactly_under_concurrent_hits(rate_limiter: RateLimiter) -> None:
    """Threads hitting one bucket at once are allowed exactly limit times in total."""
    allowed = run_threads(
        8, lambda _: sum(rate_limiter.hit("hot", 50, 10_000, T).allowed for _ in range(20))
    )
    assert sum(allowed) == 50


#: More distinct buckets than an in-process limiter may hold (the memory default is 100 000).
FLOOD = 100_001
#: Redis keeps each bucket as its own key and has no table to overflow: a smaller
#: flood shows the same independence without 100 000 loopback round trips (~12 s).
SHARED_FLOOD = 2_000


def flood_size(rate_limiter: RateLimiter) -> int:
    return FLOOD if isinstance(rate_limiter, MemoryRateLimiter) else SHARED_FLOOD


def test_rate_limiter_keeps_counting_under_a_flood_of_buckets(rate_limiter: RateLimiter) -> None:
    """Hitting very many other buckets never resets a bucket that is still inside its window."""
    assert rate_limiter.hit("victim", 2, 60_000, T).allowed
    assert rate_limiter.hit("victim", 2, 60_000, T).allowed
    for i in range(flood_size(rate_limiter)):
        rate_limiter.hit(f"flood:{i}", 1, 60_000, T + 1)
    assert rate_limiter.hit("victim", 2, 60_000, T + 2) == RateDecision(False, 59_998)


def test_rate_limiter_windows_of_other_buckets_do_not_shorten_a_window(
    rate_limiter: RateLimiter,
) -> None:
    """A bucket with a long window keeps its hits while short-window buckets come and go."""
    assert rate_limiter.hit("hourly", 1, 3_600_000, T).allowed
    for i in range(flood_size(rate_limiter)):
        rate_limiter.hit(f"burst:{i}", 1, 1, T + 10 + i // 1_000)
    assert rate_limiter.hit("hourly", 1, 3_600_000, T + 1_000) == RateDecision(False, 3_599_000)


class SlidingWindow:
    """Reference model: a log of the counted hits of each bucket."""

    def __init__(self) -> None:
        self.log: dict[str, list[int]] = defaultdict(list)

    def hit(self, bucket: str, limit: int, window_ms: int, now: int) -> RateDecision:
        counted = [t for t in self.log[bucket] if now < t + window_ms]
        self.log[bucket] = counted
        if len(counted) >= limit:
            return RateDecision(False, min(counted) + window_ms - now)
        counted.append(now)
        return RateDecision(True)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    limit=st.integers(1, 4),
    window_ms=st.integers(1, 1_000),
    steps=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 400)), min_size=1, max_size=40
    ),
)
def test_rate_limiter_agrees_with_a_sliding_window_model(
    rate_limiter: RateLimiter, limit: int, window_ms: int, steps: list[tuple[str, int]]
) -> None:
    """Random hit sequences: every decision equals the model's; refusals have retry_after > 0."""
    model = SlidingWindow()
    prefix = f"example{next(_examples)}:"  # one limiter serves every example: keep buckets apart
    now = T
    for bucket, gap in steps:
        now += gap
        peeked = rate_limiter.peek(prefix + bucket, limit, window_ms, now)
        got = rate_limiter.hit(prefix + bucket, limit, window_ms, now)
        want = model.hit(bucket, limit, window_ms, now)
        assert got == want
        assert peeked == got  # peek decides exactly like the hit that follows
        if not got.allowed:
            assert 0 < got.retry_after_ms <= window_ms


@pytest.mark.parametrize(("limit", "window_ms"), [(1, 1), (1, 86_400_000), (100, 1_000)])
def test_rate_limiter_handles_extreme_settings(
    rate_limiter: RateLimiter, limit: int, window_ms: int
) -> None:
    """Tiny and huge windows and large limits obey the same rule."""
    assert all(rate_limiter.hit("x", limit, window_ms, T).allowed for _ in range(limit))
    refused = rate_limiter.hit("x", limit, window_ms, T)
    assert refused == RateDecision(False, window_ms)
    assert rate_limiter.hit("x", limit, window_ms, T + window_ms).allowed


def test_rate_limiter_peek_decides_without_counting(rate_limiter: RateLimiter) -> None:
    """peek answers what hit would, and never uses up the budget."""
    for _ in range(10):
        assert rate_limiter.peek("p", 2, 1_000, T) == RateDecision(True)
    assert rate_limiter.hit("p", 2, 1_000, T).allowed
    assert rate_limiter.hit("p", 2, 1_000, T + 10).allowed
    assert rate_limiter.peek("p", 2, 1_000, T + 20) == RateDecision(False, 980)
    assert rate_limiter.peek("p", 2, 1_000, T + 999) == RateDecision(False, 1)
    assert rate_limiter.peek("p", 2, 1_000, T + 1_000) == RateDecision(True)  # the first left
    assert rate_limiter.peek("unknown", 1, 1_000, T) == RateDecision(True)
    assert rate_limiter.peek("p", 0, 1_000, T) == RateDecision(False, 1_000)


def test_memory_limiter_full_table_evicts_instead_of_refusing_new_buckets() -> None:
    """Issue 14 item 12: with the table full of live one-request buckets (a flood of spoofed
    addresses), a new signed-in user and a redeem source are still served, and a bucket in
    use keeps its count; memory stays bounded."""
    limiter = MemoryRateLimiter(max_buckets=100)
    assert limiter.hit("redeem|source:whs", 3, 60_000, T).allowed
    assert limiter.hit("redeem|source:whs", 3, 60_000, T).allowed
    for i in range(1_000):
        assert limiter.hit(f"search|client:10.0.{i // 256}.{i % 256}", 120, 60_000, T + 1).allowed
        assert len(limiter) <= 100
    assert limiter.hit("search|user:alice", 120, 60_000, T + 2).allowed
    assert limiter.hit("redeem|source:whs", 3, 60_000, T + 3).allowed
    assert limiter.hit("redeem|source:whs", 3, 60_000, T + 4) == RateDecision(False, 59_996)
    assert len(limiter) <= 100


def test_memory_limiter_drops_empty_buckets_before_evicting_live_ones() -> None:
    """A full table first forgets buckets whose window is over; live ones keep counting."""
    limiter = MemoryRateLimiter(max_buckets=3)
    assert limiter.hit("live", 1, 60_000, T).allowed
    assert limiter.hit("short:1", 1, 10, T).allowed
    assert limiter.hit("short:2", 1, 10, T).allowed
    assert limiter.hit("new", 1, 60_000, T + 100).allowed  # both short buckets were empty
    assert len(limiter) == 2
    assert limiter.hit("live", 1, 60_000, T + 100) == RateDecision(False, 59_900)

"""Sliding-window rate limiter for one process."""

from __future__ import annotations

import collections
import threading

import attrs

from fleetprompt_core.ports import RateDecision

__all__ = ["MemoryRateLimiter"]


@attrs.define
class _Bucket:
    events: collections.deque[int]
    #: When the newest event leaves this bucket's own window: after that it is empty.
    empty_at_ms: int


class MemoryRateLimiter:
    """Counts events per bucket over a sliding window (a log of timestamps).

    Memory is bounded: at most ``limit`` timestamps per bucket and at most
    ``max_buckets`` buckets. A bucket is dropped only once its own window is
    empty, so no flood of other buckets can reset a live count. When the
    table is full of live buckets, a *new* bucket is refused until the
    earliest one empties (fail closed rather than forget a limit).
    """

    def __init__(self, max_buckets: int = 100_000) -> None:
        if max_buckets < 1:
            raise ValueError("max_buckets must be at least 1")
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._max_buckets = max_buckets
        self._earliest_empty_ms = 0

    def hit(self, bucket: str, limit: int, window_ms: int, now_ms: int) -> RateDecision:
        if limit <= 0:
            return RateDecision(allowed=False, retry_after_ms=window_ms)
        with self._lock:
            state = self._buckets.get(bucket)
            if state is None:
                if len(self._buckets) >= self._max_buckets and not self._evict(now_ms):
                    return RateDecision(
                        allowed=False, retry_after_ms=max(1, self._earliest_empty_ms - now_ms)
                    )
                state = self._buckets[bucket] = _Bucket(collections.deque(), now_ms)
            events = state.events
            while events and events[0] <= now_ms - window_ms:
                events.popleft()
            if len(events) >= limit:
                return RateDecision(allowed=False, retry_after_ms=events[0] + window_ms - now_ms)
            events.append(now_ms)
            state.empty_at_ms = now_ms + window_ms
            # Keep the cache a lower bound of the true earliest, so a skipped scan is never wrong.
            self._earliest_empty_ms = min(self._earliest_empty_ms, state.empty_at_ms)
            return RateDecision(allowed=True)

    def _evict(self, now_ms: int) -> bool:
        """Drop every bucket whose window is empty; ``True`` when room was made."""
        if now_ms < self._earliest_empty_ms:
            return False  # nothing can have emptied yet: skip the scan
        stale = [name for name, state in self._buckets.items() if state.empty_at_ms <= now_ms]
        for name in stale:
            del self._buckets[name]
        self._earliest_empty_ms = min(
            (state.empty_at_ms for state in self._buckets.values()), default=now_ms
        )
        return len(self._buckets) < self._max_buckets

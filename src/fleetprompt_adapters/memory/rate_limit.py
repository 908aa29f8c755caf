"""Sliding-window rate limiter for one process."""

from __future__ import annotations

import collections
import threading

from fleetprompt_core.ports import RateDecision

__all__ = ["MemoryRateLimiter"]


class MemoryRateLimiter:
    """Counts events per bucket over a sliding window (a log of timestamps).

    Memory is bounded by ``limit`` timestamps per active bucket; buckets are
    dropped once their window is empty.
    """

    def __init__(self, max_buckets: int = 100_000) -> None:
        self._events: dict[str, collections.deque[int]] = {}
        self._lock = threading.Lock()
        self._max_buckets = max_buckets

    def hit(self, bucket: str, limit: int, window_ms: int, now_ms: int) -> RateDecision:
        if limit <= 0:
            return RateDecision(allowed=False, retry_after_ms=window_ms)
        with self._lock:
            events = self._events.get(bucket)
            if events is None:
                if len(self._events) >= self._max_buckets:
                    self._evict(now_ms, window_ms)
                events = self._events[bucket] = collections.deque()
            while events and events[0] <= now_ms - window_ms:
                events.popleft()
            if len(events) >= limit:
                return RateDecision(allowed=False, retry_after_ms=events[0] + window_ms - now_ms)
            events.append(now_ms)
            return RateDecision(allowed=True)

    def _evict(self, now_ms: int, window_ms: int) -> None:
        stale = [b for b, ev in self._events.items() if not ev or ev[-1] <= now_ms - window_ms]
        for bucket in stale:
            del self._events[bucket]
        if len(self._events) >= self._max_buckets:  # still full: drop the oldest half
            for bucket in list(self._events)[: self._max_buckets // 2]:
                del self._events[bucket]

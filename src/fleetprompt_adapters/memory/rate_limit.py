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
    ``max_buckets`` buckets. A new bucket is never refused for lack of room
    (a flood of spoofable anonymous buckets must not lock out a signed-in user
    or a redeem source): when the table is full, room is made by

    1. dropping every bucket whose window is empty (it would count nothing);
    2. else evicting the least recently used bucket *seen only once* — the
       kind a flood of new addresses makes;
    3. else evicting the least recently used bucket of all.

    A bucket hit a second time (allowed or refused) is promoted out of the
    seen-once segment, so a bucket that is near its limit, and any bucket in
    steady use, survives a flood of one-request buckets; losing a seen-once
    bucket forgets one event. This is a segmented LRU (probation and
    protected segments, as in SLRU caches).
    """

    def __init__(self, max_buckets: int = 100_000) -> None:
        if max_buckets < 1:
            raise ValueError("max_buckets must be at least 1")
        #: Seen once, least recently used first.
        self._probation: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()
        #: Seen more than once, least recently used first.
        self._protected: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._max_buckets = max_buckets
        #: A lower bound of the earliest ``empty_at_ms``: no scan for empty buckets before it.
        self._earliest_empty_ms = 0

    def __len__(self) -> int:
        """How many buckets are held."""
        return len(self._probation) + len(self._protected)

    def _find(self, bucket: str) -> _Bucket | None:
        """The bucket, promoted or refreshed as most recently used; ``None`` if unknown."""
        state = self._protected.get(bucket)
        if state is not None:
            self._protected.move_to_end(bucket)
            return state
        state = self._probation.pop(bucket, None)
        if state is not None:
            self._protected[bucket] = state
        return state

    def hit(self, bucket: str, limit: int, window_ms: int, now_ms: int) -> RateDecision:
        if limit <= 0:
            return RateDecision(allowed=False, retry_after_ms=window_ms)
        with self._lock:
            state = self._find(bucket)
            if state is None:
                if len(self) >= self._max_buckets:
                    self._make_room(now_ms)
                state = self._probation[bucket] = _Bucket(collections.deque(), now_ms)
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

    def peek(self, bucket: str, limit: int, window_ms: int, now_ms: int) -> RateDecision:
        with self._lock:
            state = self._protected.get(bucket) or self._probation.get(bucket)
            counted = [t for t in state.events if t > now_ms - window_ms] if state else []
        if limit <= 0:
            return RateDecision(allowed=False, retry_after_ms=window_ms)
        if len(counted) >= limit:
            return RateDecision(allowed=False, retry_after_ms=counted[0] + window_ms - now_ms)
        return RateDecision(allowed=True)

    def _make_room(self, now_ms: int) -> None:
        if now_ms >= self._earliest_empty_ms:
            for segment in (self._probation, self._protected):
                stale = [name for name, state in segment.items() if state.empty_at_ms <= now_ms]
                for name in stale:
                    del segment[name]
            self._earliest_empty_ms = min(
                (s.empty_at_ms for s in (*self._probation.values(), *self._protected.values())),
                default=now_ms,
            )
        if len(self) < self._max_buckets:
            return
        segment = self._probation or self._protected
        segment.popitem(last=False)

"""Sliding-window rate limiter in Redis, shared by every server process.

Each bucket is one sorted set, ``prefix + bucket``, whose members are the
counted hits scored by their time (``now_ms`` as the caller passed it: the
port's clock, never Redis ``TIME``). One Lua script does the whole decision
atomically, so processes on any number of hosts share one budget exactly:

1. drop the hits that left the window (score ``<= now - window``);
2. refuse when ``limit`` hits remain, answering how long until the oldest
   leaves (refused hits are not stored);
3. otherwise add this hit under a unique member and ``PEXPIRE`` the key until
   its newest hit leaves the window (plus a grace period), so idle buckets
   vanish without a sweeper.

The decisions are exactly those of
:class:`~fleetprompt_adapters.memory.MemoryRateLimiter` (the port contract
suite runs against both). A Redis failure of any kind (connection, timeout,
error reply) comes out as a domain error with no driver text, not even in the
exception chain: ``Unavailable`` (503) when Redis cannot be reached in time,
``Internal`` for an error reply.

Requires the ``server`` extra (redis-py).
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from typing import Final, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fleetprompt_core.base.errors import Internal, Unavailable
from fleetprompt_core.ports import RateDecision

__all__ = ["DEFAULT_EXPIRY_GRACE_MS", "DEFAULT_PREFIX", "RedisRateLimiter"]

DEFAULT_PREFIX: Final = "fleetprompt:rl:"
_log = logging.getLogger("fleetprompt.redis")

#: How long a bucket's key outlives its newest hit's window. Covers clock skew
#: between server processes (a process whose clock lags still sees the hit
#: counting) and the time between a caller reading its clock and the script
#: running. Keys are garbage collection only: the window itself is always
#: computed from the scores.
DEFAULT_EXPIRY_GRACE_MS: Final = 1_000

# KEYS[1]: the bucket's sorted set.
# ARGV: limit, window_ms, now_ms, now_ms - window_ms, member, grace_ms.
# Returns 0 when the hit is allowed and counted, else the milliseconds until
# the oldest counted hit leaves the window (always > 0: every hit kept scores
# above now - window). Times reach Redis as the decimal strings Python wrote,
# and Lua arithmetic on them is exact (doubles, integers below 2**53).
_HIT_SCRIPT: Final = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[4])
if redis.call('ZCARD', key) >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end
redis.call('ZADD', key, ARGV[3], ARGV[5])
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
local ttl = tonumber(newest[2]) + window - now + tonumber(ARGV[6])
redis.call('PEXPIRE', key, string.format('%d', math.max(ttl, 1)))
return 0
"""

# The same decision as _HIT_SCRIPT's, read-only. ARGV: limit, window_ms, now_ms.
_PEEK_SCRIPT: Final = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local floor = '(' .. string.format('%d', now - window)
if redis.call('ZCOUNT', key, floor, '+inf') >= limit then
  local oldest = redis.call('ZRANGEBYSCORE', key, floor, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return tonumber(oldest[2]) + window - now
end
return 0
"""

_FAILURE_MESSAGE: Final = "rate limiter unavailable"


def _limiter_error(error: redis.RedisError) -> Internal | Unavailable:
    """The contract's error for a Redis failure: a lost or refused connection or a
    timeout is an outage of a shared service (``Unavailable``), an error reply
    ``Internal``. The log line names the exception class only, never driver text."""
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        _log.warning("%s (%s)", _FAILURE_MESSAGE, type(error).__name__)
        return Unavailable("The rate limiter is unavailable.")
    _log.error("rate limiter failed (%s)", type(error).__name__)
    return Internal("The rate limiter failed.")


class RedisRateLimiter:
    """The :class:`~fleetprompt_core.ports.RateLimiter` port over one Redis server.

    ``client`` may be shared with other code; the limiter only touches keys
    starting with ``prefix``. Bucket names are arbitrary strings, stored as
    their exact UTF-8 bytes after the prefix (case-sensitive, no escaping, no
    collisions). Safe to share between threads (redis-py pools connections).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        expiry_grace_ms: int = DEFAULT_EXPIRY_GRACE_MS,
    ) -> None:
        if expiry_grace_ms < 0:
            raise ValueError("expiry_grace_ms must not be negative")
        self._client = client
        self._prefix = prefix.encode("utf-8", "surrogatepass")
        self._grace = str(expiry_grace_ms)
        # Registered once: redis-py sends EVALSHA and reloads the script if the
        # server lost it (restart, SCRIPT FLUSH, failover).
        self._script = client.register_script(_HIT_SCRIPT)
        self._peek = client.register_script(_PEEK_SCRIPT)
        # Members are unique per hit: this process, this limiter, a counter.
        # The pid is read per hit so that workers forked after construction differ.
        self._nonce = secrets.token_hex(8)
        self._sequence = itertools.count()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout_s: float = 1.0,
        expiry_grace_ms: int = DEFAULT_EXPIRY_GRACE_MS,
    ) -> Self:
        """A limiter over a new client for ``redis://``, ``rediss://`` or ``unix://`` ``url``.

        No connection is made here; the first :meth:`hit` connects. Connecting
        and each reply are bounded by ``timeout_s``, and a failed command is
        retried once at once (a pooled connection may have died with a Redis
        restart), so a dead Redis costs a request at most about
        ``4 * timeout_s`` before it is refused with ``Unavailable``.
        """
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
        )
        return cls(client, prefix=prefix, expiry_grace_ms=expiry_grace_ms)

    @property
    def client(self) -> redis.Redis:
        """The redis-py client the limiter runs on."""
        return self._client

    def key(self, bucket: str) -> bytes:
        """The Redis key of ``bucket``: the prefix, then the bucket's exact UTF-8 bytes."""
        return self._prefix + bucket.encode("utf-8", "surrogatepass")

    def hit(self, bucket: str, limit: int, window_ms: int, now_ms: int) -> RateDecision:
        if limit <= 0:
            return RateDecision(allowed=False, retry_after_ms=window_ms)
        member = f"{os.getpid():x}:{self._nonce}:{next(self._sequence):x}"
        args = (limit, window_ms, now_ms, now_ms - window_ms, member, self._grace)
        try:
            retry_after = int(self._script(keys=[self.key(bucket)], args=args))
        except redis.RedisError as error:
            failure = _limiter_error(error)
        else:
            if retry_after <= 0:
                return RateDecision(allowed=True)
            return RateDecision(allowed=False, retry_after_ms=retry_after)
        # Raised outside the ``except`` block so that neither ``__cause__`` nor
        # ``__context__`` holds the driver's exception (as ``sql.store.guarded``).
        raise failure

    def peek(self, bucket: str, limit: int, window_ms: int, now_ms: int) -> RateDecision:
        if limit <= 0:
            return RateDecision(allowed=False, retry_after_ms=window_ms)
        try:
            retry_after = int(self._peek(keys=[self.key(bucket)], args=(limit, window_ms, now_ms)))
        except redis.RedisError as error:
            failure = _limiter_error(error)
        else:
            if retry_after <= 0:
                return RateDecision(allowed=True)
            return RateDecision(allowed=False, retry_after_ms=retry_after)
        raise failure

    def ping(self) -> None:
        """Check that Redis answers (readiness); raise ``Unavailable`` otherwise."""
        try:
            self._client.ping()
        except redis.RedisError as error:
            failure = _limiter_error(error)
        else:
            return
        raise failure

    def close(self) -> None:
        """Close the client's connections (the limiter must not be used afterwards)."""
        self._client.close()

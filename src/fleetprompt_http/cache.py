"""The public response cache (ADR 0028): the bytes of P1–P3 answers, per process.

Public reads (search, listing detail, a listing's releases) answer every
anonymous caller with the same bytes, so a process keeps them, keyed by the
path and the canonical query, and serves a repeat before any thread hop:
the rate limit is counted, then the stored bytes go out with their strong
``ETag`` (``304`` to a matching ``If-None-Match``) and a ``Cache-Control``
that lets a CDN or reverse proxy store them and revalidate.

Freshness comes from the storage's catalogue version (the core's
``CatalogVersion`` port): every entry is tagged with the version read
*before* its answer was built, and the whole cache is dropped when the
version moves. :class:`VersionPoller` reads the shared version every
:data:`POLL_INTERVAL_S`; a version that was not read within the adapter's
trust window (1 s) is ``None`` and then nothing is served from the cache.
Entries also expire after :data:`ENTRY_TTL_MS` of the application clock:
the install statistics' 30-day window slides without any write, and a new
install intent does not move the version (ADR 0033), so the install counts a
cached answer shows lag by at most that long.

Only anonymous requests use the cache (neither read nor write it): a
request with ``Authorization`` runs its use case, resolving its credential,
as before. Only ``200`` answers are stored (an error carries its request id).

A hit is answered by the server's entry point before Litestar's routing (ADR
0038): each entry remembers which public read it answers (its rate limit is
counted first) and its route (for the access log). Concurrent misses of one
key share one computation (:meth:`PublicCache.lead` and
:meth:`PublicCache.flight`): a cold or expired hot key costs one use case,
not one per waiting connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import attrs
from anyio import to_thread

from fleetprompt_core.ports import CatalogVersion, Clock
from fleetprompt_core.services.catalog import PublicRead
from fleetprompt_http.logs import log_event

__all__ = [
    "ENTRY_TTL_MS",
    "POLL_INTERVAL_S",
    "REFUSED_KEY",
    "Entry",
    "PublicCache",
    "VersionPoller",
    "cache_key",
    "etag_of",
    "matches",
]

#: The scope ``state`` key under which the entry point leaves the exception its rate
#: limit check raised on a cached answer: the route raises it, so the refusal gets the
#: exception handlers' envelope (``429`` and its headers) like any other.
REFUSED_KEY: Final = "fleetprompt.cache_refused"
#: How often a process reads the shared catalogue version.
POLL_INTERVAL_S: Final = 0.25
#: The longest an entry is served (application clock): time-dependent fields
#: (install attempts over a sliding 30-day window) move without a write, and
#: new install intents do not move the catalogue version (ADR 0033): this is
#: how far the install counts of a cached answer may lag.
ENTRY_TTL_MS: Final = 10_000

_log = logging.getLogger("fleetprompt.cache")


@attrs.define(slots=True, eq=False)
class Entry:
    """One stored answer: the JSON body, its strong entity tag, when it was built,
    the public read it answers (counted against its limit on every hit) and its
    route template (the access log's ``route``)."""

    body: bytes
    etag: str
    stored_at_ms: int
    read: PublicRead | None = None
    route: str | None = None
    #: The response heads of a hit by status (200, 304), built once by the entry point.
    heads: dict[int, list[tuple[bytes, bytes]]] = attrs.field(factory=dict)


def etag_of(body: bytes) -> str:
    """A strong entity tag: 128 bits of BLAKE2b of the exact bytes."""
    digest = hashlib.blake2b(body, digest_size=16).digest()
    return '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (RFC 9110 §13.1.2: weak comparison)."""
    if not if_none_match:
        return False
    wanted = if_none_match.strip()
    if wanted == "*":
        return True
    for candidate in wanted.split(","):
        tag = candidate.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def cache_key(scope: Any) -> str:
    """The path and the canonical query: the raw ``name=value`` parts sorted by
    name, a repeated parameter's values kept in their order. Nothing is decoded,
    so two different queries never share a key (two spellings of one query only
    cost a second entry)."""
    raw: bytes = scope.get("query_string", b"")
    path: str = scope["path"]
    if not raw:
        return path
    parts = raw.split(b"&")
    parts.sort(key=lambda part: part.partition(b"=")[0])  # stable: one name keeps its order
    return path + "?" + b"&".join(parts).decode("latin-1")


class PublicCache:
    """A bounded LRU of public answers for one catalogue version (event loop only)."""

    def __init__(self, version: CatalogVersion, clock: Clock, *, max_bytes: int) -> None:
        self.source = version
        self._clock = clock
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        self._version: int | None = None
        self.hits = 0
        self.misses = 0
        #: The computations in progress, by key: (the version they read, their answer).
        self._flights: dict[str, tuple[int, asyncio.Future[Entry | None]]] = {}

    def version(self) -> int | None:
        """The catalogue version to read and tag with now; ``None``: do not cache."""
        version = self.source.current()
        if version != self._version:
            self._entries.clear()
            self._bytes = 0
            self._version = version
        return version

    def get(self, key: str, version: int) -> Entry | None:
        """The fresh entry of ``key`` at ``version`` (a hit), else ``None`` (a miss)."""
        entry = self.peek(key, version)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def peek(self, key: str, version: int) -> Entry | None:
        """:meth:`get` without counting: the entry point's look-up, which counts a hit
        itself once the rate limit let it through, and leaves a miss to the route."""
        if version != self._version:
            return None
        entry = self._entries.get(key)
        if entry is None or self._clock.now_ms() - entry.stored_at_ms > ENTRY_TTL_MS:
            return None
        self._entries.move_to_end(key)
        return entry

    def flight(self, key: str, version: int | None) -> asyncio.Future[Entry | None] | None:
        """The answer being computed for ``key`` from the catalogue at ``version`` on this
        event loop, if any: a miss awaits it instead of computing the same bytes again.
        A computation that read another version (older: it may predate a change this
        caller must see) is not joined."""
        flight = self._flights.get(key)
        if flight is None or version is None or flight[0] != version:
            return None
        future = flight[1]
        if future.done() or future.get_loop() is not asyncio.get_running_loop():
            return None
        return future

    def lead(self, key: str, version: int | None) -> asyncio.Future[Entry | None] | None:
        """Announce that this request computes ``key`` (``None``: not cacheable now);
        :meth:`land` must follow, whatever happens."""
        if version is None:
            return None
        future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        self._flights[key] = (version, future)
        return future

    def land(
        self, key: str, future: asyncio.Future[Entry | None] | None, entry: Entry | None
    ) -> None:
        """End the computation :meth:`lead` announced: its waiters get ``entry`` (``None``
        when it failed: each of them then computes its own answer)."""
        if future is None:
            return
        flight = self._flights.get(key)
        if flight is not None and flight[1] is future:
            del self._flights[key]
        if not future.done():
            future.set_result(entry)

    def put(
        self,
        key: str,
        version: int | None,
        body: bytes,
        read: PublicRead | None = None,
        route: str | None = None,
    ) -> Entry:
        """Store ``body`` built from the catalogue at ``version`` (unless it moved since)."""
        entry = Entry(body, etag_of(body), self._clock.now_ms(), read, route)
        if version is None or self.version() != version or len(body) > self.max_bytes // 8:
            return entry
        previous = self._entries.pop(key, None)
        if previous is not None:
            self._bytes -= len(previous.body)
        self._entries[key] = entry
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted.body)
        return entry

    def bodies(self) -> list[bytes]:
        """Every stored body (for tests that inspect what is cached)."""
        return [entry.body for entry in self._entries.values()]

    @property
    def size_bytes(self) -> int:
        return self._bytes


class VersionPoller:
    """Reads the shared catalogue version every :data:`POLL_INTERVAL_S` (one task per process)."""

    def __init__(self, version: CatalogVersion, interval_s: float = POLL_INTERVAL_S) -> None:
        self._version = version
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        await self._refresh(failing=False)
        self._task = asyncio.get_running_loop().create_task(self._run(self._stopping))

    async def stop(self) -> None:
        """Stop polling; a read in progress finishes first (its connection goes back
        to the pool before the storage is closed), so nothing is cancelled mid-read."""
        task, self._task = self._task, None
        if task is not None and self._stopping is not None:
            self._stopping.set()
            await task

    async def _run(self, stopping: asyncio.Event) -> None:
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._interval_s)
            if stopping.is_set():
                return
            failing = await self._refresh(failing=failing)

    async def _refresh(self, *, failing: bool) -> bool:
        """One read; ``True`` while reads fail (logged once per failing streak)."""
        refresh: Callable[[], None] = self._version.refresh
        try:
            await to_thread.run_sync(refresh)
        except Exception as error:  # the storage is down: the cache is off until it is back
            if not failing:
                log_event(
                    _log,
                    logging.WARNING,
                    "catalog version unreadable: public cache off",
                    {"errorType": type(error).__name__},
                )
            return True
        return False

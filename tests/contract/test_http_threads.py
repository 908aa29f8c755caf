"""The per-process thread pool of the HTTP adapter (ADR 0015): a cap, on every event loop;
and the use cases a route runs inline on the event loop instead (ADR 0036, 0043, 0044)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import attrs
import pytest
from litestar import Litestar, Request, Response, post
from litestar.datastructures import State
from litestar.testing import TestClient

from fleetprompt_core import Call, Unavailable
from fleetprompt_core.policies.tokens import API_TOKEN_PREFIX, generate_token
from fleetprompt_core.services.runtime import Outcome
from fleetprompt_http.app import create_app, fleetprompt_of, open_services
from fleetprompt_http.handling import (
    INLINE_BODY_MAX,
    ThreadGate,
    install_services,
    run_use_case,
    write,
)
from fleetprompt_http.settings import Settings


def _busy(gate: ThreadGate, jobs: int) -> int:
    """Run ``jobs`` blocking calls through ``gate`` at once; the most that ran together."""
    lock = threading.Lock()
    running = peak = 0

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    async def main() -> None:
        await asyncio.gather(*(gate.run(job) for _ in range(jobs)))

    asyncio.run(main())
    return peak


def test_thread_gate_runs_at_most_its_size_at_once() -> None:
    """Eight concurrent use cases through a gate of 2 never run more than 2 together."""
    assert _busy(ThreadGate(2), 8) == 2
    assert _busy(ThreadGate(1), 4) == 1


def test_thread_gate_serves_two_event_loops_at_once() -> None:
    """One app driven from two loops (test client and server) gets a working cap on each."""
    gate = ThreadGate(2)
    peaks: list[int] = []
    threads = [threading.Thread(target=lambda: peaks.append(_busy(gate, 6))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert peaks == [2, 2]


@pytest.mark.parametrize(("allowed", "on_loop"), [(True, True), (False, False)])
def test_an_inline_use_case_runs_on_the_event_loop_only_where_allowed(
    allowed: bool, on_loop: bool
) -> None:
    """ADR 0036: a use case a route marks ``inline`` runs on the loop's own thread when the
    process allows it (``Services.inline``: SQLite, memory), else in a worker thread; an
    unmarked one always goes to a thread."""
    storage, services = open_services(Settings(database_url="memory://"))
    services = attrs.evolve(services, inline=allowed)

    async def main() -> tuple[int, int, int]:
        marked = await run_use_case(services, threading.get_ident, inline=True)
        unmarked = await run_use_case(services, threading.get_ident)
        return threading.get_ident(), marked, unmarked

    try:
        loop_thread, marked, unmarked = asyncio.run(main())
    finally:
        storage.close()
    assert (marked == loop_thread) is on_loop
    assert unmarked != loop_thread


def test_an_inline_use_case_raises_like_a_threaded_one() -> None:
    """The core's error reaches the handler the same way on both paths (the envelope)."""
    storage, services = open_services(Settings(database_url="memory://"))

    def refuse() -> None:
        raise Unavailable("stalled")

    async def main(inline: bool) -> None:
        await run_use_case(attrs.evolve(services, inline=True), refuse, inline=inline)

    try:
        for inline in (True, False):
            with pytest.raises(Unavailable):
                asyncio.run(main(inline))
    finally:
        storage.close()


def test_nothing_runs_inline_when_the_rate_limiter_answers_over_the_network() -> None:
    """ADR 0043: a limiter that is not in-process (Redis) is a network call on the loop."""
    storage, services = open_services(Settings(database_url="memory://"))
    services = attrs.evolve(services, inline=True, inline_limits=False)

    async def main() -> tuple[int, int]:
        return threading.get_ident(), await run_use_case(services, threading.get_ident, inline=True)

    try:
        loop_thread, ran_in = asyncio.run(main())
    finally:
        storage.close()
    assert ran_in != loop_thread


def test_only_a_credential_resolved_in_process_lets_a_use_case_run_inline() -> None:
    """No header or an API token: the database only. Another credential, when another
    resolver is configured (OIDC, which may fetch its keys), goes to a thread."""
    storage, services = open_services(Settings(database_url="memory://"))
    try:
        alone = services.authenticator
        with_oidc = attrs.evolve(alone, others=(alone.api_tokens,))
        api_token = f"Bearer {generate_token(API_TOKEN_PREFIX)}"
        assert alone.resolves_in_process(None)
        assert alone.resolves_in_process("Bearer eyJhbGciOi.x.y")
        assert with_oidc.resolves_in_process(None)
        assert with_oidc.resolves_in_process(api_token)
        assert not with_oidc.resolves_in_process("Bearer eyJhbGciOi.x.y")
    finally:
        storage.close()


@pytest.mark.parametrize(("size", "on_loop"), [(100, True), (INLINE_BODY_MAX + 1, False)])
def test_an_inline_write_runs_on_the_loop_only_with_a_small_body(size: int, on_loop: bool) -> None:
    """ADR 0043: a write a route marks ``inline`` runs on the event loop when its body is at
    most ``INLINE_BODY_MAX`` bytes; a larger body (its markdown may take milliseconds to
    render) in a worker thread."""
    storage, services = open_services(Settings(database_url="memory://"))
    services = attrs.evolve(services, inline=True)
    state: dict[str, object] = {}
    install_services(state, services)
    threads: dict[str, int] = {}

    def use_case(_call: Call, body: object) -> Outcome[int]:
        threads["use case"] = threading.get_ident()
        return Outcome(len(str(body)))

    @post("/write", status_code=200)
    async def handler(request: Request[Any, Any, Any]) -> Response[int]:
        threads["loop"] = threading.get_ident()
        return await write(request, use_case, lambda n: n, inline=True)

    app = Litestar(route_handlers=[handler], state=State(state))
    body = json.dumps({"text": "x" * (size - 12)}).encode("utf-8")
    assert len(body) == size
    try:
        with TestClient(app) as client:
            response = client.post(
                "/write", content=body, headers={"Content-Type": "application/json"}
            )
    finally:
        storage.close()
    assert response.status_code == 200
    assert (threads["use case"] == threads["loop"]) is on_loop


@pytest.mark.parametrize(
    ("path", "on_loop"),
    [
        ("/v1/public/listings/search", True),
        ("/v1/public/listings/search?sort=name&limit=50", True),
        ("/v1/public/listings/lst_unknown", True),
        ("/v1/public/listings/search?q=agent", False),
        ("/v1/public/listings/search?tags=support", False),
        ("/v1/public/listings/search?limit=51", False),
        ("/v1/public/listings/search?sort=installs", False),
    ],
)
def test_a_short_public_read_runs_on_the_loop_and_any_other_in_a_thread(
    path: str, on_loop: bool
) -> None:
    """ADR 0044: with the response cache off, a listing's detail (one read by key) and a
    browse of at most one default page (``catalog.short_search``) run on the event loop
    where the process allows it; a search with words, labels or filters, a longer page or
    the installs order in a worker thread. The answer is the same either way."""
    app = create_app(Settings(database_url="memory://", cache_mb=0))
    catalog = fleetprompt_of(app).catalog
    ran: list[bool] = []
    for name in ("search", "listing"):
        real = getattr(catalog, name)

        def watched(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                ran.append(False)
            else:
                ran.append(True)
            return _real(*args, **kwargs)

        object.__setattr__(catalog, name, watched)
    with TestClient(app) as client:
        response = client.get(path)
    assert response.status_code in (200, 404), response.text
    assert ran == [on_loop]

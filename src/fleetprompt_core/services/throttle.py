"""Rate limits (§9) applied by the use cases.

The subject is the signed-in user when there is one, the client address for
anonymous calls, and the source for target-system calls. Counters live
behind the :class:`~fleetprompt_core.ports.RateLimiter` port (in-process or
Redis). Without a limiter nothing is limited (embedded use).
"""

from __future__ import annotations

from fleetprompt_core.domain.errors import RateLimited
from fleetprompt_core.policies.rate_limits import Action
from fleetprompt_core.services.runtime import Call, Runtime

__all__ = ["Action", "check", "check_call", "subject_of"]


def subject_of(call: Call) -> str:
    if call.principal is not None:
        return "user:" + call.principal.external_id
    return "client:" + (call.client or "unknown")


def check(rt: Runtime, action: Action, subject: str) -> None:
    """Count one ``action`` by ``subject``; ``RATE_LIMITED`` once over the rule."""
    if rt.limiter is None:
        return
    rule = rt.rate_limits.rule(action)
    decision = rt.limiter.hit(
        f"{action.value}|{subject}", rule.limit, rule.window_ms, rt.clock.now_ms()
    )
    if not decision.allowed:
        raise RateLimited(retry_after_s=-(-decision.retry_after_ms // 1000))


def check_call(rt: Runtime, action: Action, call: Call) -> None:
    check(rt, action, subject_of(call))

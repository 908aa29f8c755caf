"""Rate limits (§9) applied by the use cases.

The subject is the signed-in user when there is one, the client address for
anonymous calls, and the source for target-system calls. Counters live
behind the :class:`~fleetprompt_core.ports.RateLimiter` port (in-process or
Redis). Without a limiter nothing is limited (embedded use).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fleetprompt_core.base.errors import RateLimited, Unauthenticated
from fleetprompt_core.policies.rate_limits import Action
from fleetprompt_core.services.runtime import Call, Runtime

__all__ = ["TOO_MANY_FAILURES", "Action", "authenticating", "check", "check_call", "subject_of"]

T = TypeVar("T")

#: The log-only reason of a refusal for too many failed authentications.
TOO_MANY_FAILURES = "too_many_failures"


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


def authenticating(rt: Runtime, subject: str, authenticate: Callable[[], T]) -> T:
    """Run ``authenticate`` unless ``subject`` failed too often; count its failures.

    ``subject`` is the client address for bearer credentials and the claimed
    source for redemption. Once the ``AUTH_FAILURE`` rule's limit of failures
    (``Unauthenticated``) is reached within its window, every attempt —
    a correct one too, or guessing would still pay — is ``RATE_LIMITED``
    without being checked, until the oldest failure leaves the window.
    """
    if rt.limiter is None:
        return authenticate()
    rule = rt.rate_limits.rule(Action.AUTH_FAILURE)
    bucket = f"{Action.AUTH_FAILURE.value}|{subject}"
    decision = rt.limiter.peek(bucket, rule.limit, rule.window_ms, rt.clock.now_ms())
    if not decision.allowed:
        raise RateLimited(-(-decision.retry_after_ms // 1000), reason=TOO_MANY_FAILURES)
    try:
        return authenticate()
    except Unauthenticated:
        rt.limiter.hit(bucket, rule.limit, rule.window_ms, rt.clock.now_ms())
        raise

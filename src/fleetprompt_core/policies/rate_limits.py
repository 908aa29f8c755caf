"""Rate-limit rules (§9): which actions are limited and how much (configuration)."""

from __future__ import annotations

import enum

import attrs

__all__ = ["Action", "RateLimits", "RateRule"]


class Action(enum.StrEnum):
    SEARCH = "search"
    DETAIL = "detail"
    PUBLISHER_WRITE = "publisher_write"
    INTENT_CREATE = "intent_create"
    TOKEN_ISSUE = "token_issue"  # noqa: S105 - an action name
    REDEEM = "redeem"
    LOGIN = "login"
    #: Failed authentications (bad bearer credential, badly signed redeem), per
    #: client address or redeem source; past the limit even a good one waits.
    AUTH_FAILURE = "auth_failure"


@attrs.frozen
class RateRule:
    limit: int = attrs.field(validator=attrs.validators.ge(1))
    window_ms: int = attrs.field(default=60_000, validator=attrs.validators.ge(1))


def _defaults() -> dict[Action, RateRule]:
    return {
        Action.SEARCH: RateRule(120),
        Action.DETAIL: RateRule(240),
        Action.PUBLISHER_WRITE: RateRule(60),
        Action.INTENT_CREATE: RateRule(30),
        Action.TOKEN_ISSUE: RateRule(30),
        Action.REDEEM: RateRule(300),
        Action.LOGIN: RateRule(10),
        Action.AUTH_FAILURE: RateRule(60),
    }


@attrs.frozen
class RateLimits:
    """Per-action rules (requests per window)."""

    rules: dict[Action, RateRule] = attrs.field(factory=_defaults)

    def rule(self, action: Action) -> RateRule:
        return self.rules.get(action) or _defaults()[action]

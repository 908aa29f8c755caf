"""Domain errors: each carries one of the contract's error codes (§2, §5).

A domain error is the only exception a use case lets escape. Messages are safe
to show to a client: they never hold a secret, a token, SQL or a stack trace.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

__all__ = [
    "Conflict",
    "DomainError",
    "DuplicateError",
    "ErrorCode",
    "FieldError",
    "Internal",
    "KeyHeld",
    "NotFound",
    "RateLimited",
    "TooLarge",
    "Unauthenticated",
    "Unauthorized",
    "Unavailable",
    "Unsupported",
    "ValidationFailed",
]


class ErrorCode(enum.StrEnum):
    """The contract's error codes, exact strings."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    UNAUTHORIZED = "UNAUTHORIZED"
    NOT_FOUND = "NOT_FOUND"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    CONFLICT = "CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    TOO_LARGE = "TOO_LARGE"
    UNSUPPORTED = "UNSUPPORTED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"


@attrs.frozen
class FieldError:
    """One failing input field: a wire path such as ``links.docsUrl`` or ``tags[3]``."""

    field_name: str
    message: str


class DomainError(Exception):
    """Base of every error a use case raises on purpose.

    ``reason`` is a short code for the server's own log (why a redemption was
    refused, for example); it never reaches the client. ``retry_after_s``, when
    set, becomes the ``Retry-After`` header of the answer.
    """

    code: ErrorCode = ErrorCode.INTERNAL
    default_message: str = "The request could not be completed."

    def __init__(
        self,
        message: str | None = None,
        *,
        hint: str | None = None,
        reason: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.hint = hint
        self.reason = reason
        self.retry_after_s = retry_after_s
        super().__init__(self.message)

    @property
    def fields(self) -> tuple[FieldError, ...]:
        """The fields that failed validation; empty for every error but ``VALIDATION_FAILED``."""
        return ()


class Unauthenticated(DomainError):
    """``UNAUTHENTICATED`` (401): no valid credentials (for redemption: any failed signature
    check).
    """

    code = ErrorCode.UNAUTHENTICATED
    default_message = "Authentication is required."


class Unauthorized(DomainError):
    """``UNAUTHORIZED`` (403): the caller is known but lacks the role this needs."""

    code = ErrorCode.UNAUTHORIZED
    default_message = "You are not allowed to do this."


class NotFound(DomainError):
    """``NOT_FOUND`` (404): it does not exist, or the caller may not see it (the two are never told
    apart).
    """

    code = ErrorCode.NOT_FOUND
    default_message = "Not found."


class ValidationFailed(DomainError):
    """``VALIDATION_FAILED`` (400): bad input. ``fields`` lists every failing field at once, by its
    wire path.
    """

    code = ErrorCode.VALIDATION_FAILED
    default_message = "The request is invalid."

    def __init__(
        self,
        fields: Iterable[FieldError],
        message: str | None = None,
        *,
        hint: str | None = None,
    ) -> None:
        self._fields = tuple(fields)
        if not self._fields:
            raise ValueError("ValidationFailed needs at least one field error")
        super().__init__(message, hint=hint)

    @property
    def fields(self) -> tuple[FieldError, ...]:
        """Every failing field (at least one), in the order they were found."""
        return self._fields

    @classmethod
    def single(cls, field_name: str, message: str) -> ValidationFailed:
        """The error for one failing field."""
        return cls([FieldError(field_name, message)])


class Conflict(DomainError):
    """``CONFLICT`` (409): the request does not fit the resource's current state (a duplicate
    version, an idempotency key reused or still running, an illegal transition).
    """

    code = ErrorCode.CONFLICT
    default_message = "The request conflicts with the current state of the resource."


class DuplicateError(Conflict):
    """Raised by an adapter when a write would break a uniqueness constraint.

    ``constraint`` names the rule (see ``fleetprompt_core.ports.UniqueConstraint``)
    so that a use case can tell a lost race it can recover from.
    """

    def __init__(self, constraint: str) -> None:
        self.constraint = constraint
        super().__init__()


class KeyHeld(Conflict):
    """Raised by an adapter when a unit of work asked to hold an idempotency key cannot
    enter, because another open unit of work holds that key (see
    ``fleetprompt_core.ports.UnitOfWork.hold_key``): the idempotency helper answers the
    contract's "in progress" ``CONFLICT`` for it.
    """


class RateLimited(DomainError):
    """``RATE_LIMITED`` (429): too many requests; ``retry_after_s`` says when to try again."""

    code = ErrorCode.RATE_LIMITED
    default_message = "Too many requests."

    retry_after_s: int

    def __init__(
        self, retry_after_s: int, message: str | None = None, *, reason: str | None = None
    ) -> None:
        seconds = max(1, retry_after_s)
        super().__init__(
            message, hint=f"retry after {seconds} s", reason=reason, retry_after_s=seconds
        )


class TooLarge(DomainError):
    """``TOO_LARGE`` (413): the request body is over its size limit."""

    code = ErrorCode.TOO_LARGE
    default_message = "The request body is too large."


class Unsupported(DomainError):
    """``UNSUPPORTED`` (415 or 501): a media type or a feature this deployment does not offer."""

    code = ErrorCode.UNSUPPORTED
    default_message = "This feature is not offered."


class Internal(DomainError):
    """``INTERNAL`` (500): something failed on the server; the message never names the exception."""

    code = ErrorCode.INTERNAL
    default_message = "An internal error occurred."


class Unavailable(DomainError):
    """Storage or a shared service (the database, Redis) is down, stalled or out of
    connections, or did not answer within its bound: nothing was done, and the same
    request may be retried after ``retry_after_s`` (contract §5, §14)."""

    code = ErrorCode.UNAVAILABLE
    default_message = "The service is temporarily unavailable."

    retry_after_s: int

    def __init__(
        self, message: str | None = None, *, retry_after_s: int = 1, reason: str | None = None
    ) -> None:
        seconds = max(1, retry_after_s)
        super().__init__(
            message, hint=f"retry after {seconds} s", reason=reason, retry_after_s=seconds
        )

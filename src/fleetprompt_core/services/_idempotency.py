"""The one idempotency helper every retryable write goes through (§6, ADR 0037).

``run`` claims the key, runs the operation and stores its response in **one**
transaction (ADR 0037; ADR 0007 claimed in a transaction of its own first):
the claim row is inserted first, guarded by the key's unique constraint, and
completed with the response just before the commit. So that:

* same key + same request ⇒ the stored response, marked replayed;
* same key + different request ⇒ ``CONFLICT``;
* same key while the first request runs ⇒ ``CONFLICT`` (in progress) at once,
  never a second execution: the unit of work holds the key for its whole life
  (``UnitOfWork.hold_key``), so the duplicate's cannot enter. PostgreSQL holds
  it with a transaction advisory lock (every process sees it); SQLite and the
  memory store in a set of this process's keys, taken before the writer lock
  (a duplicate sent to *another* process on one SQLite file is not seen: it
  waits for the write lock, then replays; see ADR 0037);
* a request that fails (validation, authorization, state) stores nothing: its
  claim rolls back with it;
* a claim left without a response (by the previous design, or an unanswered
  record however it came) is ``CONFLICT`` (in progress) until its lease has
  passed, then taken over.

Keys are scoped by caller and by :class:`Operation`: a name of what the request
does (``"listing.create"``), not of the HTTP route that carries it, so the core
knows nothing of URLs and a route may move without touching stored records.
Records stored before this naming (by route template, such as
``"POST /v1/install/intents"``) are renamed by the SQL adapter's migration 0003;
their request hashes, computed over the old name, are kept as
``legacy:<old name>:<hash>`` and still compare equal for the same request (ADR 0020).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

import attrs
from cattrs.preconf.json import make_converter

from fleetprompt_core.base import limits
from fleetprompt_core.base.errors import Conflict, DuplicateError, KeyHeld, ValidationFailed
from fleetprompt_core.domain.model import IdempotencyRecord
from fleetprompt_core.ports import UniqueConstraint, UnitOfWork
from fleetprompt_core.services.runtime import Outcome, Runtime

__all__ = [
    "HEADER",
    "LEGACY_HASH_PREFIX",
    "Operation",
    "ResultCodec",
    "check_key",
    "request_hash",
    "run",
]

T = TypeVar("T")

#: The wire name of the key, used as the field name in validation errors.
HEADER = "Idempotency-Key"


class Operation(enum.StrEnum):
    """The retryable writes (§6), each its own idempotency scope.

    The values are stored with every record: renaming one is a data migration.
    """

    LISTING_CREATE = "listing.create"
    LISTING_UPDATE = "listing.update"
    LISTING_STATUS = "listing.status"
    RELEASE_PUBLISH = "release.publish"
    RELEASE_REVOKE = "release.revoke"
    PROFILE_UPDATE = "profile.update"
    INTENT_CREATE = "intent.create"
    TOKEN_ISSUE = "intent.token"  # noqa: S105 - an operation name
    INTENT_CANCEL = "intent.cancel"
    LISTING_SUSPEND = "admin.listing.suspend"
    LISTING_UNSUSPEND = "admin.listing.unsuspend"
    ROLES_CHANGE = "admin.user.roles"
    VERIFICATION_SET = "admin.publisher.verification"
    #: Internal redemption, scoped by the target-system source (ADR 0021).
    REDEEM = "install.redeem"


#: How a request hash stored before operations were named starts (ADR 0020).
LEGACY_HASH_PREFIX = "legacy:"


#: JSON-safe converter: sets become sorted lists, enums their values.
converter = make_converter()


@attrs.frozen
class ResultCodec(Generic[T]):
    """How a use case's result is stored for replay and read back."""

    type: type[T]
    strip: Callable[[T], T] = attrs.field(default=lambda value: value)

    def encode(self, value: T) -> str:
        return json.dumps(
            converter.unstructure(self.strip(value)), sort_keys=True, separators=(",", ":")
        )

    def decode(self, text: str) -> T:
        return converter.structure(json.loads(text), self.type)


def check_key(key: str | None, *, required: bool) -> str | None:
    if key is None:
        if required:
            raise ValidationFailed.single(HEADER, "is required for this request")
        return None
    if not 1 <= len(key) <= limits.IDEMPOTENCY_KEY_MAX or not all(" " <= c <= "~" for c in key):
        raise ValidationFailed.single(
            HEADER, f"must be 1 to {limits.IDEMPOTENCY_KEY_MAX} printable ASCII characters"
        )
    return key


def _plain(value: object) -> object:
    """JSON for the read-only mappings and sequences an embedder may pass."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple):
        return list(value)
    raise TypeError(type(value).__name__)


def request_hash(endpoint: str, target: Mapping[str, str], body: object) -> str:
    """Canonical hash of what identifies a request: endpoint, path ids and body."""
    try:
        canonical = json.dumps(
            {"endpoint": endpoint, "target": dict(target), "body": body},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
            default=_plain,
        )
    except (TypeError, ValueError, RecursionError):
        raise ValidationFailed.single("body", "must be a JSON value") from None
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


#: ``Retry-After`` of the "still in progress" ``CONFLICT``: the first request
#: usually ends within milliseconds; a client that waits this long and retries
#: gets its replay.
IN_PROGRESS_RETRY_AFTER_S = 1


def _in_progress() -> Conflict:
    return Conflict(
        "A request with this idempotency key is still in progress.",
        hint="in progress",
        retry_after_s=IN_PROGRESS_RETRY_AFTER_S,
    )


def _same_request(stored: str, digest: str, target: Mapping[str, str], body: object) -> bool:
    """Whether a stored request hash is the hash of this request.

    A legacy hash (``legacy:<old scope>:<hash>``) was computed over the route
    template the scope was named by then; it is recomputed with that name.
    """
    if stored.startswith(LEGACY_HASH_PREFIX):
        old_scope, _, old_hash = stored[len(LEGACY_HASH_PREFIX) :].rpartition(":")
        digest = request_hash(old_scope, target, body)
        stored = old_hash
    return hmac.compare_digest(stored, digest)


def _answer(
    existing: IdempotencyRecord,
    digest: str,
    target: Mapping[str, str],
    body: object,
) -> str:
    """The stored response to replay for ``existing``, or the ``CONFLICT`` it means."""
    if not _same_request(existing.request_hash, digest, target, body):
        raise Conflict(
            "This idempotency key was used for a different request.",
            hint="use a new Idempotency-Key for a different request",
        )
    if existing.response_json is None:
        raise _in_progress()
    return existing.response_json


def _claimed(
    uow: UnitOfWork, claim: IdempotencyRecord, digest: str, target: Mapping[str, str], body: object
) -> str | bool:
    """Claim the key inside ``uow``: ``True`` when the claim row is in (the operation may
    run), ``False`` when a race was lost (start again), or the stored response to replay.

    The claim row is uncommitted until the operation's commit: no other unit of work
    ever sees a claim without its response, except one left by an earlier design or a
    transaction the database lost (the lease frees those).
    """
    # A fresh key (the common case) is one statement: the insert, whose unique key
    # tells a used one.
    try:
        uow.idempotency.add(claim)
    except DuplicateError as error:
        if error.constraint != UniqueConstraint.IDEMPOTENCY_KEY:
            raise
    else:
        return True
    existing = uow.idempotency.get(claim.scope_user_id, claim.endpoint, claim.key)
    if existing is None:
        return False  # released or purged since the insert: claim again
    now = claim.created_at_ms
    if now >= existing.expires_at_ms or (not existing.completed and now >= existing.lease_until_ms):
        # Retention passed, or an unanswered claim's lease did: take the key over.
        return uow.idempotency.replace(claim, existing.claim_id)
    return _answer(existing, digest, target, body)


def run(
    rt: Runtime,
    *,
    scope_user_id: str,
    scope: Operation,
    key: str | None,
    required: bool,
    target: Mapping[str, str],
    body: object,
    codec: ResultCodec[T],
    operation: Callable[[UnitOfWork], T],
    retention_ms: int = limits.IDEMPOTENCY_RETENTION_MS,
) -> Outcome[T]:
    """Run ``operation`` at most once per ``(user, scope, key)``; see the module doc.

    ``operation`` receives an open unit of work and must not commit it. A
    completed key answers replays for ``retention_ms`` (24 h by default).
    """
    endpoint = scope.value
    checked = check_key(key, required=required)
    if checked is None:
        with rt.uow() as uow:
            value = operation(uow)
            uow.commit()
        return Outcome(value)
    digest = request_hash(endpoint, target, body)
    for _attempt in range(3):
        now = rt.clock.now_ms()
        claim = IdempotencyRecord(
            scope_user_id=scope_user_id,
            endpoint=endpoint,
            key=checked,
            request_hash=digest,
            claim_id=rt.ids.new_id("idm"),
            created_at_ms=now,
            expires_at_ms=now + retention_ms,
            lease_until_ms=now + rt.settings.idempotency_lease_ms,
        )
        uow = rt.uow()
        uow.hold_key(scope_user_id, endpoint, checked)
        try:
            with uow:
                claimed = _claimed(uow, claim, digest, target, body)
                if isinstance(claimed, str):
                    return Outcome(codec.decode(claimed), replayed=True)
                if not claimed:
                    continue
                value = operation(uow)
                done = attrs.evolve(claim, response_json=codec.encode(value))
                if not uow.idempotency.replace(done, claim.claim_id):
                    raise _in_progress()  # pragma: no cover - the claim is this transaction's
                uow.commit()
                return Outcome(value)
        except KeyHeld:  # only entering raises it: the key's first request is running
            raise _in_progress() from None
        except DuplicateError as error:
            if error.constraint != UniqueConstraint.IDEMPOTENCY_KEY:
                raise
            continue  # lost a race to insert: read what the winner stored
    raise _in_progress()

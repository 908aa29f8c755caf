"""The retention job: persist expiries and drop idempotency records past 24 h.

Work happens in bounded batches, each its own transaction; one audit event
per batch that changed something records the counts (actor: system).
"""

from __future__ import annotations

import attrs

from fleetprompt_core.base.enums import InstallTokenStatus
from fleetprompt_core.services import _audit as audit
from fleetprompt_core.services.installs import revoke_issued_tokens
from fleetprompt_core.services.runtime import Call, Runtime

__all__ = ["Retention", "RetentionReport"]


@attrs.frozen
class RetentionReport:
    """What a retention run did: intents and tokens expired, idempotency records dropped."""

    intents_expired: int = 0
    tokens_expired: int = 0
    idempotency_records_dropped: int = 0


class Retention:
    """The retention job: persists expiry of intents and tokens, drops idempotency records past 24
    h; as ``app.retention``.
    """

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def run(self, *, batch_size: int = 500, max_batches: int = 1000) -> RetentionReport:
        """Run batches until there is nothing left to do (or ``max_batches``)."""
        total = RetentionReport()
        for _ in range(max_batches):
            report = self.run_batch(batch_size)
            total = RetentionReport(
                total.intents_expired + report.intents_expired,
                total.tokens_expired + report.tokens_expired,
                total.idempotency_records_dropped + report.idempotency_records_dropped,
            )
            if report == RetentionReport():
                break
        return total

    def run_batch(self, batch_size: int) -> RetentionReport:
        """One batch of at most ``batch_size`` of each kind of work, in one transaction; what it
        did.
        """
        now = self._rt.clock.now_ms()
        with self._rt.uow() as uow:
            intents = 0
            for intent in uow.intents.due_for_expiry(now, batch_size):
                if uow.intents.update(intent.expired(now), intent.status):
                    revoke_issued_tokens(uow, intent.install_intent_id, now)
                    intents += 1
            tokens = 0
            for token in uow.tokens.due_for_expiry(now, batch_size):
                if uow.tokens.update(token.expired(now), InstallTokenStatus.ISSUED):
                    tokens += 1
            dropped = uow.idempotency.delete_expired(now, batch_size)
            report = RetentionReport(intents, tokens, dropped)
            if report != RetentionReport():
                audit.record(
                    self._rt,
                    uow,
                    Call(),
                    "retention.purged",
                    audit.system_actor("retention"),
                    "Retention batch ran.",
                    details={
                        "intentsExpired": intents,
                        "tokensExpired": tokens,
                        "idempotencyRecordsDropped": dropped,
                    },
                )
            uow.commit()
        return report

"""The redemption writes only a token's and an intent's state columns (ADR 0045).

The SQL adapter's redemption compare-and-sets ``SET`` only
``store.TOKEN_STATE_COLUMNS`` and ``store.INTENT_STATE_COLUMNS``: every other
column is written once, when the row is inserted. That holds only while no
state change of the domain model touches another field; these tests walk every
legal transition of both machines and compare the stored rows before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from test_state_machines import T0, make_intent, make_token

from fleetprompt_adapters.sql import mapping as m
from fleetprompt_adapters.sql.store import INTENT_STATE_COLUMNS, TOKEN_STATE_COLUMNS
from fleetprompt_core.base.enums import InstallIntentStatus, InstallTokenStatus
from fleetprompt_core.domain.model import InstallIntent, InstallToken

_LATER = T0 + 1_000
_EXPIRED = T0 + 10**12


def _changed(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    assert before.keys() == after.keys()
    return {name for name in before if before[name] != after[name]}


_TOKEN_MOVES: dict[str, Callable[[InstallToken], InstallToken]] = {
    "redeemed": lambda token: token.redeemed("whs", _LATER),
    "revoked": lambda token: token.revoked(_LATER),
    "expired": lambda token: token.expired(_EXPIRED),
    "observed": lambda token: token.observed(_EXPIRED),
    "redeemed_expired": lambda token: token.observed(_LATER).redeemed("whs", _LATER),
}

_INTENT_MOVES: dict[str, Callable[[InstallIntent], InstallIntent]] = {
    "token_issued": lambda intent: intent.token_issued(_LATER),
    "redeemed": lambda intent: intent.redeemed(_LATER),
    "canceled": lambda intent: intent.canceled(_LATER),
    "expired": lambda intent: intent.expired(_EXPIRED),
    "observed": lambda intent: intent.observed(_EXPIRED),
}


@pytest.mark.parametrize("move", sorted(_TOKEN_MOVES))
def test_a_token_state_change_writes_only_the_state_columns(move: str) -> None:
    token = make_token(InstallTokenStatus.ISSUED)
    moved = _TOKEN_MOVES[move](token)
    changed = _changed(m.token_row(token), m.token_row(moved))
    assert "status" in changed
    assert changed <= set(TOKEN_STATE_COLUMNS)


@pytest.mark.parametrize("status", [InstallIntentStatus.CREATED, InstallIntentStatus.TOKEN_ISSUED])
@pytest.mark.parametrize("move", sorted(_INTENT_MOVES))
def test_an_intent_state_change_writes_only_the_state_columns(
    status: InstallIntentStatus, move: str
) -> None:
    intent = make_intent(status)
    moved = _INTENT_MOVES[move](intent)
    changed = _changed(m.intent_row(intent), m.intent_row(moved))
    assert changed  # token_issued on token_issued still moves updated_at_ms
    assert changed <= set(INTENT_STATE_COLUMNS)


def test_the_state_columns_are_columns_of_their_tables() -> None:
    token_row = m.token_row(make_token(InstallTokenStatus.ISSUED))
    intent_row = m.intent_row(make_intent(InstallIntentStatus.CREATED))
    assert set(TOKEN_STATE_COLUMNS) <= token_row.keys()
    assert set(INTENT_STATE_COLUMNS) <= intent_row.keys()

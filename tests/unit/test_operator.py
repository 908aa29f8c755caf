"""Operator actions check what an operator types (unlike an identity provider's claims)."""

from __future__ import annotations

import pytest

from fleetprompt_core import Role
from fleetprompt_core.base.errors import ValidationFailed
from support import Market


@pytest.mark.parametrize(
    ("external_id", "display_name", "field"),
    [
        ("", None, "externalId"),
        ("x" * 256, None, "externalId"),
        ("bad\x00id", None, "externalId"),
        ("ok", "n" * 81, "displayName"),
        ("ok", "line\nbreak", "displayName"),
    ],
)
def test_ensure_user_refuses_bad_operator_input_and_creates_nobody(
    market: Market, external_id: str, display_name: str | None, field: str
) -> None:
    """An empty/oversized/NUL external id or a bad display name is VALIDATION_FAILED naming it."""
    with pytest.raises(ValidationFailed) as caught:
        market.fp.operator.ensure_user(external_id, display_name=display_name)
    assert [f.field_name for f in caught.value.fields] == [field]
    with market.fp.runtime.reader() as uow:
        assert uow.users.get_by_external_id("ok") is None


def test_ensure_user_keeps_a_valid_display_name_and_grants_roles(market: Market) -> None:
    """Valid input creates the user once with the name and roles asked for."""
    user = market.fp.operator.ensure_user(" ada ", display_name=" Ada ", roles=[Role.ADMIN])
    assert user.display_name == "Ada"
    assert user.roles == frozenset({Role.ADMIN})
    again = market.fp.operator.ensure_user(" ada ")
    assert again.user_id == user.user_id

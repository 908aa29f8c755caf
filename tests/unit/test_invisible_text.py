"""Invisible and reordering text in single-line fields (issue 14 item 4; U-VAL-01; ADR 0022).

Bidi embeddings and overrides (U+202A..U+202E), bidi isolates (U+2066..U+2069)
and Unicode tag characters (U+E0000 block) can make one listing display as
another. Every single-line field refuses them with ``VALIDATION_FAILED`` naming
the field; multi-line markdown keeps them (right-to-left prose needs them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetprompt_core.base.enums import AssetKind
from fleetprompt_core.base.errors import ValidationFailed
from fleetprompt_core.commands.parsers import (
    parse_new_intent,
    parse_new_listing,
    parse_new_release,
    parse_profile_update,
)
from fleetprompt_core.policies.validation import has_reordering
from support import IMAGE_HOST, Market, listing_payload, new_key, release_payload

HOSTS = frozenset({IMAGE_HOST})

#: Every refused code point, by range (the contract's list, restated independently).
REORDERING = (
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + [chr(c) for c in range(0xE0000, 0xE0080)]
)
#: Neighbours that stay allowed: LRM/RLM marks, ZWJ (emoji, Indic scripts), Arabic letters.
ALLOWED = ["\u200e", "\u200f", "\u200d", "\u0627", "\u05d0", "\u2065", "\u206a", "\U000e0080"]


def rejected_fields(fn: Callable[[], object]) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        fn()
    return [field.field_name for field in info.value.fields]


def _listing(**overrides: Any) -> Any:
    return parse_new_listing(listing_payload(**overrides), HOSTS)


#: (wire field path, parse(value) for a value placed in that field)
SINGLE_LINE_FIELDS: list[tuple[str, Callable[[str], object]]] = [
    ("name", lambda v: _listing(name=f"Support{v} Agent")),
    ("summary", lambda v: _listing(summary=f"Routes{v} tickets")),
    ("tags[1]", lambda v: _listing(tags=["ok", f"sup{v}port"])),
    ("categories[0]", lambda v: _listing(categories=[f"ops{v}"])),
    (
        "images[0].alt",
        lambda v: _listing(images=[{"url": f"https://{IMAGE_HOST}/a.png", "alt": f"a{v}"}]),
    ),
    ("version", lambda v: parse_new_release(release_payload(f"1.0{v}"), AssetKind.WHS_AGENT)),
    (
        "refs.whsAgentId",
        lambda v: parse_new_release(
            release_payload(refs={"whsAgentId": f"agent{v}"}), AssetKind.WHS_AGENT
        ),
    ),
    (
        "compat.minWHSVersion",
        lambda v: parse_new_release(
            release_payload(compat={"minWHSVersion": f"2{v}"}), AssetKind.WHS_AGENT
        ),
    ),
    ("displayName", lambda v: parse_profile_update({"displayName": f"Acme{v}", "bioMarkdown": ""})),
    (
        "targetContext.roomId",
        lambda v: parse_new_intent(
            {"listingId": "lst_x", "targetSystem": "whs", "targetContext": {"roomId": f"r{v}"}}
        ),
    ),
]


@pytest.mark.parametrize(
    ("field", "parse"), SINGLE_LINE_FIELDS, ids=[f for f, _ in SINGLE_LINE_FIELDS]
)
@pytest.mark.parametrize(
    "char",
    ["\u202e", "\u202a", "\u2066", "\u2069", "\U000e0041", "\U000e007f"],
    ids=["RLO", "LRE", "LRI", "PDI", "TAG-A", "CANCEL-TAG"],
)
def test_u_val_01_single_line_fields_refuse_bidi_and_tag_characters(
    field: str, parse: Callable[[str], object], char: str
) -> None:
    """A bidi override/isolate or a tag character fails with VALIDATION_FAILED on that field."""
    with pytest.raises(ValidationFailed) as info:
        parse(char)
    assert [f.field_name for f in info.value.fields] == [field]
    assert "bidirectional" in info.value.fields[0].message


def test_u_val_01_listing_patch_refuses_bidi_in_name_and_changes_nothing(market: Market) -> None:
    """A PATCH of the name with a right-to-left override fails on ``name``; the name stays."""
    pub = market.publisher()
    view = market.draft(pub)
    listing_id = view.listing.listing_id
    with pytest.raises(ValidationFailed) as info:
        market.fp.publishing.update_listing(pub, listing_id, {"name": "evil\u202egnp.exe"})
    assert [f.field_name for f in info.value.fields] == ["name"]
    assert market.store.listings[listing_id] == view.listing


def test_u_val_01_every_reordering_code_point_is_refused_and_neighbours_are_not() -> None:
    """The refused set is exactly U+202A..202E, U+2066..2069 and U+E0000..E007F."""
    assert all(has_reordering(f"a{c}b") for c in REORDERING)
    assert not any(has_reordering(f"a{c}b") for c in ALLOWED)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_u_val_01_has_reordering_agrees_with_the_code_point_ranges(text: str) -> None:
    """For any text, the check is true exactly when one refused code point occurs."""
    expected = any(
        0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 or 0xE0000 <= ord(c) <= 0xE007F
        for c in text
    )
    assert has_reordering(text) is expected


def test_u_val_01_markdown_keeps_bidi_characters() -> None:
    """Multi-line markdown (description) may carry bidi controls: RTL prose needs them."""
    parsed = _listing(description={"format": "markdown", "markdown": "\u2067مرحبا\u2069 hello"})
    assert "\u2067" in parsed.content.description


def test_u_val_01_use_case_refuses_bidi_name_and_stores_nothing(market: Market) -> None:
    """create_listing with an RLO in the name fails on ``name``; nothing is stored or audited."""
    pub = market.publisher()
    audit_before = len(market.store.audit)
    with pytest.raises(ValidationFailed) as info:
        market.fp.publishing.create_listing(
            pub, listing_payload(name="Triage \u202eAgent"), idempotency_key=new_key()
        )
    assert [f.field_name for f in info.value.fields] == ["name"]
    assert market.store.listings == {}
    assert len(market.store.audit) == audit_before

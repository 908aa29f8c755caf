"""``fleetprompt demo``: a small marketplace to try the API against, made idempotently.

Two publishers, a buyer and an admin with fixed external ids (``demo-…``);
one published listing of each asset kind (two agents), and on the first one a
second release that is revoked. Running it again finds what exists and makes
only what is missing, so a second run changes nothing but prints fresh tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from fleetprompt_core import Call, FleetPrompt, ListingStatus, ReleaseStatus, Role

__all__ = ["DEMO_USERS", "fill_demo"]

#: external id → (display name, roles)
DEMO_USERS: Mapping[str, tuple[str, tuple[Role, ...]]] = {
    "demo-acme": ("Acme Agents", (Role.PUBLISHER,)),
    "demo-flows": ("Flowworks", (Role.PUBLISHER,)),
    "demo-buyer": ("Bea Buyer", ()),
    "demo-admin": ("Ada Admin", (Role.ADMIN,)),
}

_BIOS = {"demo-acme": "We build **support** agents.", "demo-flows": "Workflows."}

#: (publisher, asset kind, name, summary, tags, release refs)
_CATALOGUE: tuple[tuple[str, str, str, str, list[str], dict[str, str]], ...] = (
    (
        "demo-acme",
        "whs_agent",
        "Support Triage Agent",
        "Routes support tickets to the right queue.",
        ["support", "triage"],
        {"whsAgentId": "agent-triage-1", "whsDeploymentId": "dep-1"},
    ),
    (
        "demo-acme",
        "whs_agent",
        "Meeting Notes Agent",
        "Summarises meetings and files action items.",
        ["productivity", "meetings"],
        {"whsAgentId": "agent-notes-7"},
    ),
    (
        "demo-flows",
        "agentromatic_workflow",
        "Invoice Approval Flow",
        "Routes invoices for approval with an audit trail.",
        ["finance", "approvals"],
        {"agentromaticWorkflowId": "wf-invoice-42"},
    ),
    (
        "demo-flows",
        "spec_asset",
        "Onboarding Checklist Spec",
        "A spec for employee onboarding agents.",
        ["hr", "onboarding"],
        {"specAssetId": "spec-onboarding-3"},
    ),
)


def _key() -> str:
    return str(uuid.uuid4())


def _ensure_listing(
    app: FleetPrompt,
    call: Call,
    kind: str,
    name: str,
    summary: str,
    tags: list[str],
    refs: dict[str, str],
    *,
    revoked_extra: bool,
) -> tuple[str, str]:
    """The listing named ``name`` of the caller, published with release 1.0.0 (and a
    revoked 1.0.1 when ``revoked_extra``): its id and the 1.0.0 release id."""
    owned = {
        view.listing.name: view.listing
        for view in app.publishing.list_listings(call, {"limit": "100"}).items
    }
    listing = owned.get(name)
    if listing is None:
        listing = app.publishing.create_listing(
            call,
            {
                "assetKind": kind,
                "name": name,
                "summary": summary,
                "description": {"markdown": f"# {name}\n\n{summary}"},
                "tags": tags,
                "categories": ["demo"],
                "links": {"docsUrl": "https://docs.example.com/" + tags[0]},
            },
            idempotency_key=_key(),
        ).value.listing
    listing_id = listing.listing_id
    releases = {r.version: r for r in app.publishing.list_releases(call, listing_id).items}
    release = {"refs": refs, "notes": {"markdown": "Initial release."}}
    first = (
        releases.get("1.0.0")
        or app.publishing.publish_release(
            call, listing_id, {"version": "1.0.0", **release}, idempotency_key=_key()
        ).value
    )
    if listing.status is not ListingStatus.PUBLISHED:
        app.publishing.change_status(
            call, listing_id, {"status": "published"}, idempotency_key=_key()
        )
    if revoked_extra:
        bad = (
            releases.get("1.0.1")
            or app.publishing.publish_release(
                call, listing_id, {"version": "1.0.1", **release}, idempotency_key=_key()
            ).value
        )
        if bad.status is not ReleaseStatus.REVOKED:
            app.publishing.revoke_release(
                call, bad.release_id, {"reason": "Broke ticket routing."}, idempotency_key=_key()
            )
    return listing_id, first.release_id


def fill_demo(app: FleetPrompt) -> list[str]:
    """Make the demo marketplace (what is missing of it); shell lines to try it with."""
    for external_id, (display_name, roles) in DEMO_USERS.items():
        app.operator.ensure_user(external_id, display_name=display_name, roles=roles)
    for external_id, bio in _BIOS.items():
        app.profiles.put(
            Call.as_user(external_id),
            {"displayName": DEMO_USERS[external_id][0], "bioMarkdown": bio},
        )
    first_listing = first_release = ""
    for publisher, kind, name, summary, tags, refs in _CATALOGUE:
        listing_id, release_id = _ensure_listing(
            app,
            Call.as_user(publisher),
            kind,
            name,
            summary,
            tags,
            refs,
            revoked_extra=not first_listing,
        )
        if not first_listing:
            first_listing, first_release = listing_id, release_id
    issued = {
        who: app.credentials.issue_api_token(who, name="demo").api_token
        for who in ("demo-acme", "demo-buyer", "demo-admin")
    }
    return [
        f"# demo marketplace: {len(_CATALOGUE)} published listings by demo-acme and demo-flows",
        "# fresh API tokens of demo-acme (publisher), demo-buyer and demo-admin (admin):",
        f"export FP_PUBLISHER_TOKEN={issued['demo-acme']}",
        f"export FP_BUYER_TOKEN={issued['demo-buyer']}",
        f"export FP_ADMIN_TOKEN={issued['demo-admin']}",
        f"# the {_CATALOGUE[0][2]} listing and its release 1.0.0 (its 1.0.1 is revoked):",
        f"export FP_LISTING_ID={first_listing}",
        f"export FP_RELEASE_ID={first_release}",
    ]

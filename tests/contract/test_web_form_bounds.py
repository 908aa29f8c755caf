"""The web pages' form bounds are the core's: every ``maxlength`` a page renders is
the limit the use case behind that form enforces, named from the core, never a
number written in a template (no browser needed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

import fleetprompt_http
from fleetprompt_core import Call
from fleetprompt_core.base import limits
from fleetprompt_core.base.enums import Role
from fleetprompt_core.policies import passwords
from fleetprompt_http.app import create_app, fleetprompt_of
from fleetprompt_http.settings import Settings, WebSettings

PASSWORD = "a password for the form bound tests"
HTML = {"accept": "text/html"}
_TEMPLATES = Path(fleetprompt_http.__file__).parent / "web" / "templates"
#: The refs a whs_agent listing takes (the release form shows those of its kind).
_REFS = ("whsAgentId", "whsDeploymentId")
_COMPAT = ("minWHSVersion", "minAgentromaticVersion", "minAgentelicVersion")
_CONTEXT = ("telespaceId", "roomId", "orgId")

#: page → field name → the core's bound for it.
EXPECTED: dict[str, dict[str, int]] = {
    "/signup": {"username": passwords.USERNAME_MAX, "displayName": limits.DISPLAY_NAME_MAX},
    "/": {"q": limits.QUERY_MAX},
    "/account": {"displayName": limits.DISPLAY_NAME_MAX, "name": limits.API_TOKEN_NAME_MAX},
    "/console": {"displayName": limits.DISPLAY_NAME_MAX},
    "/console/new": {"name": limits.NAME_MAX, "summary": limits.SUMMARY_MAX},
    "/console/listings/{}": {
        "name": limits.NAME_MAX,
        "summary": limits.SUMMARY_MAX,
        "reason": limits.REASON_MAX,
        "version": limits.VERSION_MAX,
        **dict.fromkeys(_REFS, limits.REF_MAX),
        **dict.fromkeys(_COMPAT, limits.COMPAT_MAX),
    },
    "/admin": {"reason": limits.REASON_MAX},
    "/listings/{}": dict.fromkeys(_CONTEXT, limits.TARGET_CONTEXT_MAX),
    "/listings/{}/install": dict.fromkeys(_CONTEXT, limits.TARGET_CONTEXT_MAX),
}


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[TestClient[Any], str]]:
    """The app with an admin publisher ``alice`` (and a published listing), signed out."""
    settings = Settings(
        database_url="memory://",
        web=WebSettings(),
        rate_limits=None,
        redeem_secrets=(b"a redeem secret of at least 32 bytes",),
    )
    app = create_app(settings)
    fp = fleetprompt_of(app)
    fp.operator.ensure_user("alice", roles=[Role.PUBLISHER, Role.ADMIN])
    fp.accounts.set_password("alice", PASSWORD)
    call = Call.as_user("alice")
    listing = fp.publishing.create_listing(
        call, {"assetKind": "whs_agent", "name": "Triage"}, idempotency_key="l"
    ).value.listing
    fp.publishing.publish_release(
        call,
        listing.listing_id,
        {"version": "1.0.0", "refs": {"whsAgentId": "agent-1"}},
        idempotency_key="r",
    )
    fp.publishing.change_status(
        call, listing.listing_id, {"status": "published"}, idempotency_key="s"
    )
    with TestClient(app, base_url="https://fleetprompt.test") as client:
        yield client, listing.listing_id


def _maxlengths(page: str) -> dict[str, int]:
    """``name`` → ``maxlength`` of every input that has one."""
    found: dict[str, int] = {}
    for tag in re.findall(r"<input\b[^>]*>", page):
        name = re.search(r'\bname="([^"]+)"', tag)
        limit = re.search(r'\bmaxlength="([^"]*)"', tag)
        if name and limit:
            found[name.group(1)] = int(limit.group(1))
    return found


def test_every_form_bound_is_the_cores(site: tuple[TestClient[Any], str]) -> None:
    client, listing_id = site
    pages: dict[str, dict[str, int]] = {}
    signup = client.get("/signup", headers=HTML)
    assert signup.status_code == 200, signup.text
    pages["/signup"] = _maxlengths(signup.text)
    signed_in = client.post(
        "/signin", data={"identifier": "alice", "password": PASSWORD}, follow_redirects=False
    )
    assert signed_in.status_code == 303, signed_in.text
    for template in EXPECTED:
        if template == "/signup":
            continue
        response = client.get(template.replace("{}", listing_id), headers=HTML)
        assert response.status_code == 200, (template, response.text[:300])
        pages[template] = _maxlengths(response.text)
    assert pages == EXPECTED


def test_no_template_writes_a_bound_as_a_number() -> None:
    written = [
        f"{path.name}: {line.strip()}"
        for path in sorted(_TEMPLATES.glob("*.html"))
        for line in path.read_text("utf-8").splitlines()
        if re.search(r"maxlength=\"?\d", line)
    ]
    assert written == []

"""Security acceptance over HTTP (real app, SQLite and PostgreSQL): S-IDOR-01..05,
S-XSS-01..03, S-CD-01..03, S-SEC-01..03 and S-RL-01..03.

Mirrors ``tests/unit/test_app_security.py`` at the wire. Tenant isolation is
checked by comparing a foreign resource's answer with an unknown id's answer
(everything but the request id must match); stored XSS by parsing every ``html``
field the API serves; secrets by scanning responses, error bodies, audit rows
and — in S-SEC-02 — every log line the server writes.
"""

from __future__ import annotations

import html.parser
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from xss_corpus import PAYLOADS

from contract.http_checks import (
    assert_error,
    assert_no_internals,
    assert_rate_limited,
    error_shape,
    json_strings,
    walk_pages,
)
from contract.http_harness import REDEEM_PATH, REDEEM_SECRET, Api, Caller
from contract.http_live import captured_logs, serve
from fleetprompt_core import Call
from fleetprompt_core.policies.rate_limits import Action, RateLimits, RateRule
from fleetprompt_core.policies.signing import SIGNATURE_HEADER, sign
from fleetprompt_core.policies.tokens import generate_token, hash_token, looks_like_token
from fleetprompt_http.client import signed_redeem_request
from support import listing_payload, release_payload

DATABASES = ("sqlite", "postgres")
ApiFactory = Callable[..., AbstractContextManager[Api]]

UNKNOWN_LISTING = "lst_01JUNKNOWN000000000000000"
UNKNOWN_RELEASE = "rel_01JUNKNOWN000000000000000"
UNKNOWN_INTENT = "ii_01JUNKNOWN000000000000000"


# --------------------------------------------------------------------------- helpers


def _same_as_unknown(foreign: httpx.Response, unknown: httpx.Response) -> None:
    """A foreign resource answers exactly like one that does not exist (but the request id)."""
    assert_error(foreign, 404, "NOT_FOUND")
    assert_error(unknown, 404, "NOT_FOUND")
    assert error_shape(foreign) == error_shape(unknown)
    assert sorted(foreign.headers) == sorted(unknown.headers)


def _audit(api: Api, admin: Caller) -> list[dict[str, Any]]:
    return walk_pages(api, "/v1/admin/audit", admin, limit=200)


def _fields(response: httpx.Response) -> list[str]:
    return [f["fieldName"] for f in response.json()["error"]["details"]["fields"]]


# --------------------------------------------------------------------------- S-IDOR


def test_s_idor_01_publisher_b_cannot_read_or_change_a_listing(api: Api) -> None:
    """B reading or changing A's listings gets the unknown-id 404; nothing changes."""
    owner, intruder, admin = api.publisher(), api.publisher("Intruder"), api.admin()
    draft = api.create_listing(owner)
    published, _ = api.published(owner)
    before = {
        lid: api.get(f"/v1/publisher/listings/{lid}", owner).json()
        for lid in (draft["listingId"], published["listingId"])
    }
    audit_before = _audit(api, admin)
    for lid in before:
        for template in ("/v1/publisher/listings/{}", "/v1/publisher/listings/{}/releases"):
            _same_as_unknown(
                api.get(template.format(lid), intruder),
                api.get(template.format(UNKNOWN_LISTING), intruder),
            )
        patch = {"name": "Owned"}
        _same_as_unknown(
            api.post(f"/v1/publisher/listings/{lid}", intruder, patch, method="PATCH"),
            api.post(f"/v1/publisher/listings/{UNKNOWN_LISTING}", intruder, patch, method="PATCH"),
        )
        for status in ("draft", "published", "unlisted"):
            _same_as_unknown(
                api.set_status(intruder, lid, status),
                api.set_status(intruder, UNKNOWN_LISTING, status),
            )
    for lid, view in before.items():
        assert api.get(f"/v1/publisher/listings/{lid}", owner).json() == view
    assert _audit(api, admin) == audit_before
    own = api.get("/v1/publisher/listings", intruder).json()
    assert own == {"items": [], "nextCursor": None}


def test_s_idor_02_publisher_b_cannot_publish_on_or_revoke_a_releases(api: Api) -> None:
    """B publishing on or revoking A's releases is the unknown-id 404; no version is taken."""
    owner, intruder, admin = api.publisher(), api.publisher("Intruder"), api.admin()
    listing, release = api.published(owner)
    lid = listing["listingId"]
    audit_before = _audit(api, admin)
    _same_as_unknown(
        api.post(f"/v1/publisher/listings/{lid}/releases", intruder, release_payload("6.6.6")),
        api.post(
            f"/v1/publisher/listings/{UNKNOWN_LISTING}/releases",
            intruder,
            release_payload("6.6.6"),
        ),
    )
    _same_as_unknown(
        api.post(
            f"/v1/publisher/releases/{release['releaseId']}/revoke", intruder, {"reason": "x"}
        ),
        api.post(f"/v1/publisher/releases/{UNKNOWN_RELEASE}/revoke", intruder, {"reason": "x"}),
    )
    assert _audit(api, admin) == audit_before
    releases = api.get(f"/v1/publisher/listings/{lid}/releases", owner).json()["items"]
    assert releases == [release]
    assert api.publish_release(owner, lid, "6.6.6")["version"] == "6.6.6"


def test_s_idor_03_buyer_b_cannot_touch_a_intents_in_any_state(api: Api) -> None:
    """B touching A's intent in any state gets the unknown-id 404, never a 409."""
    publisher, owner, intruder, admin = api.publisher(), api.buyer(), api.buyer(), api.admin()
    listing, release = api.published(publisher)
    lid, rid = listing["listingId"], release["releaseId"]
    open_intent = api.intent(owner, lid, rid)
    canceled = api.intent(owner, lid, rid)
    cancel = api.post(f"/v1/install/intents/{canceled['installIntentId']}/cancel", owner)
    assert cancel.status_code == 200, cancel.text
    redeemed = api.intent(owner, lid, rid)
    assert api.redeem(api.token(owner, redeemed["installIntentId"])["installToken"]).is_success
    open_token = api.token(owner, open_intent["installIntentId"])["installToken"]
    audit_before = _audit(api, admin)
    for intent in (open_intent, canceled, redeemed):
        iid = intent["installIntentId"]
        _same_as_unknown(
            api.get(f"/v1/install/intents/{iid}", intruder),
            api.get(f"/v1/install/intents/{UNKNOWN_INTENT}", intruder),
        )
        for action in ("token", "cancel"):
            _same_as_unknown(
                api.post(f"/v1/install/intents/{iid}/{action}", intruder),
                api.post(f"/v1/install/intents/{UNKNOWN_INTENT}/{action}", intruder),
            )
    assert _audit(api, admin) == audit_before
    assert api.redeem(open_token).status_code == 200


def test_s_idor_04_list_endpoints_return_only_own_items(api: Api) -> None:
    """B1 and I2 list only the caller's items, and another caller's cursor is refused."""
    pub_a, pub_b = api.publisher(), api.publisher("B")
    buyer_a, buyer_b = api.buyer(), api.buyer()
    a_listings = {api.create_listing(pub_a)["listingId"] for _ in range(3)}
    b_listing, b_release = api.published(pub_b)
    b_listings = {b_listing["listingId"], api.create_listing(pub_b)["listingId"]}
    lid, rid = b_listing["listingId"], b_release["releaseId"]
    a_intents = {api.intent(buyer_a, lid, rid)["installIntentId"] for _ in range(3)}
    b_intents = {api.intent(buyer_b, lid, rid)["installIntentId"]}

    def ids(path: str, caller: Caller, key: str, **params: str) -> set[str]:
        return {item[key] for item in walk_pages(api, path, caller, limit=200, params=params)}

    assert ids("/v1/publisher/listings", pub_a, "listingId") == a_listings
    assert ids("/v1/publisher/listings", pub_b, "listingId") == b_listings
    assert ids("/v1/publisher/listings", pub_a, "listingId", status="published") == set()
    assert ids("/v1/install/intents", buyer_a, "installIntentId") == a_intents
    assert ids("/v1/install/intents", buyer_b, "installIntentId") == b_intents
    assert ids("/v1/install/intents", pub_b, "installIntentId") == set()

    for path, owner, other in (
        ("/v1/publisher/listings", pub_a, pub_b),
        ("/v1/install/intents", buyer_a, buyer_b),
    ):
        first = api.get(path, owner, params={"limit": "1"}).json()
        assert first["nextCursor"]
        stolen = api.get(path, other, params={"limit": "1", "cursor": first["nextCursor"]})
        assert_error(stolen, 400, "VALIDATION_FAILED", "cursor")
        assert _fields(stolen) == ["cursor"]


def test_s_idor_05_idempotency_keys_are_scoped_to_the_caller(api: Api) -> None:
    """B reusing A's key and request never gets A's stored answer; each runs as itself."""
    pub_a, pub_b = api.publisher(), api.publisher("B")
    buyer_a, buyer_b = api.buyer(), api.buyer()
    key = "shared-key-1"
    a_created = api.post("/v1/publisher/listings", pub_a, listing_payload(), key=key)
    b_created = api.post("/v1/publisher/listings", pub_b, listing_payload(), key=key)
    assert (a_created.status_code, b_created.status_code) == (201, 201)
    assert "idempotent-replayed" not in b_created.headers
    a_listing, b_listing = a_created.json()["listing"], b_created.json()["listing"]
    assert a_listing["listingId"] != b_listing["listingId"]
    assert b_listing["publisherUserId"] == pub_b.user_id

    listing, release = api.published(pub_a)
    body = {"listingId": listing["listingId"], "releaseId": release["releaseId"]}
    body["targetSystem"] = "whs"
    a_intent = api.post("/v1/install/intents", buyer_a, body, key=key)
    b_intent = api.post("/v1/install/intents", buyer_b, body, key=key)
    assert (a_intent.status_code, b_intent.status_code) == (201, 201)
    assert "idempotent-replayed" not in b_intent.headers
    assert b_intent.json()["installIntent"]["buyerUserId"] == buyer_b.user_id

    a_iid = a_intent.json()["installIntent"]["installIntentId"]
    issued = api.post(f"/v1/install/intents/{a_iid}/token", buyer_a, key=key)
    assert issued.status_code == 201
    stolen = api.post(f"/v1/install/intents/{a_iid}/token", buyer_b, key=key)
    assert_error(stolen, 404, "NOT_FOUND")
    assert "installToken" not in stolen.text
    assert api.redeem(issued.json()["installToken"]).status_code == 200


# --------------------------------------------------------------------------- S-XSS


#: Elements that execute, embed, submit or restyle; none may appear in served HTML.
_FORBIDDEN_TAGS = frozenset(
    {
        "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet",
        "form", "input", "button", "textarea", "select", "option", "meta", "link", "base",
        "svg", "math", "template", "noscript", "xmp", "plaintext", "listing", "audio",
        "video", "source", "track", "body", "html", "head", "title", "marquee", "details",
        "dialog", "portal", "animate", "set", "use", "foreignobject",
    }
)  # fmt: skip
#: Attributes that run code or load content other than through href/src.
_FORBIDDEN_ATTRS = frozenset(
    {
        "style", "srcdoc", "formaction", "action", "xlink:href", "background", "dynsrc",
        "lowsrc", "data", "codebase", "poster", "srcset", "ping", "http-equiv", "content",
    }
)  # fmt: skip
_URL_ATTRS = frozenset({"href", "src", "cite"})
_REL = {"noopener", "noreferrer", "nofollow"}
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]+")


class _HtmlProbe(html.parser.HTMLParser):
    """Collects every way a served HTML fragment could run code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        names = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") or name in _FORBIDDEN_ATTRS:
                self.problems.append(f"<{tag} {name}>")
            if name in _URL_ATTRS and value is not None:
                url = _CONTROL.sub("", value).lower()
                if not url.startswith("https://"):
                    self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "a":
            rel = set((names.get("rel") or "").split())
            if not rel >= _REL:
                self.problems.append(f"<a rel={names.get('rel')!r}>")

    handle_startendtag = handle_starttag

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"<![{data}>")


def _unsafe(fragment: str) -> list[str]:
    """What in ``fragment`` could execute (empty when it is inert)."""
    probe = _HtmlProbe()
    probe.feed(fragment)
    probe.close()
    problems = probe.problems
    if re.search(r"(?i)javascript\s*:|vbscript\s*:|data\s*:\s*text/html", _tags_only(fragment)):
        problems.append("script URL inside a tag")
    return problems


def _tags_only(fragment: str) -> str:
    """The markup of ``fragment`` without its text (where a URL could hide in an attribute)."""
    return " ".join(re.findall(r"<[^>]*>", fragment))


def _chunks(size: int) -> Iterator[str]:
    """The XSS corpus as markdown documents of ``size`` payloads each (control characters
    other than newlines and tabs removed: markdown holding one is refused, see S-XSS-01)."""
    payloads = [
        "".join(c for c in payload if c in "\n\r\t" or unicodedata.category(c) != "Cc")
        for payload in PAYLOADS
    ]
    for start in range(0, len(payloads), size):
        yield "\n\n".join(payloads[start : start + size])


def _html_fields(value: object) -> list[str]:
    """Every served HTML string: ``html`` of a markdown object, and ``bioHtml``."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if key in ("html", "bioHtml") and isinstance(inner, str):
                    found.append(inner)
                else:
                    stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _assert_inert(responses: list[httpx.Response], expected_fields: int) -> None:
    fields = []
    for response in responses:
        assert response.is_success, response.text
        assert response.headers["content-type"].startswith("application/json")
        fields.extend(_html_fields(response.json()))
    assert len(fields) >= expected_fields
    for fragment in fields:
        assert _unsafe(fragment) == [], fragment


def test_s_xss_probe_catches_executable_markup() -> None:
    """The probe used below flags scripts, handlers, script URLs and unsafe links."""
    for bad in (
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)" rel="noopener noreferrer nofollow">x</a>',
        '<a href="jav&#x09;ascript:alert(1)" rel="noopener noreferrer nofollow">x</a>',
        '<a href="https://ok.example">no rel</a>',
        '<p style="x">x</p>',
        '<iframe srcdoc="x"></iframe>',
        "<svg><a xlink:href=x>x</a></svg>",
    ):
        assert _unsafe(bad), bad
    assert (
        _unsafe('<p><a href="https://a.example" rel="noopener noreferrer nofollow">a</a></p>') == []
    )
    assert _unsafe("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>") == []


def test_s_xss_01_stored_xss_in_descriptions_never_reaches_served_html(api: Api) -> None:
    """XSS corpus in descriptions is served as inert HTML (create, owner, public)."""
    publisher = api.publisher()
    listing, _ = api.published(publisher)
    lid = listing["listingId"]
    responses = []
    chunks = list(_chunks(8))
    for markdown in chunks:
        description = {"format": "markdown", "markdown": markdown}
        created = api.post(
            "/v1/publisher/listings", publisher, listing_payload(description=description)
        )
        patched = api.post(
            f"/v1/publisher/listings/{lid}", publisher, {"description": description}, method="PATCH"
        )
        assert patched.status_code == 200, patched.text
        detail = api.get(f"/v1/public/listings/{lid}")
        assert detail.json()["listingDetail"]["description"]["markdown"] == markdown
        responses += [created, api.get(f"/v1/publisher/listings/{lid}", publisher), detail]
    _assert_inert(responses, expected_fields=3 * len(chunks))
    nul = {"format": "markdown", "markdown": "[click](java\x00script:alert(1))"}
    refused = api.post("/v1/publisher/listings", publisher, listing_payload(description=nul))
    assert_error(refused, 400, "VALIDATION_FAILED", "description.markdown")
    soh = {"format": "markdown", "markdown": "[click](\x01javascript:alert(1))"}
    refused = api.post("/v1/publisher/listings", publisher, listing_payload(description=soh))
    assert_error(refused, 400, "VALIDATION_FAILED", "description.markdown")


def test_s_xss_02_stored_xss_in_release_notes_never_reaches_served_html(api: Api) -> None:
    """XSS corpus in release notes is served as inert HTML (owner and public views)."""
    publisher = api.publisher()
    listing, _ = api.published(publisher)
    lid = listing["listingId"]
    chunks = list(_chunks(8))
    responses = [
        api.post(
            f"/v1/publisher/listings/{lid}/releases",
            publisher,
            release_payload(f"2.0.{index}", notes={"markdown": markdown}),
        )
        for index, markdown in enumerate(chunks)
    ]
    responses += [
        api.get(f"/v1/publisher/listings/{lid}/releases", publisher, params={"limit": "200"}),
        api.get(f"/v1/public/listings/{lid}/releases", params={"limit": "200"}),
        api.get(f"/v1/public/listings/{lid}"),
    ]
    public = responses[-2].json()["items"]
    assert {r["notes"]["markdown"] for r in public} >= set(chunks)
    _assert_inert(responses, expected_fields=3 * len(chunks))


def test_s_xss_03_stored_xss_in_publisher_bios_never_reaches_served_html(api: Api) -> None:
    """XSS corpus in publisher bios is served as inert HTML (PUT, GET, admin answer)."""
    publisher, admin = api.publisher(), api.admin()
    responses = []
    chunks = list(_chunks(8))
    for markdown in chunks:
        put = api.post(
            "/v1/publisher/profile",
            publisher,
            {"displayName": "Acme", "bioMarkdown": markdown},
            method="PUT",
        )
        assert put.status_code == 200, put.text
        assert put.json()["profile"]["bioMarkdown"] == markdown
        responses += [put, api.get("/v1/publisher/profile", publisher)]
    responses.append(
        api.post(
            f"/v1/admin/publishers/{publisher.user_id}/verification",
            admin,
            {"status": "verified"},
        )
    )
    _assert_inert(responses, expected_fields=2 * len(chunks) + 1)


# --------------------------------------------------------------------------- S-CD


def test_s_cd_01_a_token_redeems_only_for_its_target_system(api: Api) -> None:
    """A whs token is the unknown-token 404 for any other target and cannot be re-targeted."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, release = api.published(publisher)
    intent = api.intent(buyer, listing["listingId"], release["releaseId"], "whs")
    iid = intent["installIntentId"]
    raw = api.token(buyer, iid)["installToken"]
    unknown = error_shape(api.redeem(generate_token("fpit_"), "agentelic", source="agentelic"))
    for target, source in (
        ("agentelic", "agentelic"),
        ("agentromatic", "agentromatic"),
        ("agentelic", "whs"),
        ("agentromatic", "specprompt"),
    ):
        assert error_shape(api.redeem(raw, target, source=source)) == unknown, (target, source)
    retarget = api.post(f"/v1/install/intents/{iid}/token", buyer, {"targetSystem": "agentelic"})
    assert_error(retarget, 400, "VALIDATION_FAILED", "targetSystem")
    assert api.get(f"/v1/install/intents/{iid}", buyer).json()["installIntent"]["status"] == (
        "token_issued"
    )
    redeemed = api.redeem(raw, "whs")
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["installIntent"]["targetSystem"] == "whs"


def test_s_cd_02_client_supplied_ids_never_set_write_scope(api: Api) -> None:
    """Ids and targetContext in bodies never set scope: refused by field or inert data."""
    pub_a, pub_b, buyer, admin = api.publisher(), api.publisher("B"), api.buyer(), api.admin()
    listing, release = api.published(pub_a)
    lid = listing["listingId"]
    intent = api.intent(buyer, lid, release["releaseId"])
    audit_before = _audit(api, admin)
    signed_body = json.dumps(
        {
            "installToken": "fpit_x",
            "targetSystem": "whs",
            "installIntentId": intent["installIntentId"],
        }
    ).encode()
    context_body = json.dumps(
        {"installToken": "fpit_x", "targetSystem": "whs", "targetContext": {"orgId": "org-9"}}
    ).encode()
    attempts = {
        "publisherUserId": api.post(
            "/v1/publisher/listings", pub_a, listing_payload(publisherUserId=pub_b.user_id)
        ),
        "ownerId": api.post(
            f"/v1/publisher/listings/{lid}", pub_a, {"ownerId": pub_b.user_id}, method="PATCH"
        ),
        "listingId": api.post(
            f"/v1/publisher/listings/{lid}/releases",
            pub_a,
            release_payload("2.0.0", listingId="lst_x"),
        ),
        "buyerUserId": api.post(
            "/v1/install/intents",
            buyer,
            {"listingId": lid, "targetSystem": "whs", "buyerUserId": pub_a.user_id},
        ),
        "installIntentId": api.redeem("", body=signed_body, headers=_signed(signed_body)),
        "targetContext": api.redeem("", body=context_body, headers=_signed(context_body)),
        "publisherId": api.post(
            "/v1/publisher/profile",
            pub_a,
            {"displayName": "A", "publisherId": pub_b.user_id},
            method="PUT",
        ),
    }
    for field, response in attempts.items():
        assert_error(response, 400, "VALIDATION_FAILED", field)
        assert _fields(response) == [field]
    assert _audit(api, admin) == audit_before
    assert api.get("/v1/publisher/listings", pub_b).json()["items"] == []

    org_intent = api.post(
        "/v1/install/intents",
        buyer,
        {"listingId": lid, "targetSystem": "agentelic", "targetContext": {"orgId": "org-9"}},
    )
    assert org_intent.status_code == 201, org_intent.text
    created = org_intent.json()["installIntent"]
    assert created["buyerUserId"] == buyer.user_id
    org_admin = api.buyer()
    assert api.get("/v1/install/intents", org_admin).json()["items"] == []
    _same_as_unknown(
        api.get(f"/v1/install/intents/{created['installIntentId']}", org_admin),
        api.get(f"/v1/install/intents/{UNKNOWN_INTENT}", org_admin),
    )


def _signed(body: bytes) -> dict[str, str]:
    """The signature header for ``body`` (``api.redeem`` adds source and timestamp)."""
    return {SIGNATURE_HEADER: sign(body, REDEEM_SECRET)}


def test_s_cd_03_no_role_or_signed_browser_call_acts_on_another_buyers_intent(api: Api) -> None:
    """No publisher, admin, other buyer or signed browser call acts on a buyer's intent."""
    publisher, buyer, admin, other = api.publisher(), api.buyer(), api.admin(), api.buyer()
    listing, release = api.published(publisher)
    intent = api.intent(buyer, listing["listingId"], release["releaseId"])
    iid = intent["installIntentId"]
    raw = api.token(buyer, iid)["installToken"]
    audit_before = _audit(api, admin)
    for intruder in (publisher, admin, other):
        for action in ("token", "cancel"):
            _same_as_unknown(
                api.post(f"/v1/install/intents/{iid}/{action}", intruder),
                api.post(f"/v1/install/intents/{UNKNOWN_INTENT}/{action}", intruder),
            )
        _same_as_unknown(
            api.get(f"/v1/install/intents/{iid}", intruder),
            api.get(f"/v1/install/intents/{UNKNOWN_INTENT}", intruder),
        )
    for browser in ({"Origin": "https://evil.example"}, {"Cookie": "fp_session=stolen"}):
        assert_error(api.redeem(raw, headers=browser), 401, "UNAUTHENTICATED")
    assert _audit(api, admin) == audit_before
    assert api.redeem(raw).status_code == 200


# --------------------------------------------------------------------------- S-SEC


def test_s_sec_01_raw_tokens_appear_only_in_the_issuing_answer(api: Api) -> None:
    """The raw install token is only in the first issue answer; API tokens in none."""
    publisher, buyer, admin = api.publisher(), api.buyer(), api.admin()
    listing, release = api.published(publisher)
    lid = listing["listingId"]
    intent = api.intent(buyer, lid, release["releaseId"])
    iid = intent["installIntentId"]
    first = api.post(f"/v1/install/intents/{iid}/token", buyer, {"ttlMs": 120_000}, key="tok-1")
    assert first.status_code == 201, first.text
    raw = first.json()["installToken"]
    assert looks_like_token(raw)
    replay = api.post(f"/v1/install/intents/{iid}/token", buyer, {"ttlMs": 120_000}, key="tok-1")
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == {**first.json(), "installToken": None}
    later = [
        replay,
        api.get(f"/v1/install/intents/{iid}", buyer),
        api.get("/v1/install/intents", buyer),
        api.get(f"/v1/public/listings/{lid}"),
        api.get("/v1/public/listings/search"),
        api.get(f"/v1/publisher/listings/{lid}", publisher),
        api.redeem(raw),
        api.get(f"/v1/install/intents/{iid}", buyer),
        api.get("/v1/admin/audit", admin, params={"limit": "200"}),
        api.get("/healthz"),
    ]
    api_tokens = [caller.token for caller in (publisher, buyer, admin)]
    for response in (first, *later):
        assert response.is_success, response.text
        for token in api_tokens:
            assert token not in response.text
            assert token[5:30] not in response.text
    for response in later:
        assert raw not in response.text
        assert raw[5:30] not in response.text
        assert hash_token(raw) not in response.text
        assert not any(looks_like_token(s) for s in json_strings(response.json()))


def test_s_sec_02_no_secret_reaches_logs_errors_or_audit(api: Api) -> None:
    """No token, signature or secret in logs, errors or audit; logs are JSON access lines."""
    responses: list[httpx.Response] = []
    with captured_logs("DEBUG") as logs:
        publisher, buyer, admin = api.publisher(), api.buyer(), api.admin()
        listing = api.create_listing(publisher)
        lid = listing["listingId"]
        release = api.publish_release(publisher, lid)
        responses.append(api.set_status(publisher, lid, "published"))
        intent = api.intent(buyer, lid, release["releaseId"])
        iid = intent["installIntentId"]
        issued = api.post(f"/v1/install/intents/{iid}/token", buyer)
        raw = issued.json()["installToken"]
        responses.append(issued)
        signed = signed_redeem_request(
            raw, "whs", key=REDEEM_SECRET, source="whs", now_ms=api.clock.now_ms()
        )
        wrong = sign(signed.body, b"w" * 32)
        bad_bearers = [
            "Bearer " + publisher.token + "x",
            "Bearer " + raw,
            "Bearer " + generate_token("fpat_"),
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
            publisher.token,
        ]
        for authorization in bad_bearers:
            responses.append(
                api.client.get("/v1/publisher/listings", headers={"Authorization": authorization})
            )
        responses += [
            api.client.post(
                REDEEM_PATH,
                content=signed.body,
                headers={**signed.headers, SIGNATURE_HEADER: wrong},
            ),
            api.client.post(
                REDEEM_PATH,
                content=signed.body,
                headers={**signed.headers, "Origin": "https://evil.example", "Cookie": "a=b"},
            ),
            api.redeem(raw, "agentelic"),
            api.client.post(REDEEM_PATH, content=signed.body, headers=signed.headers),
            api.client.post(REDEEM_PATH, content=signed.body, headers=signed.headers),
            api.get(f"/v1/install/intents/{iid}", buyer, params={"token": raw}),
            api.post(f"/v1/install/intents/{iid}/token", buyer, {"installToken": raw}),
            api.post("/v1/install/intents", buyer, {"note": raw, "apiKey": publisher.token}),
        ]
        audit_http = api.get("/v1/admin/audit", admin, params={"limit": "200"})
        responses.append(audit_http)
    stored_audit = api.fp.admin.read_audit(Call.as_user(admin.external_id), {"limit": 200}).items

    statuses = [r.status_code for r in responses]
    assert statuses == [
        200,
        201,
        401,
        401,
        401,
        401,
        401,
        401,
        401,
        404,
        200,
        404,
        200,
        400,
        400,
        200,
    ]
    secrets = {
        "publisher api token": publisher.token,
        "buyer api token": buyer.token,
        "admin api token": admin.token,
        "install token": raw,
        "install token body": raw[5:30],
        "token hash": hash_token(raw),
        "signature": signed.headers[SIGNATURE_HEADER][3:],
        "wrong signature": wrong[3:],
        "redeem secret": REDEEM_SECRET.decode(),
    }
    lines = logs.lines()
    assert lines
    errors = [r.text for r in responses if r.status_code >= 400]
    audit_texts = [audit_http.text, *(repr(event) for event in stored_audit)]
    for name, secret in secrets.items():
        for line in lines:
            assert secret not in line, (name, line)
        for body in errors:
            assert secret not in body, (name, body)
        for text in audit_texts:
            assert secret not in text, (name, text)
    for body in errors:
        assert_no_internals(body)

    records = logs.records()  # every line is one JSON object
    assert len(records) == len(lines)
    access = logs.access()
    for record in access:
        assert {"requestId", "route", "status", "latencyMs"} <= set(record), record
        assert isinstance(record["status"], int)
        assert isinstance(record["latencyMs"], int | float)
        assert record["latencyMs"] >= 0
    logged = {record["requestId"]: record for record in access}
    assert len(logged) == len(access), "one access line per request"
    for response in responses:
        record = logged[response.headers["x-request-id"]]
        assert record["status"] == response.status_code
    redeem_line = logged[responses[10].headers["x-request-id"]]
    assert redeem_line["route"] == REDEEM_PATH


#: Every way a refused redemption can carry the raw token: name → (body, signed?).
def _misplaced(raw: str) -> dict[str, object]:
    return {
        "wrong-target": {"installToken": raw, "targetSystem": "agentelic"},
        "bad-target-value": {"installToken": raw, "targetSystem": "s3"},
        "extra-field": {"installToken": raw, "targetSystem": "whs", "copy": raw},
        "token-with-newline": {"installToken": raw + "\n", "targetSystem": "whs"},
        "token-too-long": {"installToken": raw * 5, "targetSystem": "whs"},
        "token-in-a-list": {"installToken": [raw], "targetSystem": "whs"},
        "token-as-a-key": {raw: "whs"},
        "token-in-a-key": {"token=" + raw: "whs", "targetSystem": "whs"},
        "token-as-target": {"installToken": "x", "targetSystem": raw},
    }


def test_s_sec_03_errors_never_echo_a_token(api: Api) -> None:
    """No refusal (redemption, bearer, body, query) echoes the install or API token."""
    publisher, buyer = api.publisher(), api.buyer()
    listing, release = api.published(publisher)
    intent = api.intent(buyer, listing["listingId"], release["releaseId"])
    iid = intent["installIntentId"]
    raw = api.token(buyer, iid)["installToken"]
    refusals: dict[str, httpx.Response] = {}
    for name, payload in _misplaced(raw).items():
        body = json.dumps(payload).encode()
        refusals[name] = api.redeem("", body=body, headers=_signed(body))
    refusals["browser"] = api.redeem(raw, headers={"Origin": "https://evil.example"})
    refusals["bad-key"] = api.redeem(raw, key=b"z" * 32)
    refusals["install-token-as-bearer"] = api.get(
        "/v1/install/intents", headers={"Authorization": f"Bearer {raw}"}
    )
    refusals["api-token-mangled"] = api.get(
        "/v1/install/intents", headers={"Authorization": f"Bearer {buyer.token}x"}
    )
    refusals["api-token-no-scheme"] = api.get(
        "/v1/install/intents", headers={"Authorization": buyer.token}
    )
    refusals["token-in-body"] = api.post(
        "/v1/install/intents", buyer, {"listingId": raw, "targetSystem": raw, "apiKey": raw}
    )
    refusals["token-as-id"] = api.get(f"/v1/install/intents/{raw}", buyer)
    refusals["token-as-cursor"] = api.get("/v1/install/intents", buyer, params={"cursor": raw})
    refusals["api-token-as-cursor"] = api.get(
        "/v1/public/listings/search", params={"cursor": buyer.token, "q": raw}
    )
    refusals["token-as-key"] = api.post(f"/v1/install/intents/{iid}/cancel", buyer, [raw], key=raw)
    for name, response in refusals.items():
        assert response.status_code >= 400, (name, response.text)
        assert_error(response, response.status_code, response.json()["error"]["code"])
        for secret in (raw, raw[5:30], buyer.token, buyer.token[5:30]):
            assert secret not in response.text, (name, response.text)
        assert not any(looks_like_token(s) for s in json_strings(response.json())), name
    status = api.get(f"/v1/install/intents/{iid}", buyer).json()["installIntent"]["status"]
    assert status == "token_issued"


# --------------------------------------------------------------------------- S-RL


@pytest.mark.parametrize("name", DATABASES)
def test_s_rl_01_search_and_detail_are_limited_per_client_and_per_user(
    api_factory: ApiFactory, name: str
) -> None:
    """Search and detail are limited per client address (not X-Forwarded-For) and per user."""
    limits = RateLimits({Action.SEARCH: RateRule(3, 60_000), Action.DETAIL: RateRule(2, 60_000)})
    with api_factory(name, rate_limits=limits) as api:
        listing, _ = api.published(api.publisher())
        lid = listing["listingId"]
        alice, bob = api.buyer(), api.buyer()
        for _ in range(3):
            assert api.get("/v1/public/listings/search").status_code == 200
        assert assert_rate_limited(api.get("/v1/public/listings/search")) == 60
        assert_rate_limited(api.get("/v1/public/listings/search", params={"q": "other"}))
        forged = api.get("/v1/public/listings/search", headers={"X-Forwarded-For": "203.0.113.9"})
        assert_rate_limited(forged)
        for _ in range(3):
            assert api.get("/v1/public/listings/search", alice).status_code == 200
        assert_rate_limited(api.get("/v1/public/listings/search", alice))
        assert api.get("/v1/public/listings/search", bob).status_code == 200

        for _ in range(2):
            assert api.get(f"/v1/public/listings/{lid}").status_code == 200
        assert_rate_limited(api.get(f"/v1/public/listings/{lid}"))
        assert_rate_limited(api.get(f"/v1/public/listings/{lid}/releases"))
        assert api.get(f"/v1/public/listings/{lid}/releases", bob).status_code == 200

        with serve(api.client.app) as base_url:
            for address, expected in (("127.0.0.1", [200, 200, 200, 429]), ("127.0.0.2", [200])):
                transport = httpx.HTTPTransport(local_address=address)
                with httpx.Client(base_url=base_url, transport=transport) as client:
                    got = [client.get("/v1/public/listings/search").status_code for _ in expected]
                assert got == expected, address

        api.clock.advance(60_000)
        assert api.get("/v1/public/listings/search").status_code == 200


def _write_attempts(api: Api, publisher: Caller, lid: str) -> dict[str, Callable[[], Any]]:
    return {
        "create": lambda: api.post("/v1/publisher/listings", publisher, listing_payload()),
        "patch": lambda: api.post(
            f"/v1/publisher/listings/{lid}", publisher, {"summary": "y"}, method="PATCH"
        ),
        "status": lambda: api.set_status(publisher, lid, "unlisted"),
        "release": lambda: api.post(
            f"/v1/publisher/listings/{lid}/releases", publisher, release_payload("9.9.9")
        ),
        "profile": lambda: api.post(
            "/v1/publisher/profile", publisher, {"displayName": "Z"}, method="PUT"
        ),
    }


@pytest.mark.parametrize("name", DATABASES)
def test_s_rl_02_publisher_writes_are_limited_per_user(api_factory: ApiFactory, name: str) -> None:
    """Every publisher write kind is limited per user: 429 + Retry-After, nothing stored."""
    limits = RateLimits({Action.PUBLISHER_WRITE: RateRule(4, 60_000)})
    with api_factory(name, rate_limits=limits) as api:
        pub_a, pub_b, admin = api.publisher(), api.publisher("B"), api.admin()
        listing, _ = api.published(pub_a)  # writes 1-3
        lid = listing["listingId"]
        api.clock.advance(10_000)
        patched = api.post(f"/v1/publisher/listings/{lid}", pub_a, {"summary": "x"}, method="PATCH")
        assert patched.status_code == 200  # write 4
        audit_before = _audit(api, admin)
        view_before = api.get(f"/v1/publisher/listings/{lid}", pub_a).json()
        for kind, attempt in _write_attempts(api, pub_a, lid).items():
            response = attempt()
            assert assert_rate_limited(response) == 50, kind
        assert _audit(api, admin) == audit_before
        assert api.get(f"/v1/publisher/listings/{lid}", pub_a).json() == view_before
        assert api.create_listing(pub_b)["publisherUserId"] == pub_b.user_id

        refused = api.post("/v1/publisher/listings", pub_a, listing_payload(), key="rl-key")
        assert_rate_limited(refused)
        api.clock.advance(50_000)
        retried = api.post("/v1/publisher/listings", pub_a, listing_payload(), key="rl-key")
        assert retried.status_code == 201, retried.text
        assert "idempotent-replayed" not in retried.headers


@pytest.mark.parametrize("name", DATABASES)
def test_s_rl_03_intent_creation_and_token_issue_are_limited_per_user(
    api_factory: ApiFactory, name: str
) -> None:
    """Intent creation and token issue are limited per user: 429 + Retry-After, no change."""
    limits = RateLimits(
        {Action.INTENT_CREATE: RateRule(2, 60_000), Action.TOKEN_ISSUE: RateRule(2, 30_000)}
    )
    with api_factory(name, rate_limits=limits) as api:
        publisher, buyer_a, buyer_b = api.publisher(), api.buyer(), api.buyer()
        listing, release = api.published(publisher)
        lid, rid = listing["listingId"], release["releaseId"]
        intents = [api.intent(buyer_a, lid, rid) for _ in range(2)]
        body = {"listingId": lid, "releaseId": rid, "targetSystem": "whs"}
        assert assert_rate_limited(api.post("/v1/install/intents", buyer_a, body)) == 60
        assert len(api.get("/v1/install/intents", buyer_a).json()["items"]) == 2
        other = api.intent(buyer_b, lid, rid)

        iid = intents[0]["installIntentId"]
        tokens = [api.token(buyer_a, iid)["installToken"] for _ in range(2)]
        limited = api.post(f"/v1/install/intents/{intents[1]['installIntentId']}/token", buyer_a)
        assert assert_rate_limited(limited) == 30
        status = api.get(f"/v1/install/intents/{intents[1]['installIntentId']}", buyer_a)
        assert status.json()["installIntent"]["status"] == "created"
        assert api.token(buyer_b, other["installIntentId"])["installToken"]
        assert api.redeem(tokens[-1]).status_code == 200
        api.clock.advance(30_000)
        assert api.token(buyer_a, intents[1]["installIntentId"])["installToken"]

"""The catalogue over MCP (contract §13): M-TOOL-01..04, M-AUTH-01..03, M-RL-01.

One real ``fleetprompt serve`` process on a SQLite file (seeded through the
core, as an operator would), driven by the official SDK's ``Client`` over
streamable HTTP at ``/mcp``; ``fleetprompt mcp`` processes on the same file,
driven over stdio. Results are compared with the JSON API of the same server.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_live import (
    REDEEM_SECRET,
    Deployment,
    deployment,
    error_of,
    http_client,
    run,
    stdio_client,
)
from mcp_types import TextResourceContents

from fleetprompt_adapters import sql
from fleetprompt_adapters.passwords import Argon2PasswordHasher
from fleetprompt_core import Call, Role
from fleetprompt_http.client import RedeemClient, RedeemFailed
from support import listing_payload, new_key, release_payload

PUBLIC_TOOLS = {"search_listings", "get_listing", "list_releases", "get_release", "get_publisher"}
SIGNED_IN_TOOLS = {
    "list_my_installs",
    "create_install_intent",
    "issue_install_token",
    "cancel_install_intent",
}
#: P1's parameters (§5, §14): every one is a search_listings argument.
P1_PARAMETERS = {"q", "tags", "categories", "assetKind", "verified", "sort", "cursor", "limit"}
SEARCH_LIMIT = 60
ISSUER = "https://id.example.test/"
AUDIENCE = "fleetprompt-mcp"
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwt(subject: str, key: rsa.RSAPrivateKey = SIGNING_KEY) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + 600}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})


def _jwks() -> str:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(SIGNING_KEY.public_key()))
    return json.dumps({"keys": [{**public, "kid": "k1", "alg": "RS256", "use": "sig"}]})


@attrs.frozen
class Person:
    external_id: str
    user_id: str
    token: str = attrs.field(repr=False)

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@attrs.frozen
class World:
    live: Deployment
    publisher: Person
    buyer: Person
    other_buyer: Person
    limited: Person
    listing_ids: tuple[str, ...]
    revoked_release_id: str
    latest_release_id: str
    draft_listing_id: str
    draft_release_id: str
    drafts_only_publisher_id: str


def _person(fp: Any, name: str, *roles: Role) -> Person:
    user = fp.operator.ensure_user(name, display_name=name.title(), roles=roles)
    return Person(name, user.user_id, fp.credentials.issue_api_token(name).api_token)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("mcp")
    with deployment(
        directory,
        FLEETPROMPT_RATE_LIMITS=f"search={SEARCH_LIMIT}/60",
        FLEETPROMPT_OIDC_ISSUER=ISSUER,
        FLEETPROMPT_OIDC_AUDIENCE=AUDIENCE,
        FLEETPROMPT_OIDC_JWKS=_jwks(),
    ) as live:
        fp = live.fp
        publisher = _person(fp, "mcp-publisher", Role.PUBLISHER)
        call = Call.as_user(publisher.external_id)
        fp.profiles.put(
            call,
            {"displayName": "Agents & Co", "bioMarkdown": "We build **agents**. <b>x</b>"},
            idempotency_key=new_key(),
        )
        listing_ids = []
        for index, name in enumerate(("Triage", "Tracker", "Translator", "Tutor", "Timer")):
            listing = fp.publishing.create_listing(
                call,
                listing_payload(
                    name=f"{name} Agent",
                    summary=f"The {name.lower()} agent.",
                    tags=["mcp-suite", name.lower()],
                    description={"markdown": f"# {name}\n\nDoes **{name.lower()}** <script>."},
                ),
                idempotency_key=new_key(),
            ).value.listing
            fp.publishing.publish_release(
                call, listing.listing_id, release_payload("1.0.0"), idempotency_key=new_key()
            )
            if index == 0:
                revoked = fp.publishing.publish_release(
                    call, listing.listing_id, release_payload("1.0.1"), idempotency_key=new_key()
                ).value
                fp.publishing.revoke_release(
                    call, revoked.release_id, {"reason": "broken"}, idempotency_key=new_key()
                )
                latest = fp.publishing.publish_release(
                    call, listing.listing_id, release_payload("1.1.0"), idempotency_key=new_key()
                ).value
            fp.publishing.change_status(
                call, listing.listing_id, {"status": "published"}, idempotency_key=new_key()
            )
            listing_ids.append(listing.listing_id)
        draft = fp.publishing.create_listing(
            call, listing_payload(name="Hidden Draft"), idempotency_key=new_key()
        ).value.listing
        draft_release = fp.publishing.publish_release(
            call, draft.listing_id, release_payload("0.1.0"), idempotency_key=new_key()
        ).value
        admin = _person(fp, "mcp-admin", Role.ADMIN)
        fp.admin.set_verification(
            Call.as_user(admin.external_id),
            publisher.user_id,
            {"status": "verified"},
            idempotency_key=new_key(),
        )
        unverified = Call.as_user(_person(fp, "mcp-unverified", Role.PUBLISHER).external_id)
        other = fp.publishing.create_listing(
            unverified,
            listing_payload(name="Other Agent", tags=["mcp-other"]),
            idempotency_key=new_key(),
        ).value.listing
        fp.publishing.publish_release(
            unverified, other.listing_id, release_payload("1.0.0"), idempotency_key=new_key()
        )
        fp.publishing.change_status(
            unverified, other.listing_id, {"status": "published"}, idempotency_key=new_key()
        )
        drafter = _person(fp, "mcp-drafter", Role.PUBLISHER)
        fp.publishing.create_listing(
            Call.as_user(drafter.external_id), listing_payload(), idempotency_key=new_key()
        )
        yield World(
            live=live,
            publisher=publisher,
            buyer=_person(fp, "mcp-buyer"),
            other_buyer=_person(fp, "mcp-other-buyer"),
            limited=_person(fp, "mcp-limited"),
            listing_ids=tuple(listing_ids),
            revoked_release_id=revoked.release_id,
            latest_release_id=latest.release_id,
            draft_listing_id=draft.listing_id,
            draft_release_id=draft_release.release_id,
            drafts_only_publisher_id=drafter.user_id,
        )


def _api_search(api: httpx.Client, params: dict[str, Any]) -> dict[str, Any]:
    response = api.get("/v1/public/listings/search", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    body: dict[str, Any] = result.structured_content
    return body


# --------------------------------------------------------------------------- M-TOOL-01


def _check_tool_list(tools: list[Any]) -> None:
    by_name = {tool.name: tool for tool in tools}
    assert set(by_name) == PUBLIC_TOOLS | SIGNED_IN_TOOLS
    for tool in tools:
        assert tool.description, tool.name
        assert tool.input_schema["type"] == "object", tool.name
        assert tool.output_schema is not None, tool.name
        assert tool.output_schema["type"] == "object", tool.name
    assert set(by_name["search_listings"].input_schema["properties"]) == P1_PARAMETERS
    search_output = by_name["search_listings"].output_schema
    assert set(search_output["required"]) == {"items", "nextCursor"}
    assert set(by_name["create_install_intent"].input_schema["required"]) == {
        "listingId",
        "targetSystem",
    }
    assert "idempotencyKey" in by_name["create_install_intent"].input_schema["properties"]
    assert "installToken" in json.dumps(by_name["issue_install_token"].output_schema)
    for name in PUBLIC_TOOLS | {"list_my_installs"}:
        assert by_name[name].annotations.read_only_hint is True, name
    for name in SIGNED_IN_TOOLS - {"list_my_installs"}:
        assert by_name[name].annotations.read_only_hint is False, name
    # Public shapes only: no output schema names a private field.
    everything = json.dumps([by_name[name].output_schema for name in PUBLIC_TOOLS])
    for private in ("moderation", "publisherUserId", "revokeReason", "buyerUserId", "email"):
        assert private not in everything, private


def test_m_tool_01_tool_list_and_schemas_over_http(world: World) -> None:
    """Every tool of §13 is listed with an input and an output schema; search takes every P1
    parameter; resources and the prompt are there; the metadata names the resource."""

    async def body() -> None:
        async with http_client(world.live.base_url) as client:
            _check_tool_list((await client.list_tools()).tools)
            templates = (await client.list_resource_templates()).resource_templates
            assert {t.uri_template for t in templates} == {
                "fleetprompt://listings/{listing_id}",
                "fleetprompt://releases/{release_id}",
            }
            prompts = (await client.list_prompts()).prompts
            assert [p.name for p in prompts] == ["find_and_install"]
            prompt = await client.get_prompt("find_and_install", {"need": "triage tickets"})
            assert "search_listings" in prompt.messages[0].content.text  # type: ignore[union-attr]

    run(body)
    with world.live.api() as api:
        metadata = api.get("/.well-known/oauth-protected-resource/mcp")
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == world.live.base_url + "/mcp"
    assert metadata.json()["bearer_methods_supported"] == ["header"]
    assert metadata.json()["authorization_servers"] == [ISSUER]


def test_m_tool_01_tool_list_and_schemas_over_stdio(world: World) -> None:
    """``fleetprompt mcp`` lists the same tools with the same schemas as ``/mcp``."""

    async def body() -> tuple[list[Any], list[Any]]:
        async with stdio_client(world.live.stdio()) as client:
            over_stdio = (await client.list_tools()).tools
        async with http_client(world.live.base_url) as client:
            over_http = (await client.list_tools()).tools
        return over_stdio, over_http

    over_stdio, over_http = run(body)
    _check_tool_list(over_stdio)
    assert [t.model_dump() for t in over_stdio] == [t.model_dump() for t in over_http]


# --------------------------------------------------------------------------- M-TOOL-02


def test_m_tool_02_search_equals_the_api_and_pages_by_cursor(world: World) -> None:
    """search_listings answers exactly the API's body for the same query, and walking pages
    by cursor visits every matching listing once, over HTTP and over stdio."""
    queries: list[dict[str, Any]] = [
        {"q": "agent", "tags": ["mcp-suite"]},
        {"tags": ["mcp-suite", "triage"]},
        {"q": "tutor", "assetKind": "whs_agent", "sort": "name"},
        {"categories": ["operations"], "sort": "created", "limit": 3},
        {"verified": True, "tags": ["mcp-suite"]},
        {"sort": "installs", "tags": ["mcp-suite"]},
    ]

    async def body(api: httpx.Client, client_factory: Any) -> None:
        async with client_factory() as client:
            for query in queries:
                result = await client.call_tool("search_listings", query)
                assert _structured(result) == _api_search(api, query), query
            seen: list[str] = []
            cursor = None
            while True:
                arguments: dict[str, Any] = {"tags": ["mcp-suite"], "sort": "name", "limit": 2}
                if cursor:
                    arguments["cursor"] = cursor
                page = _structured(await client.call_tool("search_listings", arguments))
                api_params = {**arguments, **({"cursor": cursor} if cursor else {})}
                assert page == _api_search(api, api_params)
                seen += [item["listingId"] for item in page["items"]]
                cursor = page["nextCursor"]
                if cursor is None:
                    break
            assert sorted(seen) == sorted(world.listing_ids)
            assert len(seen) == len(set(seen))
            verified = {"tags": ["mcp-other"], "verified": True}
            assert _structured(await client.call_tool("search_listings", verified))["items"] == []
            assert len(_api_search(api, {"tags": ["mcp-other"]})["items"]) == 1
            for bad, field in (
                ({"limit": 500}, "limit"),
                ({"cursor": "tampered"}, "cursor"),
                ({"limit": "ten"}, "limit"),
                ({"sort": "random"}, "sort"),
                ({"tags": ["ok", 3]}, "tags[1]"),
                ({"page": 2}, "page"),
            ):
                error = error_of(await client.call_tool("search_listings", bad))
                assert error["code"] == "VALIDATION_FAILED"
                assert [f["fieldName"] for f in error["details"]["fields"]] == [field]

    with world.live.api() as api:
        run(lambda: body(api, lambda: http_client(world.live.base_url)))
        run(lambda: body(api, lambda: stdio_client(world.live.stdio())))


# --------------------------------------------------------------------------- M-TOOL-03


def test_m_tool_03_detail_releases_release_and_publisher(world: World) -> None:
    """get_listing, list_releases, get_release and get_publisher answer the public shapes;
    the listing and release resources read the same; the text is markdown, never HTML."""
    listing_id = world.listing_ids[0]

    async def body(api: httpx.Client) -> None:
        async with http_client(world.live.base_url) as client:
            detail = await client.call_tool("get_listing", {"listingId": listing_id})
            api_detail = api.get(f"/v1/public/listings/{listing_id}").json()
            assert _structured(detail) == api_detail["listingDetail"]
            assert _structured(detail)["latestRelease"]["releaseId"] == world.latest_release_id
            text = detail.content[0].text  # type: ignore[union-attr]
            assert "# Triage" in text
            assert "<script" not in text
            assert "&lt;script>" in text
            for include in (None, True):
                arguments: dict[str, Any] = {"listingId": listing_id}
                params = {}
                if include:
                    arguments["includeRevoked"] = params["includeRevoked"] = True
                releases = _structured(await client.call_tool("list_releases", arguments))
                api_releases = api.get(
                    f"/v1/public/listings/{listing_id}/releases",
                    params={k: str(v).lower() for k, v in params.items()},
                ).json()
                assert releases == api_releases
            assert world.revoked_release_id in json.dumps(releases)
            revoked = _structured(
                await client.call_tool("get_release", {"releaseId": world.revoked_release_id})
            )
            assert revoked["status"] == "revoked"
            assert revoked["revokedAtMs"] is not None
            assert revoked in releases["items"]
            publisher = _structured(
                await client.call_tool("get_publisher", {"publisherId": world.publisher.user_id})
            )
            assert publisher["displayName"] == "Agents & Co"
            assert publisher["bio"]["html"].count("<strong>agents</strong>") == 1
            assert "<b>" not in publisher["bio"]["html"]
            assert publisher == {
                **api_detail["listingDetail"]["listing"]["publisher"],
                "bio": publisher["bio"],
            }
            resource = await client.read_resource(f"fleetprompt://listings/{listing_id}")
            (content,) = resource.contents
            assert isinstance(content, TextResourceContents)
            assert content.mime_type == "application/json"
            assert json.loads(content.text) == api_detail
            release = await client.read_resource(
                f"fleetprompt://releases/{world.latest_release_id}"
            )
            assert json.loads(release.contents[0].text)["release"]["version"] == "1.1.0"  # type: ignore[union-attr]

    with world.live.api() as api:
        run(lambda: body(api))


# --------------------------------------------------------------------------- M-TOOL-04


def test_m_tool_04_not_visible_is_not_found(world: World) -> None:
    """A draft listing, its release, a publisher with drafts only and unknown ids all answer
    NOT_FOUND with the same message as an id that never existed (tools and resources)."""

    async def body() -> None:
        async with http_client(world.live.base_url) as client:
            cases = [
                ("get_listing", {"listingId": world.draft_listing_id}, {"listingId": "lst_x"}),
                ("list_releases", {"listingId": world.draft_listing_id}, {"listingId": "lst_x"}),
                ("get_release", {"releaseId": world.draft_release_id}, {"releaseId": "rel_x"}),
                (
                    "get_publisher",
                    {"publisherId": world.drafts_only_publisher_id},
                    {"publisherId": world.buyer.user_id},
                ),
            ]
            for tool, hidden, unknown in cases:
                first = error_of(await client.call_tool(tool, hidden))
                second = error_of(await client.call_tool(tool, unknown))
                assert first["code"] == second["code"] == "NOT_FOUND", tool
                assert first["message"] == second["message"], tool
                assert first["requestId"] != second["requestId"]
            for uri in (
                f"fleetprompt://listings/{world.draft_listing_id}",
                f"fleetprompt://releases/{world.draft_release_id}",
            ):
                with pytest.raises(MCPError) as raised:
                    await client.read_resource(uri)
                assert raised.value.error.data["error"]["code"] == "NOT_FOUND"  # type: ignore[index]

    run(body)


# --------------------------------------------------------------------------- M-AUTH-01


def test_m_auth_01_anonymous_calls_to_signed_in_tools_are_refused(world: World) -> None:
    """Without credentials every signed-in tool answers UNAUTHENTICATED and changes nothing;
    a cookie never authenticates /mcp; a bad bearer is 401 pointing at the metadata."""
    arguments = {
        "list_my_installs": {},
        "create_install_intent": {"listingId": world.listing_ids[1], "targetSystem": "whs"},
        "issue_install_token": {"installIntentId": "ii_x"},
        "cancel_install_intent": {"installIntentId": "ii_x"},
    }

    async def body() -> None:
        async with http_client(world.live.base_url) as client:
            for tool, args in arguments.items():
                assert error_of(await client.call_tool(tool, args))["code"] == "UNAUTHENTICATED"
        async with stdio_client(world.live.stdio()) as client:
            for tool, args in arguments.items():
                assert error_of(await client.call_tool(tool, args))["code"] == "UNAUTHENTICATED"

    run(body)
    with world.live.api() as api:
        assert api.get("/v1/install/intents", headers=world.buyer.bearer()).json()["items"] == []
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        headers = {"Accept": "application/json, text/event-stream"}
        refused = api.post(
            "/mcp", json=initialize, headers={**headers, "Authorization": "Bearer fpat_forged"}
        )
        assert refused.status_code == 401
        assert refused.headers["cache-control"] == "no-store"
        listed = api.post("/mcp", json=initialize, headers=headers)
        assert listed.status_code == 200
        assert listed.headers["cache-control"] == "no-store"  # answers may carry a token
        assert listed.headers["x-request-id"].startswith("req_")
        assert refused.json()["error"]["code"] == "UNAUTHENTICATED"
        assert refused.json()["error"]["requestId"] == refused.headers["x-request-id"]
        assert (
            f'resource_metadata="{world.live.base_url}/.well-known/oauth-protected-resource/mcp"'
            in refused.headers["www-authenticate"]
        )
        foreign = api.post(
            "/mcp", json=initialize, headers={**headers, "Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert foreign.json()["error"]["code"] == "UNAUTHORIZED"
        rebound = api.post("/mcp", json=initialize, headers={**headers, "Host": "evil.example"})
        assert rebound.status_code == 400
        assert rebound.json()["error"]["code"] == "VALIDATION_FAILED"

    # A real browser session of the web pages (signed up through the core, as the page does):
    # the cookie opens /account, and never authenticates /mcp.
    accounts = sql.bootstrap(world.live.engine, passwords=Argon2PasswordHasher()).accounts
    signed = accounts.sign_up(
        Call(client="127.0.0.1"),
        {"username": "mcp-cookie", "password": "a long enough passphrase for the web pages"},
    )
    cookie = "; ".join(
        f"{name}={signed.session_token}" for name in ("fp_session", "__Host-fp_session")
    )
    with world.live.api() as api:
        assert "mcp-cookie" in api.get("/account", headers={"Cookie": cookie}).text

    async def with_cookie() -> None:
        async with http_client(world.live.base_url, headers={"Cookie": cookie}) as client:
            refused = await client.call_tool("list_my_installs", {})
            assert error_of(refused)["code"] == "UNAUTHENTICATED"

    run(with_cookie)


# --------------------------------------------------------------------------- M-AUTH-02


def _redeem(world: World, token: str, target: str) -> dict[str, Any]:
    return RedeemClient(world.live.base_url, source=target, key=REDEEM_SECRET.encode()).redeem(
        token, target
    )


def test_m_auth_02_signed_in_flow_ends_with_a_token_redeemed_once(world: World) -> None:
    """Over HTTP with a bearer and over stdio with FLEETPROMPT_MCP_TOKEN: an intent (a retried
    call makes one), a token shown once, redeemed once by the internal endpoint; the raw
    tokens never reach the logs."""
    issued: list[str] = []

    async def flow(client: Any, listing_id: str, target: str) -> None:
        arguments = {"listingId": listing_id, "targetSystem": target}
        first = _structured(await client.call_tool("create_install_intent", arguments))
        again = _structured(await client.call_tool("create_install_intent", arguments))
        assert again == first
        assert first["status"] == "created"
        assert first["buyerUserId"] == world.buyer.user_id
        mine = _structured(await client.call_tool("list_my_installs", {}))
        assert first["installIntentId"] in [item["installIntentId"] for item in mine["items"]]
        token = _structured(
            await client.call_tool(
                "issue_install_token", {"installIntentId": first["installIntentId"]}
            )
        )
        assert token["redeem"] == {"mode": "server_to_server", "targetSystem": target}
        raw = token["installToken"]
        assert isinstance(raw, str)
        assert raw.startswith("fpit_")
        issued.append(raw)
        redeemed = _redeem(world, raw, target)
        assert redeemed["installIntent"]["installIntentId"] == first["installIntentId"]
        assert redeemed["installIntent"]["status"] == "redeemed"
        with pytest.raises(RedeemFailed) as second:
            _redeem(world, raw, target)
        assert second.value.code == "NOT_FOUND"
        after = _structured(await client.call_tool("list_my_installs", {"status": "redeemed"}))
        assert first["installIntentId"] in [item["installIntentId"] for item in after["items"]]

    async def body() -> None:
        async with http_client(world.live.base_url, world.buyer.token) as client:
            await flow(client, world.listing_ids[1], "whs")
        async with stdio_client(world.live.stdio(world.buyer.token)) as client:
            await flow(client, world.listing_ids[2], "agentelic")

    run(body)
    log = world.live.log_text()
    assert '"tool": "issue_install_token"' in log
    for secret in (*issued, world.buyer.token, world.publisher.token):
        assert secret not in log


def test_m_auth_02_an_oidc_jwt_signs_in_over_mcp(world: World) -> None:
    """An OIDC JWT is a bearer of /mcp like an API token: its subject becomes a user on first
    sight and installs; a JWT signed by another key is 401 before any tool runs."""
    subject = "oidc|mcp-ada"

    async def body() -> None:
        async with http_client(world.live.base_url, _jwt(subject)) as client:
            assert _structured(await client.call_tool("list_my_installs", {}))["items"] == []
            intent = _structured(
                await client.call_tool(
                    "create_install_intent",
                    {"listingId": world.listing_ids[4], "targetSystem": "whs"},
                )
            )
            assert intent["status"] == "created"

    run(body)
    user = world.live.fp.operator.ensure_user(subject)
    assert user.roles == frozenset()
    with world.live.api() as api:
        forged = _jwt(subject, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        refused = api.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
            headers={
                "Accept": "application/json, text/event-stream",
                "Authorization": f"Bearer {forged}",
            },
        )
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "UNAUTHENTICATED"


# --------------------------------------------------------------------------- M-AUTH-03


def test_m_auth_03_foreign_intent_is_not_found(world: World) -> None:
    """Another buyer's intent is NOT_FOUND to issue and cancel tools, exactly like an unknown
    id, and never listed; the owner's intent is untouched and can still be canceled."""

    async def body() -> None:
        async with http_client(world.live.base_url, world.other_buyer.token) as owner:
            intent = _structured(
                await owner.call_tool(
                    "create_install_intent",
                    {"listingId": world.listing_ids[3], "targetSystem": "agentelic"},
                )
            )
        intent_id = intent["installIntentId"]
        async with http_client(world.live.base_url, world.buyer.token) as intruder:
            for tool in ("issue_install_token", "cancel_install_intent"):
                foreign = error_of(await intruder.call_tool(tool, {"installIntentId": intent_id}))
                unknown = error_of(await intruder.call_tool(tool, {"installIntentId": "ii_none"}))
                assert foreign["code"] == unknown["code"] == "NOT_FOUND", tool
                assert foreign["message"] == unknown["message"]
            mine = _structured(await intruder.call_tool("list_my_installs", {}))
            assert intent_id not in json.dumps(mine)
        async with http_client(world.live.base_url, world.other_buyer.token) as owner:
            canceled = _structured(
                await owner.call_tool("cancel_install_intent", {"installIntentId": intent_id})
            )
            assert canceled["status"] == "canceled"

    run(body)


# --------------------------------------------------------------------------- M-RL-01


def test_m_rl_01_limits_apply_over_http_and_stdio(world: World) -> None:
    """/mcp counts in the API's buckets (one signed-in user's searches over both hit one
    limit) and answers RATE_LIMITED with its request id; stdio processes are limited too."""
    half = SEARCH_LIMIT // 2

    async def body() -> None:
        with world.live.api() as api:
            for _ in range(half):
                response = api.get(
                    "/v1/public/listings/search", params={"q": "x"}, headers=world.limited.bearer()
                )
                assert response.status_code == 200
        async with http_client(world.live.base_url, world.limited.token) as client:
            for _ in range(SEARCH_LIMIT - half):
                assert not (await client.call_tool("search_listings", {"q": "x"})).is_error
            limited = await client.call_tool("search_listings", {"q": "x"})
            assert error_of(limited)["code"] == "RATE_LIMITED"
            assert "Retry after" in limited.content[0].text  # type: ignore[union-attr]
        with world.live.api() as api:
            response = api.get(
                "/v1/public/listings/search", params={"q": "x"}, headers=world.limited.bearer()
            )
            assert response.status_code == 429
        params = world.live.stdio(FLEETPROMPT_RATE_LIMITS="search=2/60")
        async with stdio_client(params) as client:
            for _ in range(2):
                assert not (await client.call_tool("search_listings", {})).is_error
            assert error_of(await client.call_tool("search_listings", {}))["code"] == (
                "RATE_LIMITED"
            )

    run(body)


# --------------------------------------------------------------------------- the docs


DOCS = Path(__file__).resolve().parents[2] / "docs" / "mcp.md"


def _client_configurations() -> dict[str, dict[str, Any]]:
    """The ``mcpServers`` entries of docs/mcp.md, by transport."""
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    entries = [json.loads(block)["mcpServers"]["fleetprompt"] for block in blocks]
    return {("stdio" if "command" in entry else entry["type"]): entry for entry in entries}


def test_m_auth_02_clients_configured_from_the_docs_find_inspect_and_install(
    world: World,
) -> None:
    """The HTTP and stdio configurations of docs/mcp.md, with a real token and database, let
    the SDK's client find a listing, inspect it and end with a token that redeems once."""
    configurations = _client_configurations()
    assert set(configurations) == {"http", "stdio"}
    http_entry, stdio_entry = configurations["http"], configurations["stdio"]
    assert http_entry["url"] == "http://127.0.0.1:8000/mcp"  # the README's serve address

    async def flow(client: Any, listing_name: str, target: str) -> None:
        found = _structured(await client.call_tool("search_listings", {"q": listing_name}))
        listing_id = found["items"][0]["listingId"]
        detail = _structured(await client.call_tool("get_listing", {"listingId": listing_id}))
        assert detail["listing"]["name"] == listing_name
        intent = _structured(
            await client.call_tool(
                "create_install_intent", {"listingId": listing_id, "targetSystem": target}
            )
        )
        assert intent["releaseId"] == detail["latestRelease"]["releaseId"]
        issued = _structured(
            await client.call_tool(
                "issue_install_token", {"installIntentId": intent["installIntentId"]}
            )
        )
        assert _redeem(world, issued["installToken"], target)["installIntent"]["status"] == (
            "redeemed"
        )
        with pytest.raises(RedeemFailed):
            _redeem(world, issued["installToken"], target)

    token = world.buyer.token
    headers = {
        name: value.replace("fpat_your_token", token)
        for name, value in http_entry["headers"].items()
    }
    url = http_entry["url"].replace("http://127.0.0.1:8000", world.live.base_url)
    env = {
        name: value.replace("fpat_your_token", token).replace(
            "sqlite:////path/to/fleetprompt.db", world.live.database_url
        )
        for name, value in stdio_entry["env"].items()
    }
    # Only what the docs say, plus where to find the command (PATH, and the sources under test).
    inherited = {
        name: world.live.env[name] for name in ("PATH", "PYTHONPATH") if name in world.live.env
    }
    stdio = StdioServerParameters(
        command=stdio_entry["command"], args=stdio_entry["args"], env={**inherited, **env}
    )

    async def body() -> None:
        async with http_client(url.removesuffix("/mcp"), headers=headers) as client:
            await flow(client, "Tutor Agent", "whs")
        async with stdio_client(stdio) as client:
            await flow(client, "Timer Agent", "agentelic")

    run(body)

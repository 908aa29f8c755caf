"""The OpenAPI document the server serves (§5): complete, valid, and true to the core.

The issue asks for "OpenAPI served by the app, with every endpoint, parameter
and error documented". These tests hold the served document
(``GET /schema/openapi.json``) against a table of §5 written here, and then
against the running app itself: every documented query parameter and body
field is one the core accepts, and an undocumented one is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import pytest

from contract.http_harness import REDEEM_PATH, REDEEM_SECRET, Api, Caller, open_api
from fleetprompt_core.policies.signing import signed_headers
from fleetprompt_http.errors import METHOD_NOT_ALLOWED

SCHEMA_PATH = "/schema/openapi.json"
UNKNOWN = "zzUnknown"
ENVELOPE = "#/components/schemas/ErrorEnvelope"


@attrs.frozen
class Endpoint:
    """One row of §5's table, with what its documentation must say."""

    id: str
    method: str
    path: str
    success: int
    errors: frozenset[int]
    query: tuple[str, ...] = ()
    #: Top-level body fields; ``None`` when the endpoint takes no body.
    body: tuple[str, ...] | None = None
    body_required: bool = True
    key: str | None = None
    security: str = "bearer"


_W = frozenset({401, 403, 404, 409, 413, 415})  # a publisher/admin write
_PAGE = ("cursor", "limit")
_LISTING_FIELDS = ("name", "summary", "description", "tags", "categories", "images", "links")

#: §5, row by row (paths with ``{}`` for each path parameter).
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "P1",
        "GET",
        "/v1/public/listings/search",
        200,
        frozenset({401, 429}),
        query=("q", "tags", "categories", "assetKind", "verified", "sort", *_PAGE),
        security="optional",
    ),
    Endpoint(
        "P2", "GET", "/v1/public/listings/{}", 200, frozenset({401, 404, 429}), security="optional"
    ),
    Endpoint(
        "P3",
        "GET",
        "/v1/public/listings/{}/releases",
        200,
        frozenset({401, 404, 429}),
        query=("includeRevoked", *_PAGE),
        security="optional",
    ),
    Endpoint("B1", "GET", "/v1/publisher/listings", 200, frozenset({401, 403}), ("status", *_PAGE)),
    Endpoint(
        "B2",
        "POST",
        "/v1/publisher/listings",
        201,
        _W | {429},
        body=("assetKind", *_LISTING_FIELDS),
        key="required",
    ),
    Endpoint("B3", "GET", "/v1/publisher/listings/{}", 200, frozenset({401, 403, 404})),
    Endpoint(
        "B4",
        "PATCH",
        "/v1/publisher/listings/{}",
        200,
        _W | {429},
        body=_LISTING_FIELDS,
        key="accepted",
    ),
    Endpoint(
        "B5",
        "POST",
        "/v1/publisher/listings/{}/status",
        200,
        _W | {429},
        body=("status",),
        key="required",
    ),
    Endpoint(
        "B6",
        "POST",
        "/v1/publisher/listings/{}/releases",
        201,
        _W | {429},
        body=("version", "refs", "compat", "artifacts", "notes"),
        key="required",
    ),
    Endpoint(
        "B7", "GET", "/v1/publisher/listings/{}/releases", 200, frozenset({401, 403, 404}), _PAGE
    ),
    Endpoint(
        "B8",
        "POST",
        "/v1/publisher/releases/{}/revoke",
        200,
        _W,
        body=("reason",),
        body_required=False,
        key="required",
    ),
    Endpoint("B9", "GET", "/v1/publisher/profile", 200, frozenset({401, 403})),
    Endpoint(
        "B9",
        "PUT",
        "/v1/publisher/profile",
        200,
        frozenset({401, 403, 409, 413, 415, 429}),
        body=("displayName", "bioMarkdown"),
        key="accepted",
    ),
    Endpoint(
        "I1",
        "POST",
        "/v1/install/intents",
        201,
        frozenset({401, 404, 409, 413, 415, 429}),
        body=("listingId", "releaseId", "targetSystem", "targetContext"),
        key="required",
    ),
    Endpoint("I2", "GET", "/v1/install/intents", 200, frozenset({401}), ("status", *_PAGE)),
    Endpoint("I3", "GET", "/v1/install/intents/{}", 200, frozenset({401, 404})),
    Endpoint(
        "I4",
        "POST",
        "/v1/install/intents/{}/token",
        201,
        frozenset({401, 404, 409, 413, 415, 429}),
        body=("ttlMs",),
        body_required=False,
        key="required",
    ),
    Endpoint(
        "I5",
        "POST",
        "/v1/install/intents/{}/cancel",
        200,
        frozenset({401, 404, 409, 413, 415}),
        body=(),
        body_required=False,
        key="required",
    ),
    Endpoint(
        "X1",
        "POST",
        "/v1/internal/install/redeem",
        200,
        frozenset({400, 401, 404, 409, 413, 415, 429, 501}),
        body=("installToken", "targetSystem"),
        key="accepted",  # X-RED-01: a retry with the key replays the answer
        security="none",
    ),
    Endpoint(
        "A1", "POST", "/v1/admin/listings/{}/suspend", 200, _W, body=("reason",), key="required"
    ),
    Endpoint(
        "A1",
        "POST",
        "/v1/admin/listings/{}/unsuspend",
        200,
        _W,
        body=("reason",),
        body_required=False,
        key="required",
    ),
    Endpoint(
        "A2",
        "POST",
        "/v1/admin/users/{}/roles",
        200,
        _W,
        body=("grant", "revoke"),
        key="required",
    ),
    Endpoint(
        "A3",
        "POST",
        "/v1/admin/publishers/{}/verification",
        200,
        _W,
        body=("status", "reason"),
        key="required",
    ),
    Endpoint(
        "A4",
        "GET",
        "/v1/admin/audit",
        200,
        frozenset({401, 403}),
        query=("type", "listingId", "actorUserId", *_PAGE),
    ),
    Endpoint("H1", "GET", "/healthz", 200, frozenset(), security="none"),
    # Readiness (issue 14 item 11): an operations endpoint beside §5's table.
    Endpoint("H2", "GET", "/readyz", 200, frozenset({503}), security="none"),
    # Who am I (issue 15): beside §5's table.
    Endpoint("ME", "GET", "/v1/me", 200, frozenset({401, 429})),
)

_IDS = [f"{e.id} {e.method} {e.path}" for e in ENDPOINTS]


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Api, dict[str, Any]]]:
    """An app over the in-memory store and the document it serves."""
    with open_api("memory", "memory://") as api:
        response = api.client.get(SCHEMA_PATH)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/vnd.oai.openapi+json")
        assert response.headers.get("x-request-id")
        yield api, response.json()


@pytest.fixture(scope="module")
def document(served: tuple[Api, dict[str, Any]]) -> dict[str, Any]:
    return served[1]


def _operations(document: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "patch", "delete", "head", "options", "trace"}:
                found[(method.upper(), _template(path))] = operation
    return found


def _operation(document: Mapping[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    return _operations(document)[(endpoint.method, endpoint.path)]


def _resolve(document: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/components/schemas/"), ref
        schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return dict(schema)


def _body_schema(document: Mapping[str, Any], operation: Mapping[str, Any]) -> dict[str, Any]:
    content = operation["requestBody"]["content"]
    assert list(content) == ["application/json"], content
    return _resolve(document, content["application/json"]["schema"])


# --------------------------------------------------------------------------- the document


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1"), document["openapi"]
    assert document["info"]["title"] == "FleetPrompt"
    assert document["info"]["version"]
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)


def test_the_document_is_deterministic(served: tuple[Api, dict[str, Any]]) -> None:
    """Two fetches, and a second app, serve the same bytes (no random examples)."""
    api, document = served
    assert api.client.get(SCHEMA_PATH).json() == document
    with open_api("memory-2", "memory://") as other:
        assert other.client.get(SCHEMA_PATH).json() == document
    assert "examples" not in json.dumps(document["components"]["schemas"])


def test_every_endpoint_of_the_contract_is_documented_and_nothing_else(
    document: dict[str, Any],
) -> None:
    documented = set(_operations(document))
    expected = {(e.method, e.path) for e in ENDPOINTS}
    assert documented - expected == set(), "undocumented in §5"
    assert expected - documented == set(), "missing from the document"
    operation_ids = [op["operationId"] for op in _operations(document).values()]
    assert len(operation_ids) == len(set(operation_ids))


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_IDS)
def test_every_error_is_documented_with_the_envelope(
    document: dict[str, Any], endpoint: Endpoint
) -> None:
    operation = _operation(document, endpoint)
    responses = operation["responses"]
    assert str(endpoint.success) in responses, sorted(responses)
    statuses = {int(status) for status in responses}
    for status in endpoint.errors | {400, 500, 503}:
        assert status in statuses, (endpoint.id, status, sorted(statuses))
    for status, response in responses.items():
        assert response["headers"]["X-Request-Id"]["required"] is True, (endpoint.id, status)
        if int(status) < 400:
            continue
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": ENVELOPE}, (endpoint.id, status, schema)
        assert response["description"].startswith("`"), response["description"]
        example = next(iter(response["content"]["application/json"]["examples"].values()))
        assert set(example["value"]["error"]) == {"code", "message", "requestId", "details"}
    if 429 in endpoint.errors:
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert responses["503"]["headers"]["Retry-After"]["required"] is True
    assert "Allow" in responses["405"]["headers"]
    method_example = next(
        iter(responses["405"]["content"]["application/json"]["examples"].values())
    )
    assert method_example["value"]["error"]["message"] == METHOD_NOT_ALLOWED  # what a 405 says
    if endpoint.success == 201:
        assert "Location" in responses["201"]["headers"], endpoint.id
    if endpoint.key is not None:
        assert "Idempotent-Replayed" in responses[str(endpoint.success)]["headers"]


def test_the_envelope_schema_is_the_contract(document: dict[str, Any]) -> None:
    envelope = _resolve(document, {"$ref": ENVELOPE})
    assert envelope["required"] == ["error"]
    body = _resolve(document, envelope["properties"]["error"])
    assert set(body["required"]) == {"code", "message", "requestId", "details"}
    details = _resolve(document, body["properties"]["details"])
    assert set(details["properties"]) == {"hint", "fields"}
    problem = _resolve(document, details["properties"]["fields"]["items"])
    assert set(problem["required"]) == {"fieldName", "message"}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_IDS)
def test_every_parameter_is_documented(document: dict[str, Any], endpoint: Endpoint) -> None:
    operation = _operation(document, endpoint)
    parameters = operation.get("parameters", [])
    by_place: dict[str, dict[str, dict[str, Any]]] = {}
    for parameter in parameters:
        by_place.setdefault(parameter["in"], {})[parameter["name"]] = parameter
        assert parameter.get("description") or parameter["in"] == "path", parameter
        schema = parameter["schema"]
        assert "null" not in json.dumps(schema), parameter  # a query string has no null
    assert set(by_place.get("query", {})) == set(endpoint.query), endpoint.id
    assert len(by_place.get("path", {})) == endpoint.path.count("{}")
    assert all(p["required"] for p in by_place.get("path", {}).values())
    headers = by_place.get("header", {})
    if endpoint.key is None:
        assert "Idempotency-Key" not in headers, endpoint.id
    else:
        key = headers["Idempotency-Key"]
        assert key["required"] is (endpoint.key == "required"), endpoint.id
        assert key["schema"]["maxLength"] == 255
        assert key["schema"]["minLength"] == 1
    if endpoint.id == "X1":
        assert {name for name, p in headers.items() if p["required"]} == {
            "X-WHS-Delegation-Source",
            "X-WHS-Delegation-Timestamp",
            "X-WHS-Delegation-Signature",
        }
    if "limit" in endpoint.query:
        limit = by_place["query"]["limit"]["schema"]
        assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 200)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_IDS)
def test_every_body_is_documented(document: dict[str, Any], endpoint: Endpoint) -> None:
    operation = _operation(document, endpoint)
    if endpoint.body is None:
        assert "requestBody" not in operation, endpoint.id
        return
    assert operation["requestBody"]["required"] is endpoint.body_required, endpoint.id
    schema = _body_schema(document, operation)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert tuple(schema["properties"]) == endpoint.body, endpoint.id
    assert schema["title"].endswith("Request")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_IDS)
def test_security_says_who_may_call(document: dict[str, Any], endpoint: Endpoint) -> None:
    security = _operation(document, endpoint).get("security", document["security"])
    expected = {
        "bearer": [{"bearer": []}],
        "optional": [{}, {"bearer": []}],
        "none": [],
    }[endpoint.security]
    assert security == expected, endpoint.id


def test_bounds_match_the_contract(document: dict[str, Any]) -> None:
    """A few of §3's bounds, read back from the bodies."""
    operations = _operations(document)
    listing = _body_schema(document, operations[("POST", "/v1/publisher/listings")])
    props = listing["properties"]
    assert set(listing["required"]) == {"assetKind", "name"}
    assert (props["name"]["minLength"], props["name"]["maxLength"]) == (1, 80)
    assert props["summary"]["maxLength"] == 240
    assert props["tags"]["maxItems"] == 20
    assert props["tags"]["items"]["maxLength"] == 32
    assert props["categories"]["maxItems"] == 10
    assert props["images"]["maxItems"] == 10
    assert props["assetKind"]["enum"] == ["whs_agent", "agentromatic_workflow", "spec_asset"]
    assert props["description"]["type"] == ["object", "null"]
    description = props["description"]["properties"]["markdown"]
    assert description["maxLength"] == 20_000
    release = _body_schema(document, operations[("POST", "/v1/publisher/listings/{}/releases")])[
        "properties"
    ]
    assert release["version"]["pattern"] == "^[0-9A-Za-z.+-]+$"
    assert release["version"]["maxLength"] == 64
    artifact = release["artifacts"]["items"]
    assert artifact["properties"]["sha256"]["pattern"] == "^[0-9A-Fa-f]{64}$"
    assert set(artifact["required"]) == {"kind", "sha256", "sizeBytes"}
    refs = release["refs"]["properties"]
    assert {name: refs[name]["maxLength"] for name in refs} == dict.fromkeys(refs, 200)
    token = _body_schema(document, operations[("POST", "/v1/install/intents/{}/token")])
    ttl = token["properties"]["ttlMs"]
    assert (ttl["minimum"], ttl["maximum"]) == (60_000, 3_600_000)
    status = _body_schema(document, operations[("POST", "/v1/publisher/listings/{}/status")])
    assert status["properties"]["status"]["enum"] == ["draft", "published", "unlisted"]


# --------------------------------------------------------------------------- true to the app


@attrs.frozen
class World:
    """Real resources, so that every endpoint reaches the point where it reads its input."""

    publisher: Caller
    buyer: Caller
    admin: Caller
    listing_id: str
    release_id: str
    intent_id: str


@pytest.fixture(scope="module")
def world(served: tuple[Api, dict[str, Any]]) -> World:
    api, _ = served
    publisher, buyer, admin = api.publisher(), api.buyer(), api.admin()
    listing, release = api.published(publisher)
    intent = api.intent(buyer, listing["listingId"], release["releaseId"])
    return World(
        publisher,
        buyer,
        admin,
        listing["listingId"],
        release["releaseId"],
        intent["installIntentId"],
    )


def _call_for(endpoint: Endpoint, world: World) -> tuple[str, Caller | None]:
    """The concrete path and the caller allowed to use ``endpoint``."""
    ids = {
        "P2": world.listing_id,
        "P3": world.listing_id,
        "B3": world.listing_id,
        "B4": world.listing_id,
        "B5": world.listing_id,
        "B6": world.listing_id,
        "B7": world.listing_id,
        "B8": world.release_id,
        "I3": world.intent_id,
        "I4": world.intent_id,
        "I5": world.intent_id,
        "A1": world.listing_id,
        "A2": world.buyer.user_id,
        "A3": world.publisher.user_id,
    }
    path = endpoint.path.replace("{}", ids.get(endpoint.id, ""))
    caller = {"B": world.publisher, "I": world.buyer, "A": world.admin}.get(endpoint.id[0])
    return path, caller


def _send(
    api: Api, endpoint: Endpoint, world: World, *, params: Mapping[str, str], body: object = None
) -> Any:
    path, caller = _call_for(endpoint, world)
    if endpoint.id == "X1":
        raw = json.dumps(body).encode()
        headers = {
            "Content-Type": "application/json",
            **signed_headers(raw, REDEEM_SECRET, "whs", api.clock.now_ms()),
        }
        return api.client.post(REDEEM_PATH, content=raw, headers=headers)
    if endpoint.method == "GET":
        return api.get(path, caller, params=params)
    return api.post(path, caller, body, method=endpoint.method)


def _unknown_fields(response: Any) -> set[str]:
    if response.status_code != 400:
        return set()
    fields = response.json()["error"]["details"]["fields"]
    return {f["fieldName"] for f in fields if f["message"] == "is not a known field"}


def _sample(document: Mapping[str, Any], schema: Mapping[str, Any], path: str) -> object:
    """A value of ``schema`` with every documented property, plus ``zzUnknown`` in every
    object (to be reported at exactly those paths)."""
    schema = _resolve(document, schema)
    if "oneOf" in schema:
        options = [o for o in schema["oneOf"] if o.get("type") != "null"]
        return _sample(document, options[0], path)
    kinds = schema.get("type")
    kind = next(k for k in kinds if k != "null") if isinstance(kinds, list) else kinds
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        value: dict[str, object] = {
            name: _sample(document, sub, f"{path}.{name}" if path else name)
            for name, sub in schema.get("properties", {}).items()
        }
        value[UNKNOWN] = 1
        return value
    if kind == "array":
        return [_sample(document, schema["items"], f"{path}[0]")]
    if kind == "integer":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    assert kind == "string", schema
    return "a" * max(schema.get("minLength", 1), 1)


def _unknown_paths(value: object, path: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for name, inner in value.items():
            here = f"{path}.{name}" if path else name
            found |= {here} if name == UNKNOWN else _unknown_paths(inner, here)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found |= _unknown_paths(inner, f"{path}[{index}]")
    return found


_WITH_BODY = [e for e in ENDPOINTS if e.body is not None]
_WITH_QUERY = [e for e in ENDPOINTS if e.query]


@pytest.mark.parametrize(
    "endpoint", _WITH_BODY, ids=[f"{e.id} {e.method} {e.path}" for e in _WITH_BODY]
)
def test_the_core_accepts_every_documented_body_field_and_no_other(
    served: tuple[Api, dict[str, Any]], world: World, endpoint: Endpoint
) -> None:
    """Every object in the documented body, at every depth, filled with all its
    documented fields plus one unknown: the core names exactly the unknown ones."""
    api, document = served
    schema = _body_schema(document, _operation(document, endpoint))
    body = _sample(document, schema, "")
    response = _send(api, endpoint, world, params={}, body=body)
    assert response.status_code == 400, (endpoint.id, response.status_code, response.text)
    refused, expected = _unknown_fields(response), _unknown_paths(body)
    assert refused == expected, {
        "documented but refused by the core": sorted(refused - expected),
        "unknown but not refused": sorted(expected - refused),
    }


@pytest.mark.parametrize(
    "endpoint", _WITH_QUERY, ids=[f"{e.id} {e.method} {e.path}" for e in _WITH_QUERY]
)
def test_the_core_reads_every_documented_query_parameter_and_no_other(
    served: tuple[Api, dict[str, Any]], world: World, endpoint: Endpoint
) -> None:
    api, document = served
    parameters = {
        p["name"]: p["schema"]
        for p in _operation(document, endpoint)["parameters"]
        if p["in"] == "query"
    }
    values: dict[str, str] = {}
    for name, schema in parameters.items():
        if name == "cursor":
            continue  # a real cursor is checked by the pagination suite
        sample = _sample(document, schema, name)
        values[name] = sample[0] if isinstance(sample, list) else str(sample).lower()
    accepted = _send(api, endpoint, world, params=values)
    assert accepted.status_code == 200, (endpoint.id, values, accepted.text)
    refused = _send(api, endpoint, world, params={**values, UNKNOWN: "1"})
    assert refused.status_code == 400, (endpoint.id, refused.text)
    assert _unknown_fields(refused) == {UNKNOWN}, refused.json()

"""The OpenAPI document the server serves (§5): complete, valid, and true to the core.

The issue asks for "OpenAPI served by the app, with every endpoint, parameter
and error documented". These tests hold the served document
(``GET /schema/openapi.json``) against a table of §5 written here, and then
against the running app itself: every documented query parameter and body
field is one the core accepts, and an undocumented one is refused.
"""

from __future__ import annotations

import ast
import json
import re
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import pytest

import fleetprompt_core
import fleetprompt_http
from contract.http_checks import resolve_schema
from contract.http_harness import REDEEM_PATH, REDEEM_SECRET, Api, Caller, open_api
from fleetprompt_core.policies.signing import signed_headers
from fleetprompt_core.policies.validation import SHA256_PATTERN, VERSION_PATTERN
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
    #: A ``201`` that carries the created resource's ``Location``.
    location: bool = False


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
        location=True,
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
        location=True,
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


def _body_schema(document: Mapping[str, Any], operation: Mapping[str, Any]) -> dict[str, Any]:
    content = operation["requestBody"]["content"]
    assert list(content) == ["application/json"], content
    return resolve_schema(document, content["application/json"]["schema"])


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
        location = responses["201"]["headers"].get("Location")
        assert (location is not None) is endpoint.location, endpoint.id
        assert location is None or location["required"] is True
    if endpoint.key is not None:
        assert "Idempotent-Replayed" in responses[str(endpoint.success)]["headers"]


def test_the_envelope_schema_is_the_contract(document: dict[str, Any]) -> None:
    envelope = resolve_schema(document, {"$ref": ENVELOPE})
    assert envelope["required"] == ["error"]
    body = resolve_schema(document, envelope["properties"]["error"])
    assert set(body["required"]) == {"code", "message", "requestId", "details"}
    details = resolve_schema(document, body["properties"]["details"])
    assert set(details["properties"]) == {"hint", "fields"}
    problem = resolve_schema(document, details["properties"]["fields"]["items"])
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
    media = operation["requestBody"]["content"]["application/json"]
    schema = _body_schema(document, operation)
    # The body is the core's payload shape, under its own name in components/schemas.
    assert media["schema"] == {"$ref": f"#/components/schemas/{schema['title']}"}, endpoint.id
    assert schema["title"].endswith("Payload")
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert tuple(schema["properties"]) == endpoint.body, endpoint.id
    # ...shown with an example that is itself a body of that shape.
    (example,) = media["examples"].values()
    assert example["summary"]
    assert isinstance(example["value"], dict)
    assert set(example["value"]) <= set(schema["properties"]), endpoint.id
    assert set(schema.get("required", ())) <= set(example["value"]), endpoint.id


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
    assert release["version"]["pattern"] == f"^{VERSION_PATTERN.pattern}$"
    assert re.fullmatch(release["version"]["pattern"], "1.0.0-rc.1+build.5")
    assert release["version"]["maxLength"] == 64
    artifact = release["artifacts"]["items"]
    assert artifact["properties"]["sha256"]["pattern"] == f"^{SHA256_PATTERN.pattern}$"
    assert (
        artifact["properties"]["sha256"]["minLength"],
        artifact["properties"]["sha256"]["maxLength"],
    ) == (64, 64)
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
    return _world(api)


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
    schema = resolve_schema(document, schema)
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


# ------------------------------------------------------------------- names, examples, bounds


def _refs(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "$ref" and isinstance(inner, str):
                yield inner
            else:
                yield from _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _refs(inner)


def test_schema_names_are_clean_and_every_reference_resolves(document: dict[str, Any]) -> None:
    """No module path or generated suffix in a component name (``PageWire_fleetprompt_...``),
    and every ``$ref`` names a component that exists."""
    names = set(document["components"]["schemas"])
    unclean = sorted(name for name in names if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name))
    assert unclean == []
    dangling = sorted(ref for ref in set(_refs(document)) if ref.rsplit("/", 1)[1] not in names)
    assert dangling == []
    bodies = {
        _body_schema(document, _operation(document, e))["title"] for e in ENDPOINTS if e.body
    } | {"CancelIntentPayload"}
    for name in bodies:
        # A request body is documented under the name of the core's exported payload shape.
        assert typing.is_typeddict(getattr(fleetprompt_core, name)), name
        assert name in names


def _world(api: Api) -> World:
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


def _example_for(api: Api, document: Mapping[str, Any], endpoint: Endpoint, world: World) -> Any:
    """The documented example body, with the ids and the install token of ``world``."""
    media = _operation(document, endpoint)["requestBody"]["content"]["application/json"]
    (example,) = media["examples"].values()
    body = json.loads(json.dumps(example["value"]))
    if endpoint.id == "I1":
        body["listingId"] = world.listing_id
    if endpoint.id == "B5":  # the example publishes: start from a draft
        assert api.set_status(world.publisher, world.listing_id, "draft").status_code == 200
    if endpoint.id == "X1":
        body["installToken"] = api.token(world.buyer, world.intent_id)["installToken"]
    if endpoint.path.endswith("/unsuspend"):
        suspended = api.post(
            f"/v1/admin/listings/{world.listing_id}/suspend", world.admin, {"reason": "spam"}
        )
        assert suspended.status_code == 200, suspended.text
    return body


@pytest.mark.parametrize(
    "endpoint", _WITH_BODY, ids=[f"{e.id} {e.method} {e.path}" for e in _WITH_BODY]
)
def test_every_body_example_is_accepted_by_the_app(
    served: tuple[Api, dict[str, Any]], endpoint: Endpoint
) -> None:
    """The example a reader copies works: sent as is (with real ids), it succeeds."""
    api, document = served
    world = _world(api)
    body = _example_for(api, document, endpoint, world)
    response = _send(api, endpoint, world, params={}, body=body)
    assert response.status_code == endpoint.success, (endpoint.id, response.text)


@attrs.frozen
class Bound:
    """One documented bound of a body field: ``path`` into the body, the keyword, its value."""

    path: tuple[str | int, ...]
    keyword: str
    value: int
    schema: Mapping[str, Any]


def _bounds(
    document: Mapping[str, Any], schema: Mapping[str, Any], path: tuple[str | int, ...] = ()
) -> Iterator[Bound]:
    schema = resolve_schema(document, schema)
    if "oneOf" in schema:
        (schema,) = [o for o in schema["oneOf"] if o.get("type") != "null"]
        schema = resolve_schema(document, schema)
    kinds = schema.get("type")
    kind = next(k for k in kinds if k != "null") if isinstance(kinds, list) else kinds
    keywords = {
        "object": (),
        "array": ("maxItems",),
        "string": ("maxLength", "minLength"),
        "integer": ("minimum", "maximum"),
    }.get(kind, ())
    for keyword in keywords:
        if keyword in schema and not (keyword == "minLength" and schema[keyword] == 0):
            yield Bound(path, keyword, schema[keyword], schema)
    if kind == "object":
        for name, inner in schema.get("properties", {}).items():
            yield from _bounds(document, inner, (*path, name))
    if kind == "array":
        yield from _bounds(document, schema["items"], (*path, 0))


def _wire_path(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text = f"{text}[{part}]" if isinstance(part, int) else f"{text}.{part}" if text else part
    return text


def _at(body: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(part, int):
            body = body[part] if isinstance(body, list) and len(body) > part else None
        else:
            body = body.get(part) if isinstance(body, dict) else None
    return body


def _with(body: Any, path: tuple[str | int, ...], value: object) -> Any:
    """A copy of ``body`` with ``value`` at ``path`` (missing objects and lists created)."""
    copy = json.loads(json.dumps(body))
    here = copy
    for part, following in zip(path, (*path[1:], None), strict=True):
        if following is None:
            if isinstance(part, int):
                here[part : part + 1] = [value]
            else:
                here[part] = value
            break
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(part, int):
            if len(here) <= part:
                here.append(empty)
            here = here[part]
        else:
            if not isinstance(here.get(part), type(empty)):
                here[part] = empty
            here = here[part]
    return copy


def _text(base: object, length: int) -> str:
    """A text of ``length`` characters that keeps ``base``'s shape (a URL stays a URL,
    a digest stays hexadecimal)."""
    start = base if isinstance(base, str) else ""
    return start[:length] + "a" * max(length - len(start), 0)


def _items(body: Any, bound: Bound, count: int) -> list[object]:
    current = _at(body, bound.path)
    item = bound.schema["items"]
    if isinstance(current, list) and current and isinstance(current[0], dict):
        return [current[0]] * count
    if "enum" in item:
        return [item["enum"][i % len(item["enum"])] for i in range(count)]
    return [f"label{i}" for i in range(count)]


def _past_and_at(body: Any, bound: Bound) -> tuple[object, object | None]:
    """A value just past ``bound`` and one exactly at it (``None``: none to try)."""
    base = _at(body, bound.path)
    if bound.keyword == "maxLength":
        return _text(base, bound.value + 1), _text(base, bound.value)
    if bound.keyword == "minLength":
        return _text(base, bound.value - 1), None  # the example is at or above it
    if bound.keyword == "maxItems":
        return _items(body, bound, bound.value + 1), _items(body, bound, bound.value)
    if bound.keyword == "minimum":
        return bound.value - 1, bound.value
    assert bound.keyword == "maximum", bound
    return bound.value + 1, bound.value


def _problems(response: Any) -> dict[str, list[str]]:
    if response.status_code != 400:
        return {}
    found: dict[str, list[str]] = {}
    for field in response.json()["error"]["details"]["fields"]:
        found.setdefault(field["fieldName"], []).append(field["message"])
    return found


#: Bodies with a bounded field (B5's and I5's have none: an enum, no field).
_BOUNDED = [e for e in _WITH_BODY if e.id not in ("B5", "I5")]


@pytest.mark.parametrize(
    "endpoint", _BOUNDED, ids=[f"{e.id} {e.method} {e.path}" for e in _BOUNDED]
)
def test_every_documented_bound_is_the_one_the_core_enforces(
    served: tuple[Api, dict[str, Any]], endpoint: Endpoint
) -> None:
    """No bound is restated: for every ``maxLength``, ``minLength``, ``maxItems``,
    ``minimum`` and ``maximum`` of a documented body, the app refuses the value just
    past it at that field (naming that number), and does not refuse the value at it
    for its size."""
    api, document = served
    world = _world(api)
    example = _example_for(api, document, endpoint, world)
    schema = _body_schema(document, _operation(document, endpoint))
    bounds = list(_bounds(document, schema))
    assert bounds, endpoint.id
    at_bound: list[tuple[Bound, Any]] = []
    for bound in bounds:
        past, at = _past_and_at(example, bound)
        field = _wire_path(bound.path)
        response = _send(api, endpoint, world, params={}, body=_with(example, bound.path, past))
        messages = _problems(response).get(field, [])
        # An empty text refused for its minimum of 1 says so in words ("is required",
        # "must not be empty"); any other bound is named by its number.
        named = [m for m in messages if str(bound.value) in m or bound.value == 1]
        assert named, (
            endpoint.id,
            field,
            bound.keyword,
            bound.value,
            response.status_code,
            response.text[:500],
        )
        if at is not None:
            at_bound.append((bound, _with(example, bound.path, at)))
    for bound, body in at_bound:  # after the refusals: these may change the world
        field = _wire_path(bound.path)
        response = _send(api, endpoint, world, params={}, body=body)
        sized = [
            m
            for m in _problems(response).get(field, [])
            if any(word in m for word in ("at most", "at least", "between"))
        ]
        assert sized == [], (endpoint.id, field, bound.keyword, bound.value, sized)


def test_a_405_is_answered_as_documented(served: tuple[Api, dict[str, Any]], world: World) -> None:
    """A method a path lacks: the documented code, message and ``Allow`` header."""
    api, document = served
    documented_405 = _operations(document)[("POST", "/v1/publisher/listings")]["responses"]["405"]
    (example,) = documented_405["content"]["application/json"]["examples"].values()
    response = api.client.request(
        "DELETE", "/v1/publisher/listings", headers=world.publisher.headers()
    )
    assert response.status_code == 405, response.text
    assert response.json()["error"]["code"] == example["value"]["error"]["code"]
    assert response.json()["error"]["message"] == example["value"]["error"]["message"]
    allowed = {method.strip() for method in response.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed, response.headers["allow"]
    assert "DELETE" not in allowed
    assert documented_405["description"].startswith(f"`{example['value']['error']['code']}`")


def test_location_is_sent_exactly_where_documented(
    served: tuple[Api, dict[str, Any]], world: World
) -> None:
    """B2 and I1 answer ``201`` with the new resource's path; B6 and I4 (no URL of their
    own) send none, and document none."""
    api, _ = served
    publisher = api.publisher()
    created = api.post("/v1/publisher/listings", publisher, {"assetKind": "whs_agent", "name": "L"})
    assert created.status_code == 201, created.text
    listing_id = created.json()["listing"]["listingId"]
    assert created.headers["location"] == f"/v1/publisher/listings/{listing_id}"
    assert api.get(created.headers["location"], publisher).status_code == 200
    release = api.post(
        f"/v1/publisher/listings/{listing_id}/releases",
        publisher,
        {"version": "1.0.0", "refs": {"whsAgentId": "agent-1"}},
    )
    assert release.status_code == 201, release.text
    assert "location" not in release.headers
    intent = api.post(
        "/v1/install/intents",
        world.buyer,
        {"listingId": world.listing_id, "targetSystem": "whs"},
    )
    assert intent.status_code == 201, intent.text
    intent_id = intent.json()["installIntent"]["installIntentId"]
    assert intent.headers["location"] == f"/v1/install/intents/{intent_id}"
    token = api.post(f"/v1/install/intents/{intent_id}/token", world.buyer)
    assert token.status_code == 201, token.text
    assert "location" not in token.headers


#: Modules that build the HTTP documentation: they name the core's bounds, never restate them.
_DOCUMENTING: Final = ("openapi.py", "requests.py", "routes/docs.py")


def _restated_numbers(tree: ast.AST) -> list[tuple[int, str, object]]:
    """Keyword arguments given an integer literal above 1 (``max_length=2048``): a bound
    written as a number instead of named from the core."""
    return [
        (keyword.value.lineno, keyword.arg or "**", keyword.value.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if isinstance(keyword.value, ast.Constant)
        and type(keyword.value.value) is int
        and keyword.value.value > 1
    ]


@pytest.mark.parametrize("module", _DOCUMENTING)
def test_the_http_documentation_restates_no_bound(module: str) -> None:
    """Every number in the OpenAPI document comes from the core (``limits``, the
    policies), so a changed bound changes the document too."""
    source = Path(fleetprompt_http.__file__).parent / module
    assert _restated_numbers(ast.parse(source.read_text("utf-8"))) == []

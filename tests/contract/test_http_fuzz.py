"""Property-based fuzzing of the HTTP surface with schemathesis, over the served OpenAPI.

For every documented operation, schemathesis generates requests from the
document (valid and invalid ones) and sends them to the real app over a
migrated SQLite database with a seeded marketplace. Every response must be:

- never a 5xx (``not_a_server_error``) but a documented 501 (a feature not offered);
- accepted when valid by the document (``positive_data_acceptance``): the document
  states what the server enforces (issue 14 item 14);
- a documented status, with the documented content type, headers and body
  schema (``status_code_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``, ``response_schema_conformance``);
- when not 2xx, the §5 envelope whose ``requestId`` is the ``X-Request-Id``.

Bounded for CI: a fixed number of examples per operation, derandomized (the
same cases every run), no deadline. Most requests carry the bearer token of
the seeded caller the operation is for and real ids in the path, so that they
reach the core's validation instead of stopping at 401/404; a fixed share
keeps whatever credentials and ids schemathesis generated.
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Iterator
from typing import Any, Final

import attrs
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar.testing import TestClient
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core import NotSet
from schemathesis.python import asgi

import databases
from contract.http_harness import REDEEM_PATH, REDEEM_SECRET, Api, Caller, database_url, open_api
from fleetprompt_core.policies.signing import signed_headers
from fleetprompt_http.app import create_app
from fleetprompt_http.settings import Settings
from support import IMAGE_HOST

#: Examples per operation in the fuzzing phase (the examples and coverage phases add
#: their own, bounded by the document); the whole file takes about 18 s on a quiet
#: machine (90–105 s when the machine is loaded).
MAX_EXAMPLES = 20
#: One case in this many keeps schemathesis's own credentials, ids and keys.
RAW_SHARE = 5
#: Simulated time per request: keeps every rate-limit window (30/min at most) open.
STEP_MS = 2_500

_keys = itertools.count(1)


def no_undocumented_server_error(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    """``not_a_server_error``, except a 501 the operation documents (a feature this
    server does not offer, such as ``fleetprompt_signed_url`` downloads)."""
    documented = case.operation.definition.raw.get("responses") or {}
    if response.status_code == 501 and "501" in documented:
        return
    not_a_server_error(ctx, response, case)


CHECKS = [
    no_undocumented_server_error,
    status_code_conformance,
    positive_data_acceptance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _served_document() -> dict[str, Any]:
    """The document exactly as the app serves it (an in-memory app, no I/O).

    Fetched with Litestar's client rather than ``schemathesis.openapi.from_asgi``,
    which would start the app's lifespan in schemathesis's own registry and keep it
    until the process exits; the document does not depend on the storage.
    """
    app = create_app(Settings(database_url="memory://", redeem_secrets=(b"s" * 32,)))
    with TestClient(app) as client:
        response = client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


schema = schemathesis.openapi.from_dict(_served_document())


@attrs.frozen
class World:
    """The app under test, a client that reaches it in-process, and seeded ids."""

    api: Api
    session: Any
    publisher: Caller
    buyer: Caller
    admin: Caller
    path_ids: dict[str, list[str]]
    #: A live install token (single use: the first matching redemption takes it).
    install_token: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    engine = databases.sqlite_engine(tmp_path_factory.mktemp("fuzz"))
    try:
        with open_api("sqlite", database_url(engine)) as api:
            publisher, buyer, admin = api.publisher(), api.buyer(), api.admin()
            listing, release = api.published(publisher)
            revoked = api.publish_release(publisher, listing["listingId"], "1.0.1")
            response = api.post(
                f"/v1/publisher/releases/{revoked['releaseId']}/revoke",
                publisher,
                {"reason": "broken"},
            )
            assert response.status_code == 200, response.text
            draft = api.create_listing(publisher, name="Draft Agent")
            intent = api.intent(buyer, listing["listingId"], release["releaseId"])
            issued = api.token(buyer, intent["installIntentId"])
            path_ids = {
                "listing_id": [listing["listingId"], draft["listingId"]],
                "release_id": [release["releaseId"], revoked["releaseId"]],
                "install_intent_id": [intent["installIntentId"]],
                "user_id": [buyer.user_id],
                "publisher_id": [publisher.user_id],
            }
            # Requests go through schemathesis's ASGI client; the app's lifespan is the
            # harness's (its ``TestClient``), so this client is not entered.
            session = asgi.get_client(api.client.app)
            try:
                yield World(api, session, publisher, buyer, admin, path_ids, issued["installToken"])
            finally:
                session.close()
    finally:
        engine.dispose()


def _caller(world: World, path: str) -> Caller | None:
    if path.startswith("/v1/publisher/"):
        return world.publisher
    if path.startswith("/v1/install/"):
        return world.buyer
    if path.startswith("/v1/admin/"):
        return world.admin
    return None


def _stable(value: object) -> str:
    """A deterministic text of generated data (no object addresses), for seeding."""
    return json.dumps(value, sort_keys=True, default=lambda o: type(o).__name__)


#: The refs a release of the seeded listings (``whs_agent``) may carry (§3).
_WHS_REFS: Final = frozenset({"whsAgentId", "whsDeploymentId"})


def _integers_as_written(value: object) -> None:
    """JSON Schema counts ``600000.0`` as an integer; the server wants ``600000`` (the
    document says so in words): generated integral floats become ints, in place."""
    if isinstance(value, dict):
        items: list[tuple[Any, object]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return
    for key, inner in items:
        if isinstance(inner, float) and inner.is_integer():
            value[key] = int(inner)
        else:
            _integers_as_written(inner)


def _keep_valid(case: schemathesis.Case, body: object) -> None:
    """What no schema can say (it depends on the server's state, not on the request): a
    cursor is valid only when the server issued it (the document says so; a generated
    one is always refused), which refs a release may carry depends on its listing's
    asset kind, image URLs must be on the configured hosts, and integers are written
    without a fraction (all stated in the document's descriptions). The seeded world's
    values are put in; everything else is left as generated, so that a request valid
    by the document and refused by the server is a mismatch between the two
    (``positive_data_acceptance``)."""
    if case.query and "cursor" in case.query:
        del case.query["cursor"]
    if case.path.endswith("/releases") and case.method == "POST" and isinstance(body, dict):
        refs = body.get("refs")
        if isinstance(refs, dict):
            kept = {name: value for name, value in refs.items() if name in _WHS_REFS}
            if not isinstance(kept.get("whsAgentId"), str):
                kept["whsAgentId"] = "agent-fuzz"  # whs_agent requires it
            body["refs"] = kept
    if isinstance(body, dict):
        _integers_as_written(body)
    images = body.get("images") if isinstance(body, dict) else None
    if isinstance(images, list):
        for image in images:
            if isinstance(image, dict) and isinstance(image.get("url"), str):
                image["url"] = f"https://{IMAGE_HOST}/fuzz.png"


def _steer(case: schemathesis.Case, world: World) -> None:
    """Most cases get the right caller's token, seeded ids in the path, a fresh
    idempotency key, and (on X1) a valid signature, so that they reach the core.

    The choice is a function of the generated data, so a run is reproducible.
    """
    body = None if isinstance(case.body, NotSet) else case.body
    seed = zlib.crc32(
        _stable(
            [case.method, case.path, case.path_parameters, case.query, case.headers, body]
        ).encode()
    )
    _keep_valid(case, body)
    if seed % RAW_SHARE == 0:
        return
    headers = dict(case.headers or {})
    caller = _caller(world, case.path)
    if caller is not None:
        headers["Authorization"] = f"Bearer {caller.token}"
    if "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = f"fuzz-{next(_keys)}"
    for name in list(case.path_parameters or {}):
        choices = world.path_ids.get(name)
        if choices:
            case.path_parameters[name] = choices[seed % len(choices)]
    if case.query and "cursor" in case.query and seed % 2:
        del case.query["cursor"]  # a generated cursor is always refused
    if case.path == REDEEM_PATH:
        if isinstance(body, dict) and seed % 3 == 0:
            body = {**body, "installToken": world.install_token, "targetSystem": "whs"}
        if isinstance(case.body, NotSet):
            raw = b""
        else:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            case.body = raw
        now = world.api.clock.now_ms()
        headers.update(signed_headers(raw, REDEEM_SECRET, "whs", now))
    case.headers = headers


def _assert_envelope(response: schemathesis.Response) -> None:
    """A non-2xx answer is the §5 envelope carrying the response's request id."""
    request_id = response.headers.get("x-request-id")
    assert request_id, response.headers
    (request_id_value,) = request_id if isinstance(request_id, list) else [request_id]
    if response.status_code < 400:
        return
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "requestId", "details"}, error
    assert error["requestId"] == request_id_value, (error["requestId"], request_id_value)
    assert error["message"], error
    if error["code"] == "VALIDATION_FAILED":
        assert error["details"].get("fields"), error


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzz_http_surface(case: schemathesis.Case, world: World) -> None:
    world.api.clock.advance(STEP_MS)
    _steer(case, world)
    response = case.call_and_validate(
        app=world.api.client.app, session=world.session, checks=CHECKS
    )
    _assert_envelope(response)

"""Assertions shared by the HTTP contract suites (``test_http_*.py``).

Small and stable on purpose: other suites import them.

- :func:`assert_error` checks the §5 error envelope of one response and returns
  its ``error`` object.
- :func:`error_shape` is what two errors must share to be "identical in shape"
  (everything but the per-request ``requestId``).
- :func:`walk_pages` follows ``nextCursor`` through a list endpoint and checks
  the page contract on the way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from contract.http_harness import Api, Caller

__all__ = ["ERROR_CODES", "assert_error", "error_shape", "walk_pages"]

#: Every error code of §2 with its status (§5). ``UNSUPPORTED`` is also 501/405.
ERROR_CODES: Mapping[str, int] = {
    "UNAUTHENTICATED": 401,
    "UNAUTHORIZED": 403,
    "NOT_FOUND": 404,
    "VALIDATION_FAILED": 400,
    "CONFLICT": 409,
    "RATE_LIMITED": 429,
    "TOO_LARGE": 413,
    "UNSUPPORTED": 415,
    "INTERNAL": 500,
}


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> dict[str, Any]:
    """``response`` is a §5 error envelope with ``status`` and ``code``.

    ``requestId`` equals the ``X-Request-Id`` header, ``message`` is non-empty,
    ``details`` is an object holding at most ``hint`` and ``fields``, and a
    ``VALIDATION_FAILED`` lists its fields (``field``, when given, among them).
    Returns the ``error`` object.
    """
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "requestId", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str), error
    assert error["message"].strip(), error
    request_id = response.headers.get("x-request-id")
    assert request_id, response.headers
    assert error["requestId"] == request_id, (error["requestId"], request_id)
    details = error["details"]
    assert isinstance(details, dict), error
    assert set(details) <= {"hint", "fields"}, details
    if "hint" in details:
        assert isinstance(details["hint"], str), details
    fields = details.get("fields", [])
    assert isinstance(fields, list), details
    for problem in fields:
        assert set(problem) == {"fieldName", "message"}, problem
        assert isinstance(problem["fieldName"], str), problem
        assert problem["fieldName"], problem
        assert isinstance(problem["message"], str), problem
    if code == "VALIDATION_FAILED":
        assert fields, f"VALIDATION_FAILED must list details.fields: {error}"
    if field is not None:
        names = [problem["fieldName"] for problem in fields]
        assert field in names, (field, names)
    return error


def error_shape(response: httpx.Response) -> tuple[int, str, str, Any]:
    """Status, code, message and details: an error minus its per-request id."""
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"], error["details"]


def walk_pages(
    api: Api,
    path: str,
    caller: Caller | None = None,
    *,
    limit: int,
    params: Mapping[str, Any] | None = None,
    max_pages: int = 500,
) -> list[dict[str, Any]]:
    """Every item of a list endpoint, following ``nextCursor`` with page size ``limit``.

    Checks each page: 200, exactly ``{"items", "nextCursor"}``, at most ``limit``
    items, a full page whenever a cursor follows, and ``nextCursor`` null at the
    end (an empty page is only allowed as the first one).
    """
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for number in range(max_pages):
        query: dict[str, Any] = {**(params or {}), "limit": str(limit)}
        if cursor is not None:
            query["cursor"] = cursor
        response = api.get(path, caller, params=query)
        assert response.status_code == 200, (path, query, response.text)
        page = response.json()
        assert set(page) == {"items", "nextCursor"}, page
        assert len(page["items"]) <= limit, (path, number, len(page["items"]))
        items.extend(page["items"])
        cursor = page["nextCursor"]
        if cursor is None:
            assert page["items"] or number == 0, f"{path}: an empty page after a cursor"
            return items
        assert isinstance(cursor, str), page
        assert cursor, page
        assert len(page["items"]) == limit, (path, number, "a short page with a cursor")
    raise AssertionError(f"{path}: no last page after {max_pages} pages")


# --------------------------------------------------------------------------- added by the
# security suites (test_http_internal/security/resilience/envelope)

#: What no response a client sees may hold: tracebacks, source locations, SQL, driver,
#: framework or exception class names, object addresses.
INTERNALS_PATTERNS: tuple[str, ...] = (
    r"Traceback",
    r"File \"",
    r"\.py\b",
    r"<module>",
    r"\bSELECT\b",
    r"\bINSERT\b",
    r"\bUPDATE\b",
    r"\bDELETE\b",
    r"\bWHERE\b",
    r"\bFROM\b",
    r"\bJOIN\b",
    r"(?i)sqlalchemy|sqlite|psycopg|postgres|litestar|msgspec|uvicorn|asyncio",
    r"\b\w+(Error|Exception)\b",
    r"0x[0-9a-fA-F]{6,}",
)


def assert_no_internals(text: str) -> None:
    """``text`` (a response body) shows nothing of the server's insides."""
    for pattern in INTERNALS_PATTERNS:
        match = re.search(pattern, text)
        assert match is None, (pattern, match.group(0) if match else None, text[:500])


def assert_rate_limited(response: httpx.Response) -> int:
    """A ``RATE_LIMITED`` envelope with an integer ``Retry-After`` ≥ 1; returns it."""
    assert_error(response, 429, "RATE_LIMITED")
    retry_after = response.headers.get("retry-after")
    assert retry_after is not None, response.headers
    assert retry_after.isdigit(), retry_after
    assert int(retry_after) >= 1, retry_after
    return int(retry_after)


def json_strings(value: object) -> list[str]:
    """Every string (keys included) in a decoded JSON value."""
    found: list[str] = []
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                found.append(str(key))
                stack.append(inner)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def resolve_schema(document: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI schema that ``schema`` names by ``$ref`` (followed to the end), or itself."""
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/components/schemas/"), ref
        schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return dict(schema)

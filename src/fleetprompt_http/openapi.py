"""What the served OpenAPI document says beyond what Litestar derives from the handlers.

The handlers read their JSON bodies themselves (the core is the only
validator), so Litestar sees no request body. Each route names an
``operation_class`` made by :func:`documented`, which completes its operation:

- the request body: a reference to the core's payload shape (``NewListingPayload``,
  ...), whose JSON Schema :class:`DocumentedComponents` adds to
  ``components/schemas`` (derived from the shape's bounds, never used to validate
  anything), and the example of :mod:`fleetprompt_http.requests`;
- ``Location`` on the ``201`` of an operation that creates a resource with a URL;
- the ``Idempotency-Key`` header, required where §6 requires it;
- the exact values of query parameters (enums, bounds) and of the internal
  redemption headers, in place of Litestar's "optional string";
- who may call: a bearer credential, an optional one (public catalogue), or
  none (health, HMAC-signed internal redemption);
- the ``X-Request-Id`` header on every response, ``Retry-After`` on 429 and 503,
  ``Allow`` on 405 and ``Idempotent-Replayed`` on idempotent writes.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin, get_type_hints

from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType

from fleetprompt_core import AssetKind, IntegerBounds, ListBounds, SearchSort, TextBounds
from fleetprompt_core.base import limits
from fleetprompt_core.policies.pagination import DEFAULT_LIMIT, MAX_LIMIT
from fleetprompt_http.requests import (
    AT_LEAST_ONE,
    BODIES,
    EXAMPLES,
    PRINTABLE_ASCII,
    URL_PATTERN,
    URL_RULES,
)

__all__ = [
    "CURSOR",
    "LIMIT",
    "DocumentedComponents",
    "Idempotency",
    "Security",
    "body_components",
    "choice",
    "documented",
    "schema_of",
]

Idempotency = Literal["required", "accepted"]
#: ``bearer``: a credential is required; ``optional``: anonymous or signed in;
#: ``none``: no bearer credential is read.
Security = Literal["bearer", "optional", "none"]

_JSON: Final = "application/json"
_KEY_HEADER: Final = "Idempotency-Key"
_NULL: Final = Schema(type=OpenAPIType.NULL)
_VALIDATED: Final = (
    "Validated by the server alone: unknown fields are rejected, and every failing field "
    "is listed in one `VALIDATION_FAILED`."
)

# --------------------------------------------------------------------------- bodies


def body_components() -> dict[str, Schema]:
    """The request bodies, for ``components/schemas``: each core payload shape under
    its own name (``NewListingPayload``), as the operations reference them."""
    return {shape.__name__: schema_of(shape) for shape in BODIES}


@dataclasses.dataclass
class DocumentedComponents(Components):
    """``Components`` that keep the request bodies in ``schemas``.

    Litestar replaces ``schemas`` with the ones it derived from the handlers, and
    the handlers declare no body (the core reads it): each assignment here adds
    :func:`body_components` to what is assigned, so the bodies sit beside the
    derived schemas, in name order, built when the document is first asked for.
    """

    def __setattr__(self, name: str, value: object) -> None:
        # Only Litestar's assignment of the derived schemas (never empty: the error
        # envelope is one) adds them; the empty default at construction does not, so
        # creating an app stays cheap and the work waits for the first document.
        if name == "schemas" and isinstance(value, dict) and value:
            value = dict(sorted({**value, **body_components()}.items()))
        super().__setattr__(name, value)


def _reference(shape: type) -> Reference:
    return Reference(ref=f"#/components/schemas/{shape.__name__}")


def _example(value: object) -> object:
    """``value`` as plain JSON (enum members become their values)."""
    return json.loads(json.dumps(value))


def schema_of(annotation: object) -> Schema:
    """JSON Schema for a request shape: a ``TypedDict``, a scalar, a list, an enum, a
    ``Literal`` or ``X | None``, with the core's :class:`~fleetprompt_core.TextBounds`,
    :class:`~fleetprompt_core.ListBounds` and :class:`~fleetprompt_core.IntegerBounds`."""
    metadata: tuple[object, ...] = ()
    if get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata = tuple(extra)
    options = _union_members(annotation)
    nullable = type(None) in options
    inner = [option for option in options if option is not type(None)]
    if len(inner) != 1:
        raise TypeError(f"cannot document {annotation!r}")
    schema = _bounded(_plain_schema(inner[0]), metadata)
    if not nullable:
        return schema
    if isinstance(schema.type, OpenAPIType):
        return dataclasses.replace(schema, type=[schema.type, OpenAPIType.NULL])
    return Schema(one_of=[schema, _NULL])


def _union_members(annotation: object) -> tuple[object, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _plain_schema(annotation: object) -> Schema:
    origin = get_origin(annotation)
    if origin in (typing.NotRequired, typing.Required):
        return schema_of(get_args(annotation)[0])
    if annotation is str:
        return Schema(type=OpenAPIType.STRING)
    if annotation is bool:
        return Schema(type=OpenAPIType.BOOLEAN)
    if annotation is int:
        return Schema(type=OpenAPIType.INTEGER)
    if origin is Literal:
        values = [v.value if isinstance(v, enum.Enum) else v for v in get_args(annotation)]
        return Schema(type=OpenAPIType.STRING, enum=values)
    if origin is list:
        (item,) = get_args(annotation)
        return Schema(type=OpenAPIType.ARRAY, items=schema_of(item))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return choice(annotation)
    if isinstance(annotation, type) and typing.is_typeddict(annotation):
        return _object(annotation)
    raise TypeError(f"cannot document {annotation!r}")


def _object(shape: type) -> Schema:
    hints = get_type_hints(shape, include_extras=True)
    required_keys: frozenset[str] = getattr(shape, "__required_keys__", frozenset())
    # "At least one of these lists, not empty" (A2's grant/revoke).
    one_of_lists = AT_LEAST_ONE.get(shape, ())
    return Schema(
        type=OpenAPIType.OBJECT,
        title=shape.__name__,
        description=_docstring(shape),
        properties={name: schema_of(hint) for name, hint in hints.items()},
        required=[name for name, hint in hints.items() if _required(name, hint, required_keys)]
        or None,
        additional_properties=False,
        any_of=[
            Schema(
                required=[name],
                properties={name: Schema(type=OpenAPIType.ARRAY, min_items=1)},
            )
            for name in one_of_lists
        ]
        or None,
        # ...and no value in two of them at once (a role granted and revoked).
        schema_not=Schema(
            any_of=[
                Schema(
                    required=list(one_of_lists),
                    properties={
                        name: Schema(type=OpenAPIType.ARRAY, contains=Schema(const=value))
                        for name in one_of_lists
                    },
                )
                for value in _values_of(hints[one_of_lists[0]])
            ]
        )
        if one_of_lists
        else None,
    )


def _values_of(hint: object) -> list[str]:
    """The enum values a ``NotRequired[Annotated[list[SomeEnum] | None, ...]]`` field holds."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return [str(item.value) for item in hint]
    for inner in get_args(hint):
        values = _values_of(inner)
        if values:
            return values
    return []


def _required(name: str, hint: object, required_keys: frozenset[str]) -> bool:
    origin = get_origin(hint)
    if origin is typing.NotRequired:
        return False
    return origin is typing.Required or name in required_keys


def _docstring(shape: type) -> str | None:
    doc = shape.__dict__.get("__doc__")
    return inspect.cleandoc(doc).replace("\n", " ") if doc else None


#: What the core refuses in text (``policies.validation.check_text``), as ECMA-262
#: patterns: control characters (category Cc), and in single-line text also the bidi
#: embeddings, overrides and isolates. (The tag characters U+E0000..U+E007F, refused
#: too, have no pattern both ECMA-262 without the ``u`` flag and Python understand.)
SINGLE_LINE: Final = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u202A-\\u202E\\u2066-\\u2069]*$"
MULTILINE: Final = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$"
#: A trimmed required text keeps a visible character (not a space, control or format
#: character).
_VISIBLE: Final = (
    "(?=[\\s\\S]*[^\\s\\u0000-\\u001F\\u007F-\\u00A0\\u00AD\\u2000-\\u200F\\u2028-\\u202F"
    "\\u205F-\\u206F\\u3000\\uE000-\\uF8FF\\uFEFF])"
)


def _text_pattern(item: TextBounds) -> str:
    if item.pattern is not None:
        return item.pattern
    if item.url:
        return URL_PATTERN
    pattern = MULTILINE if item.multiline else SINGLE_LINE
    if item.trimmed and item.min_length > 0:
        pattern = "^" + _VISIBLE + pattern[1:]
    return pattern


def _bounded(schema: Schema, metadata: tuple[object, ...]) -> Schema:
    for item in metadata:
        if isinstance(item, TextBounds):
            notes = [URL_RULES] if item.url else []
            notes += [item.description] if item.description else []
            if item.trimmed:
                notes.append("Length counted after trimming surrounding whitespace.")
            if item.multiline:
                notes.append("Newlines allowed.")
            elif not item.url and item.pattern is None:
                notes.append("No control, bidi override, isolate or tag characters.")
            schema = dataclasses.replace(
                schema,
                max_length=item.max_length,
                min_length=item.min_length or None,
                pattern=_text_pattern(item),
                description=" ".join(notes) or None,
            )
        elif isinstance(item, ListBounds):
            schema = dataclasses.replace(
                schema, max_items=item.max_items, description=item.description
            )
        elif isinstance(item, IntegerBounds):
            notes = [item.description] if item.description else []
            # JSON Schema counts 600000.0 as an integer; the core does not.
            notes.append("Written without a fraction or exponent (`600000`, not `600000.0`).")
            schema = dataclasses.replace(
                schema, minimum=item.minimum, maximum=item.maximum, description=" ".join(notes)
            )
    return schema


# --------------------------------------------------------------------------- parameters


def choice(values: type[enum.Enum] | tuple[str, ...], description: str | None = None) -> Schema:
    """A string that is one of ``values`` (an enum's values, or the strings given)."""
    allowed = [m.value for m in values] if isinstance(values, type) else list(values)
    return Schema(type=OpenAPIType.STRING, enum=allowed, description=description)


LIMIT: Final = Schema(
    type=OpenAPIType.INTEGER,
    minimum=1,
    maximum=MAX_LIMIT,
    default=DEFAULT_LIMIT,
    description=f"Page size, 1..{MAX_LIMIT} (default {DEFAULT_LIMIT}).",
)
CURSOR: Final = Schema(
    type=OpenAPIType.STRING,
    max_length=limits.CURSOR_MAX,
    # base64url(position) "." base64url(MAC): the shape only; a cursor the server did
    # not issue for this query is refused (400), whatever its shape.
    pattern="^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$",
    description="Opaque cursor from a previous page's `nextCursor`, signed by the server "
    "for the same query: only a value the server issued is accepted; anything else, "
    "however well formed, is `VALIDATION_FAILED`.",
)
PAGE: Final[Mapping[str, Schema]] = {"limit": LIMIT, "cursor": CURSOR}


def _labels(max_items: int) -> Schema:
    return Schema(
        type=OpenAPIType.ARRAY,
        items=Schema(
            type=OpenAPIType.STRING,
            min_length=1,
            max_length=limits.LABEL_MAX,
            pattern="^" + _VISIBLE + SINGLE_LINE[1:],
        ),
        max_items=max_items,
        description="Repeat the parameter or separate values with commas; all must match.",
    )


#: P1's filters.
SEARCH: Final[Mapping[str, Schema]] = {
    "q": Schema(
        type=OpenAPIType.STRING,
        max_length=limits.QUERY_MAX,
        pattern=SINGLE_LINE,
        description="Words to find (plain words, no regular expressions).",
    ),
    "tags": _labels(limits.TAGS_MAX),
    "categories": _labels(limits.CATEGORIES_MAX),
    "assetKind": choice(AssetKind),
    "verified": choice(("true", "false"), "`true`: listings of verified publishers only."),
    "sort": choice(
        SearchSort,
        "`relevance` (default with `q`), else `updated`; `installs`: install attempts "
        "over the last 30 days, then the id.",
    ),
    **PAGE,
}

_AUDIT_TEXT: Final = Schema(
    type=OpenAPIType.STRING, min_length=1, max_length=limits.AUDIT_FILTER_MAX, pattern=SINGLE_LINE
)
#: A4's filters.
AUDIT: Final[Mapping[str, Schema]] = {
    "type": dataclasses.replace(_AUDIT_TEXT, description="Event type, e.g. `listing.created`."),
    "listingId": dataclasses.replace(_AUDIT_TEXT, description="Events about this listing."),
    "actorUserId": dataclasses.replace(_AUDIT_TEXT, description="Events by this user."),
    **PAGE,
}

_KEY: Final = Schema(
    type=OpenAPIType.STRING,
    min_length=1,
    max_length=limits.IDEMPOTENCY_KEY_MAX,
    pattern=PRINTABLE_ASCII,
)
#: X1's headers (§7): every one is required; any failure is one `UNAUTHENTICATED`.
REDEEM_HEADERS: Final[Mapping[str, Schema]] = {
    "X-WHS-Delegation-Source": Schema(type=OpenAPIType.STRING, min_length=1),
    "X-WHS-Delegation-Timestamp": Schema(type=OpenAPIType.STRING, pattern="^[0-9]+$"),
    "X-WHS-Delegation-Signature": Schema(type=OpenAPIType.STRING, pattern="^v1="),
}

# --------------------------------------------------------------------------- responses

_REQUEST_ID: Final = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING),
    required=True,
    description="This request's id; error envelopes carry the same `requestId`.",
)
_RETRY_AFTER: Final = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING, pattern="^[0-9]+$"),
    required=True,
    description="Seconds to wait before retrying.",
)
_ALLOW: Final = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING),
    description="The methods the path has (RFC 9110).",
)
_REPLAYED: Final = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING, enum=["true"]),
    description="Present on the stored answer replayed for a repeated idempotency key.",
)


_LOCATION: Final = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING),
    required=True,
    description="The path of the created resource (on a replay too).",
)


def _response_headers(
    status: str, response: OpenAPIResponse, idempotent: bool, location: bool
) -> OpenAPIResponse:
    headers = dict(response.headers or {})
    headers["X-Request-Id"] = _REQUEST_ID
    if status in ("429", "503"):
        headers["Retry-After"] = _RETRY_AFTER
    if status == "405":
        headers["Allow"] = _ALLOW
    if idempotent and status.startswith("2"):
        headers["Idempotent-Replayed"] = _REPLAYED
    if status == "201" and location:
        headers["Location"] = _LOCATION
    return dataclasses.replace(response, headers=headers)


def _without_null(schema: Schema) -> Schema:
    """Litestar documents an optional parameter as ``T | null``; a query string or a
    header has no null: leave ``T``."""
    if schema.one_of and len(schema.one_of) == 2 and _NULL in schema.one_of:
        (kept,) = [option for option in schema.one_of if option != _NULL]
        if isinstance(kept, Schema):
            return dataclasses.replace(kept, description=schema.description)
    return schema


# --------------------------------------------------------------------------- the operation


def documented(
    body: type | None = None,
    *,
    body_required: bool = True,
    location: bool = False,
    idempotency: Idempotency | None = None,
    query: Mapping[str, Schema] | None = None,
    headers: Mapping[str, Schema] | None = None,
    security: Security = "bearer",
) -> type[Operation]:
    """An ``operation_class`` for a route handler.

    ``body`` is the request shape (a core payload ``TypedDict`` named in
    :data:`fleetprompt_http.requests.BODIES`, referenced from ``components/schemas``
    and shown with its example), ``body_required=False`` when the body may be
    omitted; ``location`` when a ``201`` carries the created resource's
    ``Location``; ``idempotency`` says whether
    the ``Idempotency-Key`` header is required or only accepted; ``query`` and
    ``headers`` give the exact schema of the named parameters (and make those
    headers required).
    """
    if body is not None and body not in BODIES:
        raise ValueError(f"{body.__name__} is not among the documented request bodies")
    body_schema = schema_of(body) if body is not None else None
    query_schemas = dict(query or {})
    header_schemas = dict(headers or {})

    def complete(operation: Operation) -> None:
        if body is not None and body_schema is not None:
            example = Example(summary="A typical body", value=_example(EXAMPLES[body]))
            operation.request_body = RequestBody(
                content={
                    _JSON: OpenAPIMediaType(schema=_reference(body), examples={"typical": example})
                },
                required=body_required,
                description=" ".join(filter(None, (body_schema.description, _VALIDATED))),
            )
        operation.parameters = [
            _parameter(parameter, query_schemas, header_schemas, idempotency)
            for parameter in operation.parameters or ()
        ] or None
        if security == "optional":
            operation.security = [{}, {"bearer": []}]
        elif security == "none":
            operation.security = []
        operation.responses = {
            status: _response_headers(status, response, idempotency is not None, location)
            if isinstance(response, OpenAPIResponse)
            else response
            for status, response in (operation.responses or {}).items()
        }

    @dataclasses.dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            complete(self)

    return DocumentedOperation


def _parameter(
    parameter: Any,
    query: Mapping[str, Schema],
    headers: Mapping[str, Schema],
    idempotency: Idempotency | None,
) -> Any:
    if not isinstance(parameter, Parameter) or not isinstance(parameter.schema, Schema):
        return parameter
    schema = parameter.schema
    if parameter.param_in == "header" and parameter.name == _KEY_HEADER and idempotency:
        required = idempotency == "required"
        return dataclasses.replace(
            parameter,
            schema=dataclasses.replace(_KEY, description=parameter.description),
            required=required,
        )
    if parameter.param_in == "query" and parameter.name in query:
        exact = query[parameter.name]
        return dataclasses.replace(
            parameter,
            schema=exact,
            description=exact.description or parameter.description,
        )
    if parameter.param_in == "header" and parameter.name in headers:
        return dataclasses.replace(
            parameter,
            schema=dataclasses.replace(headers[parameter.name], description=parameter.description),
            required=True,
        )
    if parameter.param_in in ("query", "header"):
        return dataclasses.replace(parameter, schema=_without_null(schema))
    return parameter

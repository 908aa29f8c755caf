"""Rows ↔ entities, generated from the entities' attrs fields (ADR 0032).

A :class:`Codec` reads the attrs fields of an entity class once, at import,
and generates two plain Python functions from them (as attrs generates
``__init__``): ``row(entity)`` returns the column values of the entity's
table, ``load(row)`` builds the entity back from a fetched row, with the
exact Python types the core uses. Nothing is written out per field, so a new
field is the entity, its column in :mod:`.tables` and the migration that adds
it (``CONTRIBUTING.md``, "Adding a field to an entity").

How a field is stored follows from its type:

* ``str``, ``int``, ``bool`` and ``None`` unions: one column of the field's name;
* an enum: one column holding its value (an enum member on the way in and out);
* ``tuple[...]``, ``frozenset[...]`` or ``Mapping[str, ...]``: one JSON column
  (a frozenset as a sorted array; tuple items that are attrs classes as objects
  whose keys follow the same flattening rules);
* a nested attrs class (a value object): flattened into the columns
  ``<field>_<name>`` of its own fields, or just ``<name>`` for the value objects
  in :data:`UNPREFIXED`. :class:`RenderedMarkdown` passes through
  ``markdown.current`` when loaded, so HTML from an older renderer is rendered
  again.

A column that is no field (``listings.name_key``) is ``derived``: computed from
the entity when writing, ignored when loading. Every column of a mapped table
is a field or derived, and every field has its column: :class:`Codec` checks
both when it is built, so a field without a column fails at import.

The generated functions index the row by column name (``load``) or by position
in the table's column order (``load_values``, for ``SELECT`` of the whole table:
faster on the read path).
"""

from __future__ import annotations

import enum
import itertools
import linecache
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

import attrs
import sqlalchemy as sa
from sqlalchemy import RowMapping

from fleetprompt_adapters.sql import tables as t
from fleetprompt_adapters.sql.engine import decode_json
from fleetprompt_core.domain.accounts import Account, BrowserSession
from fleetprompt_core.domain.model import (
    ApiToken,
    ArtifactDownload,
    AuditEvent,
    Compat,
    IdempotencyRecord,
    InstallIntent,
    InstallToken,
    Links,
    Listing,
    PublisherProfile,
    Release,
    ReleaseRefs,
    RenderedMarkdown,
    TargetContext,
    User,
)
from fleetprompt_core.domain.search import FIELD_WEIGHTS, ListingCard, name_key, tokenize
from fleetprompt_core.policies import markdown

__all__ = [
    "ACCOUNTS",
    "API_TOKENS",
    "AUDIT_EVENTS",
    "CODECS",
    "IDEMPOTENCY",
    "INSTALL_INTENTS",
    "INSTALL_TOKENS",
    "LISTINGS",
    "LISTING_CARDS",
    "PROFILES",
    "RELEASES",
    "SESSIONS",
    "UNPREFIXED",
    "USERS",
    "Codec",
    "Loader",
    "account_row",
    "api_token_row",
    "audit_row",
    "idempotency_row",
    "intent_row",
    "label_rows",
    "listing_row",
    "profile_row",
    "release_row",
    "session_row",
    "term_rows",
    "to_account",
    "to_api_token",
    "to_audit_event",
    "to_idempotency",
    "to_intent",
    "to_listing",
    "to_profile",
    "to_release",
    "to_session",
    "to_token",
    "to_user",
    "token_row",
    "user_row",
]

E = TypeVar("E")
Row = RowMapping | Mapping[str, Any]

#: Value objects whose fields are stored under their own names, without the
#: ``<field>_`` prefix (``listings.docs_url``, not ``links_docs_url``).
UNPREFIXED: frozenset[type] = frozenset(
    {Links, ReleaseRefs, Compat, TargetContext, ArtifactDownload}
)
#: Applied to a value of the class as it is loaded.
_AFTER_LOAD: Mapping[type, Callable[[Any], Any]] = {RenderedMarkdown: markdown.current}
_CONTAINERS = (tuple, frozenset, Mapping)
_FACTORY: type = type(attrs.Factory(list))
_SCALARS = (str, int, bool)


def _optional(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``; ``(tp, False)`` otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _is_scalar(tp: Any) -> bool:
    """A JSON scalar as it is: ``str``, ``int``, ``bool``, or a union of them (and ``None``)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return all(arg is type(None) or _is_scalar(arg) for arg in typing.get_args(tp))
    return isinstance(tp, type) and issubclass(tp, _SCALARS)


def _plain_default(field: attrs.Attribute[Any]) -> bool:
    """The field has a default value (not a factory) to load when its key is missing."""
    return field.default is not attrs.NOTHING and not isinstance(field.default, _FACTORY)


def _container(tp: Any) -> type | None:
    origin = typing.get_origin(tp)
    if origin is None:
        return None
    for container in _CONTAINERS:
        if isinstance(origin, type) and issubclass(origin, container):
            return container
    return None


def _fields(cls: type) -> tuple[attrs.Attribute[Any], ...]:
    resolved: Any = attrs.resolve_types(cast(Any, cls))
    return tuple(attrs.fields(resolved))


class _Source:
    """Generated source: helper objects the code refers to, and fresh variable names."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.namespace: dict[str, Any] = {}
        #: The generated function that builds each attrs class from a JSON object.
        self.objects: dict[type, str] = {}
        self._names = itertools.count()

    def name(self, stem: str) -> str:
        return f"_{stem}{next(self._names)}"

    def ref(self, value: object, stem: str) -> str:
        """A name under which the generated code sees ``value``."""
        for key, known in self.namespace.items():
            if known is value:
                return key
        key = self.name(stem)
        self.namespace[key] = value
        return key

    def enum_lookup(self, cls: type[enum.Enum]) -> str:
        """A dict from stored value (or member) to member: faster than calling the enum."""
        key = f"_enum_{cls.__name__}"
        self.namespace.setdefault(key, {member.value: member for member in cls})
        return key

    def compile(self, name: str, lines: list[str]) -> Callable[..., Any]:
        source = "\n".join(lines) + "\n"
        filename = f"<fleetprompt mapping {self.owner}.{name}>"
        code = compile(source, filename, "exec")
        # Tracebacks and profilers show the generated lines.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        scope: dict[str, Any] = {}
        exec(code, self.namespace, scope)  # noqa: S102 - source generated from attrs fields only
        return cast(Callable[..., Any], scope[name])


class _Plan:
    """The columns of one entity class, and the expressions that write and read them."""

    def __init__(self, cls: type, source: _Source) -> None:
        self.cls = cls
        self.source = source
        #: ``(column, expression of the value from the entity ``e``)``, in field order.
        self.writes: list[tuple[str, str]] = []
        self.columns: list[str] = []

    # ----------------------------------------------------------------- writing

    def write(self, cls: type, obj: str, prefix: str) -> None:
        for field in _fields(cls):
            tp, _ = _optional(field.type)
            value = f"{obj}.{field.name}"
            if attrs.has(tp) and _container(tp) is None:
                self.write(tp, value, prefix if tp in UNPREFIXED else f"{prefix}{field.name}_")
                continue
            column = prefix + field.name
            self.columns.append(column)
            self.writes.append((column, self._dump(field.type, value, json=False)))

    def _dump(self, tp: Any, value: str, *, json: bool) -> str:
        inner, optional = _optional(tp)
        container = _container(inner)
        if container is not None:
            expression = self._dump_container(inner, container, value)
        elif attrs.has(inner):
            expression = self._dump_object(inner, value)
        elif isinstance(inner, type) and issubclass(inner, enum.Enum):
            # A column takes the member (its ``sa.Enum`` type); JSON takes the value.
            expression = f"{value}.value" if json else value
        elif _is_scalar(inner):
            return value
        else:
            raise TypeError(f"{self.cls.__name__}: no storage for a field of type {tp!r}")
        return f"(None if {value} is None else {expression})" if optional else expression

    def _dump_container(self, tp: Any, container: type, value: str) -> str:
        args = typing.get_args(tp)
        item = self.source.name("x")
        if container is Mapping:
            key_type, value_type = args
            if key_type is not str:
                raise TypeError(f"{self.cls.__name__}: JSON object keys are strings, not {tp!r}")
            dumped = self._dump(value_type, item, json=True)
            if dumped == item:
                return f"dict({value})"
            return f"{{k: {dumped} for k, {item} in {value}.items()}}"
        dumped = self._dump(args[0], item, json=True)
        listed = f"list({value})" if dumped == item else f"[{dumped} for {item} in {value}]"
        return f"sorted({listed})" if container is frozenset else listed

    def _dump_object(self, cls: type, value: str, prefix: str = "") -> str:
        """A JSON object of an attrs value (nested value objects flattened as in columns)."""
        return "{" + ", ".join(self._object_items(cls, value, prefix)) + "}"

    def _object_items(self, cls: type, value: str, prefix: str) -> list[str]:
        items = []
        for field in _fields(cls):
            tp, _ = _optional(field.type)
            member = f"{value}.{field.name}"
            if attrs.has(tp) and _container(tp) is None:
                nested = prefix if tp in UNPREFIXED else f"{prefix}{field.name}_"
                items += self._object_items(tp, member, nested)
            else:
                dumped = self._dump(field.type, member, json=True)
                items.append(f"{prefix + field.name!r}: {dumped}")
        return items

    # ----------------------------------------------------------------- reading

    def read(
        self,
        cls: type,
        get: Callable[[str], str],
        prefix: str,
        defaulted: Callable[[str, object], str] | None = None,
    ) -> str:
        """``cls(...)`` built from the columns (or JSON keys) under ``prefix``.

        ``defaulted(key, default)``, for JSON objects: the expression of a key that
        objects stored before its field existed lack (the field has a default).
        """
        arguments = []
        fields = _fields(cls)
        # Positional arguments are cheaper; by name when the class's __init__ needs it.
        by_name = any(field.kw_only or not field.init for field in fields)
        for field in fields:
            tp, _ = _optional(field.type)
            if attrs.has(tp) and _container(tp) is None:
                nested = prefix if tp in UNPREFIXED else f"{prefix}{field.name}_"
                expression = self.read(tp, get, nested, defaulted)
            elif defaulted is not None and _plain_default(field):
                expression = self._load(field.type, defaulted(prefix + field.name, field.default))
            else:
                expression = self._load(field.type, get(prefix + field.name))
            arguments.append(f"{field.name}={expression}" if by_name else expression)
        built = f"{self.source.ref(cls, cls.__name__)}({', '.join(arguments)})"
        after = _AFTER_LOAD.get(cls)
        if after is not None:
            built = f"{self.source.ref(after, 'after')}({built})"
        return built

    def _load(self, tp: Any, value: str) -> str:
        inner, optional = _optional(tp)
        if optional:
            loaded = self._load(inner, "v")
            if loaded == "v":
                return value  # ``None`` passes through unchanged
            check = self.source.name("optional")
            self.source.namespace[check] = self.source.compile(
                check, [f"def {check}(v):", f"    return None if v is None else {loaded}"]
            )
            return f"{check}({value})"
        container = _container(inner)
        if container is not None:
            return self._load_container(inner, container, value)
        if attrs.has(inner):
            function = self.source.objects.get(inner)
            if function is None:
                function = self.source.objects[inner] = self.source.name("obj")
                body = self.read(
                    inner,
                    lambda key: f"d[{key!r}]",
                    "",
                    lambda key, default: f"d.get({key!r}, {self.source.ref(default, 'default')})",
                )
                self.source.namespace[function] = self.source.compile(
                    function, [f"def {function}(d):", f"    return {body}"]
                )
            return f"{function}({value})"
        if isinstance(inner, type) and issubclass(inner, enum.Enum):
            return f"{self.source.enum_lookup(inner)}[{value}]"
        if isinstance(inner, type) and issubclass(inner, bool):
            return f"bool({value})"
        if _is_scalar(inner):
            return value
        raise TypeError(f"{self.cls.__name__}: no storage for a field of type {tp!r}")

    def _load_container(self, tp: Any, container: type, value: str) -> str:
        args = typing.get_args(tp)
        item = self.source.name("x")
        if container is Mapping:
            loaded = self._load(args[1], item)
            frozen = self.source.ref(types.MappingProxyType, "frozen")
            if loaded == item:
                return f"{frozen}(dict({value}))"
            return f"{frozen}({{k: {loaded} for k, {item} in {value}.items()}})"
        loaded = self._load(args[0], item)
        make = "tuple" if container is tuple else "frozenset"
        if loaded == item:
            return f"{make}({value})"
        empty = "()" if container is tuple else "frozenset()"
        return f"({make}([{loaded} for {item} in {value}]) if {value} else {empty})"


class Codec(Generic[E]):
    """The generated row ↔ entity conversion of one entity class and its table."""

    def __init__(
        self,
        cls: type[E],
        table: sa.Table,
        *,
        derived: Mapping[str, Callable[[E], Any]] | None = None,
    ) -> None:
        self.cls = cls
        self.table = table
        self.derived: Mapping[str, Callable[[E], Any]] = dict(derived or {})
        source = _Source(cls.__name__)
        plan = _Plan(cls, source)
        plan.write(cls, "e", "")
        #: The columns that hold the entity's fields, in field order.
        self.field_columns: tuple[str, ...] = tuple(plan.columns)
        self._check_columns()
        writes = list(plan.writes)
        for column, compute in self.derived.items():
            writes.append((column, f"{source.ref(compute, 'derive')}(e)"))
        body = ", ".join(f"{column!r}: {expression}" for column, expression in writes)
        self.row: Callable[[E], dict[str, Any]] = source.compile(
            "row", ["def row(e):", f"    return {{{body}}}"]
        )
        by_name = plan.read(cls, lambda column: f"r[{column!r}]", "")
        self.load: Callable[[Row], E] = source.compile(
            "load", ["def load(r):", f"    return {by_name}"]
        )
        position = {column.name: index for index, column in enumerate(table.columns)}
        by_position = plan.read(cls, lambda column: f"r[{position[column]}]", "")
        self.load_values: Callable[[Sequence[Any]], E] = source.compile(
            "load_values", ["def load_values(r):", f"    return {by_position}"]
        )

    def _check_columns(self) -> None:
        fields = set(self.field_columns)
        columns = set(self.table.columns.keys())
        missing = sorted(fields - columns)
        unmapped = sorted(columns - fields - set(self.derived))
        overlapping = sorted(fields & set(self.derived))
        if missing or unmapped or overlapping or len(fields) != len(self.field_columns):
            raise ValueError(
                f"{self.cls.__name__} ↔ {self.table.name}: fields without a column {missing}, "
                f"columns that are no field {unmapped}, derived columns that are fields "
                f"{overlapping}"
            )

    def load_all(self, rows: Iterable[Sequence[Any]]) -> list[E]:
        """Entities of rows selected with every column of the table, in table order
        (pass ``result.all()``: one ``fetchall`` is cheaper than a fetch per row)."""
        load = self.load_values
        return [load(row) for row in rows]


class Loader(Generic[E]):
    """The generated ``load_values(row)`` of a class read from a query rather than one
    table (a read model such as :class:`ListingCard`): the query selects :attr:`columns`,
    named by the same flattening rules as a table's, in that order.

    The columns in ``json_text`` arrive as JSON text (the query casts them): the loader
    decodes them itself with ``decode`` (the engine's cached decoder), one call a value
    instead of the driver type's three."""

    def __init__(
        self,
        cls: type[E],
        *,
        json_text: Iterable[str] = (),
        decode: Callable[[str], Any] | None = None,
    ) -> None:
        self.cls = cls
        source = _Source(cls.__name__)
        plan = _Plan(cls, source)
        plan.write(cls, "e", "")
        #: The names of the values a row holds, in order (one per flattened field).
        self.columns: tuple[str, ...] = tuple(plan.columns)
        #: The columns the query selects as JSON text.
        self.json_text: frozenset[str] = frozenset(json_text)
        if not self.json_text <= set(self.columns) or (self.json_text and decode is None):
            raise ValueError(f"{cls.__name__}: JSON text columns {sorted(self.json_text)}")
        position = {column: index for index, column in enumerate(self.columns)}
        decoder = source.ref(decode, "decode") if decode is not None else ""

        def get(column: str) -> str:
            value = f"r[{position[column]}]"
            return f"{decoder}({value})" if column in self.json_text else value

        body = plan.read(cls, get, "")
        self.load_values: Callable[[Sequence[Any]], E] = source.compile(
            "load_values", ["def load_values(r):", f"    return {body}"]
        )

    def load_all(self, rows: Iterable[Sequence[Any]]) -> list[E]:
        """The objects of fetched rows (pass ``result.all()``)."""
        load = self.load_values
        return [load(row) for row in rows]


# --------------------------------------------------------------------------- the mapped entities

USERS = Codec(User, t.users)
PROFILES = Codec(PublisherProfile, t.publisher_profiles)
LISTINGS = Codec(Listing, t.listings, derived={"name_key": lambda listing: name_key(listing.name)})
RELEASES = Codec(Release, t.releases)
INSTALL_INTENTS = Codec(InstallIntent, t.install_intents)
INSTALL_TOKENS = Codec(InstallToken, t.install_tokens)
API_TOKENS = Codec(ApiToken, t.api_tokens)
ACCOUNTS = Codec(Account, t.accounts)
SESSIONS = Codec(BrowserSession, t.browser_sessions)
IDEMPOTENCY = Codec(IdempotencyRecord, t.idempotency_records)
AUDIT_EVENTS = Codec(AuditEvent, t.audit_events)

#: A search page's listing card (ADR 0040), read by ``search.py`` (JSON columns as text).
LISTING_CARDS = Loader(
    ListingCard,
    json_text=[
        c
        for c in Loader(ListingCard).columns
        if c in t.listings.c and isinstance(t.listings.c[c].type, sa.JSON)
    ],
    decode=decode_json,
)

#: A listing's description read beside its card (``search.detail_of``): the columns
#: ``description_<column>`` of ``listings``.
DESCRIPTIONS = Loader(RenderedMarkdown)

#: Every entity stored in a table of its own, with its codec.
CODECS: tuple[Codec[Any], ...] = (
    USERS,
    PROFILES,
    LISTINGS,
    RELEASES,
    INSTALL_INTENTS,
    INSTALL_TOKENS,
    API_TOKENS,
    ACCOUNTS,
    SESSIONS,
    IDEMPOTENCY,
    AUDIT_EVENTS,
)

# The names the repositories, the search engine and the benchmarks use.
user_row, to_user = USERS.row, USERS.load
profile_row, to_profile = PROFILES.row, PROFILES.load
listing_row, to_listing = LISTINGS.row, LISTINGS.load
release_row, to_release = RELEASES.row, RELEASES.load
intent_row, to_intent = INSTALL_INTENTS.row, INSTALL_INTENTS.load
token_row, to_token = INSTALL_TOKENS.row, INSTALL_TOKENS.load
api_token_row, to_api_token = API_TOKENS.row, API_TOKENS.load
account_row, to_account = ACCOUNTS.row, ACCOUNTS.load
session_row, to_session = SESSIONS.row, SESSIONS.load
idempotency_row, to_idempotency = IDEMPOTENCY.row, IDEMPOTENCY.load
audit_row, to_audit_event = AUDIT_EVENTS.row, AUDIT_EVENTS.load


# --------------------------------------------------------------------------- search tables


def label_rows(listing: Listing, kinds: tuple[str, str]) -> list[dict[str, Any]]:
    """Rows of ``listing_labels`` for a published listing: ``kinds`` = (tag, category) names."""
    tag_kind, category_kind = kinds
    common = {
        "listing_id": listing.listing_id,
        "asset_kind": listing.asset_kind,
        "updated_at_ms": listing.updated_at_ms,
        "created_at_ms": listing.created_at_ms,
        "name_key": name_key(listing.name),
    }
    labels = {(tag_kind, tag) for tag in listing.tags}
    labels |= {(category_kind, category) for category in listing.categories}
    return [{"kind": kind, "value": value, **common} for kind, value in sorted(labels)]


def term_rows(listing: Listing) -> list[dict[str, Any]]:
    """Rows of ``listing_terms``: each distinct token with the fields it occurs in."""
    fields: dict[str, Iterable[str]] = {
        "name": tokenize(listing.name),
        "labels": (
            token for label in (*listing.tags, *listing.categories) for token in tokenize(label)
        ),
        "summary": tokenize(listing.summary),
    }
    assert set(fields) == set(FIELD_WEIGHTS), "the index must cover every weighted field"
    flags: dict[str, dict[str, int]] = {}
    for field, tokens in fields.items():
        for token in tokens:
            flags.setdefault(token, {"in_name": 0, "in_labels": 0, "in_summary": 0})[
                f"in_{field}"
            ] = 1
    return [
        {
            "token": token,
            "listing_id": listing.listing_id,
            "updated_at_ms": listing.updated_at_ms,
            **columns,
        }
        for token, columns in flags.items()
    ]

"""The SQL mapping generated from the entities' attrs fields (ADR 0032).

Every attrs field of every mapped entity has its column, every column is a
field (or derived from one), and any value the entity can hold comes back
equal from the database, on SQLite and PostgreSQL, through the engine the
adapter uses (its JSON decoding included).
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import databases
from fleetprompt_adapters.sql import mapping, tables
from fleetprompt_core.base.enums import AssetKind, ListingStatus
from fleetprompt_core.domain.model import Image, Links, Listing, Moderation
from fleetprompt_core.domain.search import name_key
from fleetprompt_core.policies.markdown import RenderedMarkdown, rendered
from strategies import text_characters

BACKENDS = ["sqlite", "postgres"]
_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_TEXT = st.text(text_characters(multiline=True), max_size=12)


def _leaves(cls: type) -> int:
    """How many stored values an entity has: its fields, value objects counted by their fields."""
    count = 0
    for field in attrs.fields(attrs.resolve_types(cls)):  # type: ignore[misc]
        tp = _without_none(field.type)
        if attrs.has(tp) and typing.get_origin(tp) is None:
            count += _leaves(tp)
        else:
            count += 1
    return count


def _without_none(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


# --------------------------------------------------------------------------- columns


@pytest.mark.parametrize("codec", mapping.CODECS, ids=lambda codec: codec.cls.__name__)
def test_every_attrs_field_of_every_mapped_entity_has_exactly_one_column(
    codec: mapping.Codec[Any],
) -> None:
    columns = set(codec.table.columns.keys())

    assert len(codec.field_columns) == _leaves(codec.cls)
    assert len(set(codec.field_columns)) == len(codec.field_columns)
    assert set(codec.field_columns) <= columns
    assert columns - set(codec.field_columns) == set(codec.derived)


def test_every_table_holding_entities_has_a_codec() -> None:
    """The search tables, the catalogue version and the search log hold no entity."""
    derived_only = {
        "listing_labels",
        "listing_terms",
        "catalog_version",
        "search_log",
        "search_log_head",
    }
    mapped = {codec.table.name for codec in mapping.CODECS}

    assert mapped | derived_only == set(tables.metadata.tables)


def test_a_field_without_a_column_is_refused_when_the_codec_is_built() -> None:
    @attrs.frozen
    class Widget:
        widget_id: str
        colour: str

    table = sa.Table("widgets", sa.MetaData(), sa.Column("widget_id", sa.Text, primary_key=True))

    with pytest.raises(ValueError, match=r"fields without a column \['colour'\]"):
        mapping.Codec(Widget, table)


def test_a_column_that_is_no_field_is_refused_unless_derived() -> None:
    @attrs.frozen
    class Widget:
        widget_id: str

    def table() -> sa.Table:
        return sa.Table(
            "widgets",
            sa.MetaData(),
            sa.Column("widget_id", sa.Text, primary_key=True),
            sa.Column("widget_key", sa.Text),
        )

    with pytest.raises(ValueError, match=r"columns that are no field \['widget_key'\]"):
        mapping.Codec(Widget, table())
    codec = mapping.Codec(Widget, table(), derived={"widget_key": lambda w: w.widget_id.lower()})
    assert codec.row(Widget("A")) == {"widget_id": "A", "widget_key": "a"}


def test_a_field_type_without_a_storage_rule_is_refused() -> None:
    @attrs.frozen
    class Widget:
        widget_id: str
        weight: float

    table = sa.Table(
        "widgets",
        sa.MetaData(),
        sa.Column("widget_id", sa.Text, primary_key=True),
        sa.Column("weight", sa.Float),
    )

    with pytest.raises(TypeError, match="no storage for a field of type"):
        mapping.Codec(Widget, table)


def test_value_objects_flatten_into_prefixed_columns_unless_unprefixed() -> None:
    listing = mapping.LISTINGS.field_columns

    assert {"description_markdown", "description_html", "description_renderer"} <= set(listing)
    assert {"moderation_flagged", "moderation_reason"} <= set(listing)
    assert {"docs_url", "repo_url"} <= set(listing)  # Links is unprefixed


# --------------------------------------------------------------------------- round trips


def _values(tp: Any) -> st.SearchStrategy[Any]:
    """Any value of the type ``tp`` the entity may hold (as the database can store it)."""
    inner = _without_none(tp)
    if inner is not tp:
        return st.none() | _values(inner)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_values(arg) for arg in args))
    if tp is type(None):
        return st.none()
    if tp is RenderedMarkdown:
        # Stored HTML of this renderer (older renderers' HTML is rendered again on load).
        return st.builds(rendered, _TEXT)
    if origin is tuple:
        return st.lists(_values(args[0]), max_size=3).map(tuple)
    if origin is frozenset:
        return st.frozensets(_values(args[0]), max_size=3)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return st.dictionaries(_TEXT, _values(args[1]), max_size=3).map(types.MappingProxyType)
    if attrs.has(tp):
        fields = attrs.fields(attrs.resolve_types(tp))
        return st.builds(tp, **{field.name: _values(field.type) for field in fields})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if tp is bool:
        return st.booleans()
    if tp is int:
        return _INT64
    if tp is str:
        return _TEXT
    raise TypeError(tp)  # pragma: no cover - a new field type needs a strategy here


@pytest.fixture(scope="module")
def _sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = databases.sqlite_engine(Path(tmp_path_factory.mktemp("sql-mapping")))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def _postgres() -> Iterator[sa.Engine]:
    engine = databases.postgres_engine()
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest) -> sa.Engine:
    """The adapter's engine (``sql.create_engine``) on a migrated schema."""
    return request.getfixturevalue("_sqlite" if request.param == "sqlite" else "_postgres")


def _without_foreign_keys(connection: sa.Connection) -> None:
    """Rows stored alone: the entities' references point nowhere (rolled back after)."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    else:
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")


def _entities(codec: mapping.Codec[Any]) -> st.SearchStrategy[Any]:
    return _values(codec.cls)


@pytest.mark.parametrize("codec", mapping.CODECS, ids=lambda codec: codec.cls.__name__)
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_mapped_entity_round_trips_through_its_table(
    engine: sa.Engine, codec: mapping.Codec[Any], data: st.DataObject
) -> None:
    entity = data.draw(_entities(codec))
    with engine.connect() as connection, connection.begin() as transaction:
        _without_foreign_keys(connection)
        # The PostgreSQL database is the run's, shared with other suites: the row is
        # stored alone in its table (the deletion is rolled back with the rest).
        connection.execute(sa.delete(codec.table))
        connection.execute(sa.insert(codec.table), [codec.row(entity)])
        (row,) = connection.execute(sa.select(codec.table)).all()
        transaction.rollback()

    assert codec.load(row._mapping) == entity
    assert codec.load_values(row) == entity
    assert codec.load_all([row]) == [entity]


def _a_listing(**changes: Any) -> Listing:
    listing = Listing(
        listing_id="lst_1",
        publisher_user_id="usr_1",
        asset_kind=AssetKind.WHS_AGENT,
        status=ListingStatus.DRAFT,
        name="DÉJÀ Vu",
        summary="",
        description=rendered(""),
        tags=(),
        categories=(),
        images=(),
        links=Links(),
        moderation=Moderation(),
        created_at_ms=1,
        updated_at_ms=1,
    )
    return attrs.evolve(listing, **changes)


def test_derived_columns_are_written_from_the_entity_and_ignored_when_loading() -> None:
    listing = _a_listing()
    row = mapping.listing_row(listing)

    assert row["name_key"] == name_key("DÉJÀ Vu") == "déjà vu"
    assert mapping.to_listing({**row, "name_key": "anything"}) == listing


def test_a_json_object_stored_before_a_defaulted_field_existed_loads_with_the_default() -> None:
    """An image stored without ``alt`` (a field with a default) loads with ``alt=""``."""
    row = mapping.listing_row(_a_listing(images=(Image("https://images.example.com/a.png"),)))
    row["images"] = [{"url": "https://images.example.com/a.png"}]

    assert mapping.to_listing(row).images == (Image("https://images.example.com/a.png", ""),)

"""The library's public face: ``fleetprompt_core`` exports every type its use cases show.

Like attrs or httpx, a user imports what they see from the package itself:
every class in a public use-case signature (and in the fields of what those
return) is exported, ``__all__`` is exactly what the package offers, and every
exported class and public method says what it does.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from pathlib import Path

import attrs

import fleetprompt_core
from fleetprompt_adapters.memory import bootstrap
from fleetprompt_core import FleetPrompt, Runtime


def _core_types(annotation: object) -> set[type]:
    """The classes of ``fleetprompt_core`` an annotation mentions (through unions, generics)."""
    found: set[type] = set()
    if isinstance(annotation, type) and annotation.__module__.startswith("fleetprompt_core"):
        found.add(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(origin, type) and origin.__module__.startswith("fleetprompt_core"):
        found.add(origin)
    for argument in typing.get_args(annotation):
        found |= _core_types(argument)
    return found


def _signature_types(function: object) -> set[type]:
    found: set[type] = set()
    for annotation in typing.get_type_hints(function).values():
        found |= _core_types(annotation)
    return found


def _public_members(cls: type) -> dict[str, object]:
    """Methods and properties a class defines itself, without a leading underscore."""
    members: dict[str, object] = {}
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            members[name] = member.fget
        elif isinstance(member, (staticmethod, classmethod)):
            members[name] = member.__func__
        elif inspect.isfunction(member):
            members[name] = member
    return members


def _use_case_surface() -> set[type]:
    """Every core class reachable from the use cases of a :class:`FleetPrompt`: their
    parameters (payload shapes included) and results, and the fields and methods (or
    keys) of those, transitively (the
    wired :class:`Runtime` and its ports are the adapters' side, not the user's)."""
    app = bootstrap()
    todo = [type(service) for name, service in vars(app).items() if name != "runtime"]
    seen: set[type] = {FleetPrompt}
    while todo:
        cls = todo.pop()
        if cls in seen or cls is Runtime:
            continue
        seen.add(cls)
        if issubclass(cls, enum.Enum):
            continue
        if attrs.has(cls):
            hints = typing.get_type_hints(cls)
            for field in attrs.fields(cls):
                todo.extend(_core_types(hints.get(field.name)))
        if typing.is_typeddict(cls):  # a payload shape: the shapes of its keys too
            for hint in typing.get_type_hints(cls).values():
                todo.extend(_core_types(hint))
        for member in _public_members(cls).values():
            todo.extend(_signature_types(member))
    return seen


def test_every_type_in_a_use_case_signature_is_exported() -> None:
    exported = set(fleetprompt_core.__all__)
    missing = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _use_case_surface()
        if cls.__name__ not in exported or getattr(fleetprompt_core, cls.__name__) is not cls
    )
    assert missing == []


def test_all_is_exactly_the_public_surface() -> None:
    """Nothing public is left out of ``__all__``, nothing in it is missing or repeated."""
    names = fleetprompt_core.__all__
    assert len(names) == len(set(names))
    assert names == sorted(names, key=lambda n: (n.startswith("_"), n))
    public = {
        name
        for name, value in vars(fleetprompt_core).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(names) - {"__version__"} == public
    for name in names:
        assert hasattr(fleetprompt_core, name), name


def test_every_exported_class_and_public_method_has_a_docstring() -> None:
    undocumented: list[str] = []
    for name in fleetprompt_core.__all__:
        cls = getattr(fleetprompt_core, name)
        if not isinstance(cls, type):
            continue
        if not (cls.__dict__.get("__doc__") or "").strip():
            undocumented.append(name)
        if issubclass(cls, enum.Enum):
            continue
        undocumented.extend(
            f"{name}.{member_name}"
            for member_name, member in _public_members(cls).items()
            if not (getattr(member, "__doc__", None) or "").strip()
        )
    assert undocumented == []


def test_the_api_reference_names_every_use_case() -> None:
    """docs/api.md lists each service's methods: a new use case is documented or this fails."""
    reference = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text("utf-8")
    rows = {
        match.group(1): set(re.findall(r"`(\w+)`", match.group(2)))
        for match in re.finditer(r"^\| `fp\.(\w+)` \|[^|]*\|(.*)\|$", reference, re.M)
    }
    missing = [
        f"fp.{name}.{method}"
        for name, service in vars(bootstrap()).items()
        if name != "runtime"
        for method in _public_members(type(service))
        if method not in rows.get(name, set())
    ]
    assert missing == []

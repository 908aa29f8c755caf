"""The typed payload shapes of the library API: every use case names its shape, and
the shapes say what the core does.

The HTTP bodies (keys, bounds, examples) are held against the running app in
``tests/contract/test_http_openapi.py``; here: the signatures, and the one shape
no HTTP endpoint takes (sign-up, used by the web pages).
"""

from __future__ import annotations

import inspect
import types
import typing

import pytest

import fleetprompt_core
from fleetprompt_adapters.memory import bootstrap
from fleetprompt_adapters.passwords import Argon2PasswordHasher
from fleetprompt_core import (
    CoreSettings,
    IntegerBounds,
    ListBounds,
    SignUpPayload,
    TextBounds,
    ValidationFailed,
)
from fleetprompt_core.services.runtime import Call

FAST = Argon2PasswordHasher(time_cost=1, memory_cost_kib=64, parallelism=1)


def _payload_parameters() -> dict[str, object]:
    """``service.method`` → the annotation of its ``payload`` parameter, for every use case."""
    found: dict[str, object] = {}
    for name, service in vars(bootstrap()).items():
        if name == "runtime":
            continue
        for method_name, method in inspect.getmembers(type(service), inspect.isfunction):
            if method_name.startswith("_"):
                continue
            hints = typing.get_type_hints(method)
            if "payload" in inspect.signature(method).parameters:
                found[f"{name}.{method_name}"] = hints["payload"]
    return found


def test_every_use_case_payload_names_its_exported_shape() -> None:
    """No ``payload: object`` left: each names a ``TypedDict`` of ``fleetprompt_core``
    (beside ``Untrusted``, since the core validates whatever it is given)."""
    parameters = _payload_parameters()
    assert len(parameters) >= 16, sorted(parameters)
    unnamed = []
    for where, annotation in parameters.items():
        shapes = [
            arg
            for arg in typing.get_args(annotation)
            if typing.is_typeddict(arg) and getattr(fleetprompt_core, arg.__name__, None) is arg
        ]
        if not shapes or object not in typing.get_args(annotation):
            unnamed.append(f"{where}: {annotation}")
    assert unnamed == []


def test_every_exported_shape_is_a_documented_typeddict_with_bounded_text() -> None:
    """Each payload shape says what it is for, and no text or list field goes without
    the bound the core enforces."""
    shapes = [
        getattr(fleetprompt_core, name)
        for name in fleetprompt_core.__all__
        if name.endswith(("Payload", "Input"))
    ]
    assert len(shapes) >= 20
    unbounded = []
    for shape in shapes:
        assert typing.is_typeddict(shape), shape
        assert (shape.__doc__ or "").strip(), shape
        for key, hint in typing.get_type_hints(shape, include_extras=True).items():
            text = repr(hint)
            if (("str" in text and "Literal" not in text) or "list[" in text) and not (
                "Bounds(" in text or typing.is_typeddict(_inner(hint))
            ):
                unbounded.append(f"{shape.__name__}.{key}: {text}")
    assert unbounded == []


def _inner(hint: object) -> object:
    """The type inside ``NotRequired[...]``, ``Annotated[...]`` and ``X | None``."""
    while True:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) in (typing.NotRequired, typing.Annotated) or (
            len(args) == 1 and typing.get_origin(hint) in (typing.Union, types.UnionType)
        ):
            hint = args[0]
            continue
        return hint


def _bounds_of(shape: type) -> dict[str, TextBounds]:
    bounds: dict[str, TextBounds] = {}
    for key, hint in typing.get_type_hints(shape, include_extras=True).items():
        for item in getattr(_annotated(hint), "__metadata__", ()):
            if isinstance(item, TextBounds | ListBounds | IntegerBounds):
                assert isinstance(item, TextBounds), (key, item)
                bounds[key] = item
    return bounds


def _annotated(hint: object) -> object:
    while typing.get_origin(hint) is typing.NotRequired:
        (hint,) = typing.get_args(hint)
    return hint


_SIGN_UP: SignUpPayload = {
    "username": "alice",
    "email": "alice@example.com",
    "displayName": "Alice",
    "password": "correct horse battery staple 42",
}


def _sign_up_problems(payload: object) -> dict[str, list[str]]:
    app = bootstrap(settings=CoreSettings(signup_enabled=True), passwords=FAST)
    try:
        app.accounts.sign_up(Call(client="203.0.113.7"), payload)
    except ValidationFailed as error:
        problems: dict[str, list[str]] = {}
        for field in error.fields:
            problems.setdefault(field.field_name, []).append(field.message)
        return problems
    return {}


def test_the_sign_up_shape_is_what_sign_up_reads() -> None:
    """Every key of ``SignUpPayload`` is read (a valid one signs up), and nothing else is."""
    assert set(SignUpPayload.__annotations__) == set(_SIGN_UP)
    assert _sign_up_problems(_SIGN_UP) == {}
    assert _sign_up_problems({**_SIGN_UP, "zzUnknown": 1}) == {
        "zzUnknown": ["is not a known field"]
    }
    missing = dict.fromkeys(SignUpPayload.__required_keys__, "is required")
    assert {k: v[0] for k, v in _sign_up_problems({}).items()} == missing


def _long(key: str, length: int) -> str:
    if key == "email":
        return "a" * (length - len("@example.com")) + "@example.com"
    if key == "password":
        return ("correct horse battery staple " * 20)[:length]
    return "a" * length


@pytest.mark.parametrize("key", sorted(_bounds_of(SignUpPayload)))
def test_the_sign_up_bounds_are_the_ones_sign_up_enforces(key: str) -> None:
    """Just past each documented maximum (and below each minimum) the field is refused,
    naming the number; at the maximum it is not refused for its length."""
    bound = _bounds_of(SignUpPayload)[key]
    past = _sign_up_problems({**_SIGN_UP, key: _long(key, bound.max_length + 1)}).get(key, [])
    assert any(str(bound.max_length) in message for message in past), past
    at = _sign_up_problems({**_SIGN_UP, key: _long(key, bound.max_length)}).get(key, [])
    assert not [m for m in at if "at most" in m or "at least" in m], at
    if bound.min_length > 1:
        short = _sign_up_problems({**_SIGN_UP, key: _long(key, bound.min_length - 1)})
        assert any(str(bound.min_length) in m for m in short.get(key, [])), short

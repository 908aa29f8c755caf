"""Input validation that reports every failing field at once.

Use cases receive JSON-like payloads (what a client sends, camelCase keys) and
turn them into domain values here. A :class:`Problems` collector gathers one
:class:`FieldError` per failing field, with wire paths such as
``links.docsUrl``, ``tags[3]`` or ``artifacts[0].download.mode``; the parser
raises a single ``VALIDATION_FAILED`` listing them all. Unknown fields are
errors too, so a typo never passes silently.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Collection, Mapping
from typing import Final, TypeVar

from fleetprompt_core.base import limits
from fleetprompt_core.base.errors import FieldError, ValidationFailed

__all__ = [
    "MISSING",
    "Problems",
    "Reader",
    "has_reordering",
    "join",
]

E = TypeVar("E", bound=enum.Enum)


class _Missing(enum.Enum):
    MISSING = "MISSING"


#: Marker for a key absent from the payload (as opposed to an explicit ``null``).
MISSING: Final = _Missing.MISSING

_MAX_INT: Final = limits.JSON_INTEGER_MAX


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


#: Characters that reorder or hide text (Trojan Source, CVE-2021-42574): the bidi
#: embeddings and overrides U+202A..U+202E, the bidi isolates U+2066..U+2069 and the
#: Unicode tag block U+E0000..U+E007F. Refused in single-line fields (names,
#: summaries, labels, versions, ...), where they can make one listing display as
#: another; see ADR 0022.
_REORDERING: Final = re.compile("[\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]")


def has_reordering(text: str) -> bool:
    """Whether ``text`` holds a bidi embedding, override or isolate, or a tag character."""
    return _REORDERING.search(text) is not None


def _has_control(text: str, *, allow_newlines: bool) -> bool:
    for char in text:
        if allow_newlines and char in "\n\r\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            return True
    return False


class Problems:
    """Collects field errors; :meth:`raise_if_any` raises them together."""

    def __init__(self) -> None:
        self._errors: list[FieldError] = []

    def add(self, field_name: str, message: str) -> None:
        self._errors.append(FieldError(field_name, message))

    def __bool__(self) -> bool:
        return bool(self._errors)

    @property
    def errors(self) -> tuple[FieldError, ...]:
        return tuple(self._errors)

    def raise_if_any(self) -> None:
        if self._errors:
            raise ValidationFailed(self._errors)


class Reader:
    """Reads typed fields from one JSON object, recording problems under ``path``."""

    def __init__(
        self,
        data: object,
        problems: Problems,
        path: str = "",
        *,
        allowed: Collection[str] | None = None,
        required: bool = True,
    ) -> None:
        self.problems = problems
        self.path = path
        self.valid = True
        if data is None and not required:
            self._data: Mapping[str, object] = {}
            return
        if not isinstance(data, Mapping):
            problems.add(path or "body", "must be a JSON object")
            self._data = {}
            self.valid = False
            return
        self._data = data
        if allowed is not None:
            for key in data:
                if not isinstance(key, str) or key not in allowed:
                    name = key if isinstance(key, str) else repr(key)
                    problems.add(join(path, _printable(name)), "is not a known field")

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> object:
        return self._data.get(key, MISSING)

    def at(self, key: str | int) -> str:
        return join(self.path, key)

    # -- scalars ---------------------------------------------------------------------------

    def text(
        self,
        key: str,
        *,
        max_len: int,
        min_len: int = 0,
        required: bool = False,
        trim: bool = False,
        multiline: bool = False,
        nullable: bool = True,
    ) -> str | None:
        """A string field. Absent (or ``null`` when ``nullable``) ⇒ ``None``."""
        value = self.raw(key)
        return check_text(
            value,
            self.at(key),
            self.problems,
            max_len=max_len,
            min_len=min_len,
            required=required,
            trim=trim,
            multiline=multiline,
            nullable=nullable,
        )

    def integer(
        self, key: str, *, minimum: int, maximum: int = _MAX_INT, required: bool = False
    ) -> int | None:
        value = self.raw(key)
        path = self.at(key)
        if value is MISSING or value is None:
            if required:
                self.problems.add(path, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.add(path, "must be an integer")
            return None
        if not minimum <= value <= maximum:
            self.problems.add(path, f"must be between {minimum} and {maximum}")
            return None
        return value

    def choice(self, key: str, enum_type: type[E], *, required: bool = False) -> E | None:
        value = self.raw(key)
        return check_choice(value, self.at(key), self.problems, enum_type, required=required)

    def child(self, key: str, *, allowed: Collection[str], required: bool = False) -> Reader | None:
        """A nested object; ``None`` when absent or null (and not required)."""
        value = self.raw(key)
        path = self.at(key)
        if value is MISSING or value is None:
            if required:
                self.problems.add(path, "is required")
            return None
        reader = Reader(value, self.problems, path, allowed=allowed)
        return reader if reader.valid else None

    def array(self, key: str, *, max_items: int) -> list[tuple[str, object]] | None:
        """Items of a list field with their paths; ``None`` when absent or null."""
        value = self.raw(key)
        path = self.at(key)
        if value is MISSING or value is None:
            return None
        if not isinstance(value, list | tuple):
            self.problems.add(path, "must be a list")
            return None
        if len(value) > max_items:
            self.problems.add(path, f"must have at most {max_items} items")
            return None
        return [(join(path, index), item) for index, item in enumerate(value)]


_FIELD_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")


def _printable(text: str) -> str:
    """An unknown key as it may be echoed in an error: only short identifier-like names.

    Anything else (long, odd characters, token-shaped) is reported as
    ``<unknown>``, so an error never echoes a secret a client put in a key.
    """
    return text if _FIELD_NAME.fullmatch(text) else "<unknown>"


def check_text(
    value: object,
    path: str,
    problems: Problems,
    *,
    max_len: int,
    min_len: int = 0,
    required: bool = False,
    trim: bool = False,
    multiline: bool = False,
    nullable: bool = True,
) -> str | None:
    """Validate one string value; see :meth:`Reader.text`."""
    if value is MISSING or (value is None and nullable):
        if required:
            problems.add(path, "is required")
        return None
    if not isinstance(value, str):
        problems.add(path, "must be a string")
        return None
    if "\x00" in value:
        problems.add(path, "must not contain NUL characters")
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        problems.add(path, "must be valid Unicode text")
        return None
    if _has_control(value, allow_newlines=multiline):
        problems.add(path, "must not contain control characters")
        return None
    if not multiline and has_reordering(value):
        problems.add(path, "must not contain bidirectional override, isolate or tag characters")
        return None
    if trim:
        value = value.strip()
    if len(value) > max_len:
        problems.add(path, f"must be at most {max_len} characters")
        return None
    if len(value) < min_len:
        problems.add(path, "is required" if not value else f"must be at least {min_len} characters")
        return None
    if trim and min_len > 0 and not any(_visible(char) for char in value):
        problems.add(path, "must contain a visible character")
        return None
    return value


def _visible(char: str) -> bool:
    """Not a separator, control, format or unassigned character."""
    return unicodedata.category(char)[0] not in "ZC"


def check_choice(
    value: object, path: str, problems: Problems, enum_type: type[E], *, required: bool = False
) -> E | None:
    if value is MISSING or value is None:
        if required:
            problems.add(path, "is required")
        return None
    for member in enum_type:
        if isinstance(value, str) and member.value == value:
            return member
    allowed = ", ".join(str(m.value) for m in enum_type)
    problems.add(path, f"must be one of: {allowed}")
    return None


VERSION_PATTERN: Final = re.compile(f"[0-9A-Za-z.+\\-]{{1,{limits.VERSION_MAX}}}")
SHA256_PATTERN: Final = re.compile(f"[0-9a-fA-F]{{{limits.SHA256_HEX_LENGTH}}}")

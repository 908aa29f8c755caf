"""Account rules: usernames, e-mail addresses and passwords (§12, NIST SP 800-63B-4).

Passwords follow SP 800-63B-4 §3.1.1.2 for a password used as the only
factor: at least 15 characters (counted in Unicode code points, after NFKC
normalisation), at least 64 accepted (we take up to 256), every printable
character and space allowed, **no composition rules**, never truncated, and
refused when it is commonly used, expected or compromised: on the bundled
blocklist (``common_passwords.txt``), one short unit repeated, a run of
consecutive characters, or built from the account's own username or e-mail
address (context-specific words). The same checks run on sign-up, on a
password change and for operator-set passwords; sign-in never re-checks them
(an old password keeps working until its owner changes it).

The password is normalised (NFKC) before it is hashed, so the same password
typed on two keyboards that produce different code points still matches.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from importlib import resources
from typing import Final

from fleetprompt_core.base import limits
from fleetprompt_core.policies.validation import MISSING, Problems, check_text

__all__ = [
    "PASSWORD_MAX",
    "PASSWORD_MIN",
    "USERNAME_MAX",
    "USERNAME_MIN",
    "check_email",
    "check_new_password",
    "check_username",
    "normalize_identifier",
    "normalize_password",
]

#: SP 800-63B-4: at least 15 characters when the password is the only factor.
PASSWORD_MIN: Final = 15
#: SP 800-63B-4: verifiers SHOULD accept at least 64; the hash takes any length.
PASSWORD_MAX: Final = 256
USERNAME_MIN: Final = 3
USERNAME_MAX: Final = 32

_USERNAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]*")
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
#: Context-specific words of this service (SP 800-63B-4: the service's name).
_SERVICE_WORDS: Final = ("fleetprompt",)
_SEQUENCES: Final = (
    "0123456789" * 3,
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
    "qwertzuiopasdfghjklyxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
)


@functools.cache
def _blocklist() -> frozenset[str]:
    text = resources.files(__package__).joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        _folded(line) for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _folded(text: str) -> str:
    """Case- and space-insensitive form used for the blocklist and context checks."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalize_password(password: str) -> str:
    """The password as it is hashed and verified: NFKC, nothing removed, never truncated."""
    return unicodedata.normalize("NFKC", password)


def normalize_identifier(identifier: str) -> str:
    """A username or e-mail address as typed at sign-in, in its stored form."""
    return identifier.strip().lower()


def check_username(value: object, problems: Problems, path: str = "username") -> str | None:
    """3..32 of ``a-z 0-9 . _ -`` starting with a letter or digit (lower-cased first).

    A username is also the user's external id (the CLI names users by it).
    """
    text = check_text(value, path, problems, max_len=USERNAME_MAX, required=True, trim=True)
    if text is None:
        return None
    text = text.lower()
    if len(text) < USERNAME_MIN:
        problems.add(path, f"must be at least {USERNAME_MIN} characters")
        return None
    if not text.isascii() or _USERNAME.fullmatch(text) is None:
        problems.add(
            path,
            "may use only letters a-z, digits, '.', '_' and '-', starting with a letter or digit",
        )
        return None
    return text


def check_email(value: object, problems: Problems, path: str = "email") -> str | None:
    """An optional address (``None`` or empty ⇒ none): one ``@``, a dotted domain, ≤ 254."""
    text = check_text(value, path, problems, max_len=limits.EMAIL_MAX, trim=True)
    if not text:
        return None
    if _EMAIL.fullmatch(text) is None:
        problems.add(path, "must be an e-mail address such as name@example.com")
        return None
    return text.lower()


def _is_repetition(folded: str) -> bool:
    """One unit of at most 4 characters repeated (``aaaa…``, ``abcabc…``)."""
    return any(
        len(folded) % size == 0 and folded == folded[:size] * (len(folded) // size)
        for size in range(1, 5)
    )


def _is_sequence(folded: str) -> bool:
    """A run of consecutive characters or keys, forwards or backwards (``abcdef…``, ``9876…``)."""
    return any(folded in sequence or folded in sequence[::-1] for sequence in _SEQUENCES)


def check_new_password(
    value: object,
    problems: Problems,
    *,
    username: str | None = None,
    email: str | None = None,
    path: str = "password",
) -> str | None:
    """A password someone chooses now, normalised; problems name ``path``.

    Never echoes the password in a message.
    """
    if value is MISSING or value is None or value == "":
        problems.add(path, "is required")
        return None
    if not isinstance(value, str) or "\x00" in value:
        problems.add(path, "must be text")
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        problems.add(path, "must be valid Unicode text")
        return None
    password = normalize_password(value)
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in password):
        problems.add(path, "must not contain control characters")
        return None
    if len(password) < PASSWORD_MIN:
        problems.add(
            path, f"must be at least {PASSWORD_MIN} characters (a few words make a good one)"
        )
        return None
    if len(password) > PASSWORD_MAX:
        problems.add(path, f"must be at most {PASSWORD_MAX} characters")
        return None
    folded = _folded(password)
    if folded in _blocklist() or _is_repetition(folded) or _is_sequence(folded):
        problems.add(path, "is too common or too easy to guess; choose another")
        return None
    context = [word for word in (username, email, *_SERVICE_WORDS) if word and len(word) >= 3]
    if email and "@" in email:
        context.append(email.split("@", 1)[0])
    stripped = folded
    for word in context:
        stripped = stripped.replace(_folded(word), "")
    if len(stripped) < PASSWORD_MIN // 2:
        problems.add(path, "must not be built from your username, e-mail address or this site")
        return None
    return password

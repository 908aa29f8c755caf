"""The access line written without a ``LogRecord`` (``logs._direct_handler``) is the
line the logging module's path writes: same keys, order and values, redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from fleetprompt_http import logs

SECRET = "abcdefghijklmnopqrstuvwxyz012345"


@pytest.fixture
def server_logging() -> Iterator[io.StringIO]:
    """``configure_logging`` as the server calls it, alone on the root logger (pytest's
    own capture handlers set aside for the test)."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure_logging("INFO", stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
        logs._installed.clear()


def _alone() -> None:
    """Only the server's handler on the root (pytest adds its capture handlers to the
    root during the test itself; it removes them afterwards, tolerating their absence)."""
    logging.getLogger().handlers[:] = [logs._installed[0][0]]


def _access(caller: str | None, reason: str | None) -> None:
    logs.log_access("req_00ff", "POST", "/v1/internal/install/redeem", 200, 1.5, caller, reason)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_direct_line_is_the_records_line(server_logging: io.StringIO) -> None:
    _alone()
    assert logs._direct_handler() is not None
    _access("source:whs", None)
    _access(f"Bearer {SECRET}", f"token={SECRET}")
    direct = _lines(server_logging)
    server_logging.seek(0)
    server_logging.truncate()
    # A second handler on the root: the logging module's path, through the formatter.
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    try:
        assert logs._direct_handler() is None
        _access("source:whs", None)
        _access(f"Bearer {SECRET}", f"token={SECRET}")
    finally:
        logging.getLogger().removeHandler(other)
    through_records = _lines(server_logging)
    assert len(direct) == len(through_records) == 2
    for fast, slow in zip(direct, through_records, strict=True):
        assert list(fast) == list(slow)
        assert {k: v for k, v in fast.items() if k != "ts"} == {
            k: v for k, v in slow.items() if k != "ts"
        }
        assert str(fast["ts"]).endswith("Z")
    assert SECRET not in server_logging.getvalue()
    assert direct[0]["caller"] == "source:whs"
    assert direct[0]["logger"] == "fleetprompt.access"
    assert direct[0]["event"] == "request"


def test_any_other_handler_filter_or_formatter_takes_the_logging_path(
    server_logging: io.StringIO,
) -> None:
    _alone()
    handler = logging.getLogger().handlers[0]
    access = logging.getLogger("fleetprompt.access")
    drop = logging.Filter("nothing")
    for undo in (
        _on(access.addFilter, access.removeFilter, drop),
        _on(handler.addFilter, handler.removeFilter, drop),
        _on(access.addHandler, access.removeHandler, logging.NullHandler()),
    ):
        assert logs._direct_handler() is None
        undo()
    formatter = handler.formatter
    handler.setFormatter(logging.Formatter("%(message)s"))
    assert logs._direct_handler() is None
    handler.setFormatter(formatter)
    handler.setLevel(logging.WARNING)
    assert logs._direct_handler() is None
    handler.setLevel(logging.NOTSET)
    access.propagate = False
    try:
        assert logs._direct_handler() is None
    finally:
        access.propagate = True
    assert logs._direct_handler() is handler
    _access("source:whs", None)
    assert _lines(server_logging)[-1]["caller"] == "source:whs"


def _on(add: object, remove: object, item: object) -> object:
    add(item)  # type: ignore[operator]
    return lambda: remove(item)  # type: ignore[operator]

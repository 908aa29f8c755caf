"""Structured logs (§10): one JSON object per line, redacted before it is written.

Two layers keep secrets out of the log:

* our own events go through :func:`log_event`, which applies the core's
  redaction to every field before the logging call, whatever handler the host
  application has configured;
* :func:`configure_logging` (used by ``fleetprompt serve``) installs one JSON
  formatter on the root logger, built with structlog, that redacts every
  record again (the server's, uvicorn's, any library's) and replaces a
  traceback by the exception's type name: stack traces are never written.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Mapping
from typing import Final, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from fleetprompt_core.policies.redaction import REDACTED, is_sensitive_key, redact, redact_text

__all__ = ["access_logger", "configure_logging", "json_formatter", "log_event"]

#: The attribute of a ``LogRecord`` that carries our structured fields.
FIELDS: Final = "fleetprompt"

access_logger = logging.getLogger("fleetprompt.access")


def log_event(logger: logging.Logger, level: int, event: str, fields: Mapping[str, object]) -> None:
    """Log ``event`` with ``fields`` redacted (secrets never reach a handler)."""
    if logger.isEnabledFor(level):
        # Field names are our code's constants; only the values can carry a secret.
        safe = {
            name: REDACTED if is_sensitive_key(name) else _redacted_value(value)
            for name, value in fields.items()
        }
        # makeRecord + handle, not log(): no look-up of the caller (a stack walk) per line.
        record = logger.makeRecord(logger.name, level, "", 0, event, (), None, extra={FIELDS: safe})
        logger.handle(record)


def _redacted_value(value: object) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(value) if isinstance(value, str) else redact(value)


#: Keys the formatter itself adds (level, logger name, time): nothing to redact.
_OWN_KEYS: Final = ("level", "logger", "ts")


def _redact_event(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Last step before rendering: redact every value, drop tracebacks."""
    exc_info = event_dict.pop("exc_info", None)
    event_dict.pop("stack_info", None)
    event_dict.pop("exception", None)
    if exc_info:
        kind = exc_info[0] if isinstance(exc_info, tuple) else type(exc_info)
        if isinstance(kind, type):
            event_dict["errorType"] = kind.__name__
    # Our own fields were redacted by log_event already; everything else is redacted here.
    fields = event_dict.pop(FIELDS, None)
    own = {key: event_dict.pop(key) for key in _OWN_KEYS if key in event_dict}
    redacted = redact(event_dict)
    assert isinstance(redacted, dict)
    redacted.update(own)
    if isinstance(fields, Mapping):
        for key, value in fields.items():
            redacted.setdefault(str(key), value)
    return redacted


class _JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, with a short path for the records of :func:`log_event`.

    Those carry plain values already redacted (every access line is one), so
    they are rendered directly, to the same JSON line the processor chain
    writes (same keys, same order, same values), at a fraction of its cost.
    """

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__.get(FIELDS)
        if (
            type(fields) is dict
            and record.exc_info is None
            and record.stack_info is None
            and not record.args
            and isinstance(record.msg, str)
        ):
            line: dict[str, object] = {
                "event": redact_text(record.msg),
                "level": record.levelname.lower(),
                "logger": record.name,
                "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
                .isoformat()
                .replace("+00:00", "Z"),
            }
            for key, value in fields.items():
                line.setdefault(str(key), value)
            return json.dumps(line, ensure_ascii=False, default=repr)
        return super().format(record)


def json_formatter() -> logging.Formatter:
    """A formatter that renders any record as one redacted JSON line."""
    return _JsonFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(allow=[FIELDS]),
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact_event,
            structlog.processors.JSONRenderer(sort_keys=False, ensure_ascii=False),
        ],
        pass_foreign_args=False,
    )


def configure_logging(level: int | str = "INFO", stream: TextIO | None = None) -> None:
    """Send every log record (ours, uvicorn's, libraries') to ``stream`` as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    # We write our own access line (with the request id); uvicorn's would repeat it.
    logging.getLogger("uvicorn.access").disabled = True

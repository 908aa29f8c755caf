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
import functools
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Final, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from fleetprompt_core.policies.redaction import REDACTED, is_sensitive_key, redact, redact_text

__all__ = ["access_logger", "configure_logging", "json_formatter", "log_access", "log_event"]

#: The attribute of a ``LogRecord`` that carries our structured fields.
FIELDS: Final = "fleetprompt"

access_logger = logging.getLogger("fleetprompt.access")


def log_event(logger: logging.Logger, level: int, event: str, fields: Mapping[str, object]) -> None:
    """Log ``event`` with ``fields`` redacted (secrets never reach a handler)."""
    if logger.isEnabledFor(level):
        # Field names are our code's constants; only the values can carry a secret.
        safe = {
            name: REDACTED if _sensitive_name(name) else _redacted_value(value)
            for name, value in fields.items()
        }
        _emit(logger, level, event, safe)


def _emit(logger: logging.Logger, level: int, event: str, safe: dict[str, object]) -> None:
    # makeRecord + handle, not log(): no look-up of the caller (a stack walk) per line.
    record = logger.makeRecord(logger.name, level, "", 0, event, (), None, extra={FIELDS: safe})
    logger.handle(record)


@functools.lru_cache(maxsize=1024)
def _sensitive_name(name: str) -> bool:
    """:func:`is_sensitive_key` of a field name (our code's constants: a few dozen)."""
    return is_sensitive_key(name)


#: Request methods logged as they are; any other method a client sent is redacted text.
_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


@functools.lru_cache(maxsize=1024)
def _route_text(route: str) -> object:
    """A redacted route template (the routes are our code's: a bounded set)."""
    return redact_text(route)


@functools.lru_cache(maxsize=4096)
def _label_text(label: str) -> object:
    """A redacted caller or refusal reason: the callers of a process (a source, an
    account's external id) and the reasons (our code's) repeat, request after request."""
    return _redacted_value(label)


def log_access(
    request_id: str,
    method: object,
    route: object,
    status: int,
    latency_ms: float,
    caller: str | None,
    reason: str | None,
) -> None:
    """The access line of one request (§10): :func:`log_event`'s fields and redaction,
    at a fraction of its cost per line — the request id is ours (``req_`` and hex), a
    standard method, a route template, a caller and a refusal reason are redacted once
    each, not per request. Under :func:`configure_logging`'s handler alone (the
    server's), the line is written without a ``LogRecord`` (:func:`_direct_handler`)."""
    if access_logger.isEnabledFor(logging.INFO):
        fields: dict[str, object] = {
            "requestId": request_id,
            "method": method if method in _METHODS else _redacted_value(method),
            "route": _route_text(route) if type(route) is str else _redacted_value(route),
            "status": status,
            "latencyMs": latency_ms,
            "caller": None if caller is None else _label_text(caller),
            "reason": None if reason is None else _label_text(reason),
        }
        handler = _direct_handler()
        if handler is None:
            _emit(access_logger, logging.INFO, "request", fields)
        else:
            _write_direct(handler, fields)


class _JsonStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stream handler :func:`configure_logging` installs on the root logger."""


#: The handler :func:`configure_logging` installed last, with its JSON formatter.
_installed: list[tuple[_JsonStreamHandler, logging.Formatter]] = []


def _direct_handler() -> _JsonStreamHandler | None:
    """The handler to write an access line to without a ``LogRecord``, or ``None``.

    Only when the record would reach :func:`configure_logging`'s handler and no
    other: no filter on the access logger or the handler, no handler on the way
    to the root, the root's only handler that one, with its JSON formatter, and
    its level letting INFO through. Anything else (``caplog``, a host's own
    handlers, a changed formatter) takes the logging module's path.
    """
    if not _installed or access_logger.filters:
        return None
    handler, formatter = _installed[0]
    logger: logging.Logger | None = access_logger
    while logger is not None:
        if logger is logging.root:
            handlers = logger.handlers
            if (
                len(handlers) == 1
                and handlers[0] is handler
                and handler.formatter is formatter
                and not handler.filters
                and handler.level <= logging.INFO
            ):
                return handler
            return None
        if logger.handlers or not logger.propagate:
            return None
        logger = logger.parent
    return None


def _write_direct(handler: _JsonStreamHandler, fields: dict[str, object]) -> None:
    """What ``handler.handle`` writes for the access record of ``fields``: the JSON
    formatter's short path (same keys, order and values) and ``StreamHandler.emit``'s
    write and flush under the handler's lock, without the record."""
    created = time.time()
    text = _short_line("request", "info", access_logger.name, created, fields) + handler.terminator
    handler.acquire()
    try:
        try:
            handler.stream.write(text)
            handler.flush()
        except RecursionError:
            raise
        except Exception:
            record = access_logger.makeRecord(
                access_logger.name, logging.INFO, "", 0, "request", (), None, extra={FIELDS: fields}
            )
            record.created = created
            handler.handleError(record)
    finally:
        handler.release()


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
            level = _LEVELS.get(record.levelno) or record.levelname.lower()
            return _short_line(record.msg, level, record.name, record.created, fields)
        return super().format(record)


def _short_line(
    event: str, level: str, logger: str, created: float, fields: Mapping[str, object]
) -> str:
    """The JSON line of a :func:`log_event` record (its fields already redacted): the
    formatter's short path, and the access line's without a record (``_write_direct``)."""
    line: dict[str, object] = {
        "event": _event_text(event),
        "level": level,
        "logger": logger,
        "ts": _timestamp(created),
    }
    for key, value in fields.items():
        line.setdefault(str(key), value)
    return _ENCODER.encode(line)


#: ``json.dumps(…, ensure_ascii=False, default=repr)``, built once (dumps builds an
#: encoder per call when given options).
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, default=repr)
_LEVELS: Final = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


@functools.lru_cache(maxsize=1024)
def _event_text(event: str) -> object:
    """The redacted event name (our code's constants, mostly: cached)."""
    return redact_text(event)


_second: list[object] = [None, ""]


def _timestamp(created: float) -> str:
    """``datetime.fromtimestamp(created, UTC).isoformat()`` with ``Z`` for ``+00:00``;
    the date and time of day are formatted once per second."""
    second = int(created)
    if _second[0] != second:
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second[0] = second
    micro = round((created - second) * 1_000_000)
    if micro == 0 or micro >= 1_000_000:  # isoformat's own rounding: take its answer
        return (
            datetime.datetime.fromtimestamp(created, datetime.UTC)
            .isoformat()
            .replace("+00:00", "Z")
        )
    return f"{_second[1]}.{micro:06d}Z"


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
    handler = _JsonStreamHandler(stream or sys.stderr)
    formatter = json_formatter()
    handler.setFormatter(formatter)
    _installed[:] = [(handler, formatter)]
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # The JSON lines name no thread or process: do not look them up for every record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    # We write our own access line (with the request id); uvicorn's would repeat it.
    logging.getLogger("uvicorn.access").disabled = True

"""How every ClassPulse process writes its log: text for people or JSON lines for a pipeline.

The format and level come from the process's settings (``LogSettings``, a piece
of each process's settings class). ``CLASSPULSE_LOG_FORMAT=json`` gives one
JSON object per line with the time, level, logger, message, the service and
whatever ids the line carries (``frame_id``, ``lesson_id``, ``seq``,
``status``...), so that a frame can be followed from ingest (accepted) through
the worker (finished) to the live push of its bucket. Either way every line
passes the credential filter: the value of every credential query parameter in
a logged URL is replaced, so no token, key or ticket reaches a log (uvicorn logs
WebSocket URLs, and its access log ``?ticket=`` of SSE and export links).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from shared.settings import LogSettings

#: Query parameters that carry a credential anywhere in ClassPulse.
CREDENTIAL_PARAMS = ("token", "access_token", "ticket", "key")
_IN_QUERY = re.compile(rf"(?i)([?&](?:{'|'.join(CREDENTIAL_PARAMS)})=)[^&#\s\"']*")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """``text`` with the value of every credential query parameter replaced."""
    return _IN_QUERY.sub(rf"\g<1>{REDACTED}", text)


def _redacted(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


#: A record's own attributes; any other is an ``extra`` a line carries.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})))


class RedactCredentials(logging.Filter):
    """Redacts credentials in a record's message, arguments and extra fields; drops nothing.
    (Tracebacks are redacted by the formatters: they are written at formatting.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {k: _redacted(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redacted(a) for a in record.args)
        for name, value in list(vars(record).items()):
            if name not in _RECORD_FIELDS and isinstance(value, str):
                setattr(record, name, redact(value))
        return True


class _RedactedTraceback:
    """Mixed into a formatter: a traceback can quote a URL with a credential in it."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return redact(super().formatException(ei))  # type: ignore[misc]


class _TextFormatter(_RedactedTraceback, logging.Formatter):
    pass


class _JsonFormatter(_RedactedTraceback, JsonFormatter):
    pass


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Loggers that bring their own handlers (uvicorn's); in JSON they go through ours.
OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a record comes (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # logging must never take the service down
            self.handleError(record)


def formatter(service: str, settings: LogSettings) -> logging.Formatter:
    """The configured format: text, or JSON objects with the service and a record's ids."""
    if settings.log_format == "json":
        return _JsonFormatter(
            JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    return _TextFormatter(TEXT_FORMAT)


def configure_logging(service: str, settings: LogSettings) -> None:
    """Send the process's records to stderr in the format of ``settings``, once per process."""
    root = logging.getLogger()
    if any(isinstance(h, _StderrHandler) for h in root.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(formatter(service, settings))
    handler.addFilter(RedactCredentials())
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    if settings.log_format == "json":
        for name in OWN_HANDLERS:
            own = logging.getLogger(name)
            own.handlers.clear()
            own.propagate = True


def reformat_handlers(logger: logging.Logger, service: str, settings: LogSettings) -> None:
    """Give handlers someone else set up (Celery's) the format, level and filter of ``settings``."""
    # CLASSPULSE_LOG_LEVEL decides, not the -l of the command line.
    logger.setLevel(settings.log_level)
    for handler in logger.handlers:
        if settings.log_format == "json":
            handler.setFormatter(formatter(service, settings))
        if not any(isinstance(f, RedactCredentials) for f in handler.filters):
            handler.addFilter(RedactCredentials())

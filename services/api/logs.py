"""No credential in a log line: credentials in logged URLs are replaced by ``[redacted]``.

uvicorn logs every WebSocket with its URL (the classroom page's socket carries
the student token as ``?token=``), and its access log, when a deployment turns
it on, writes ``?access_token=`` of SSE and export links. A filter on
uvicorn's loggers rewrites those query values before any handler sees them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

#: Query parameters that carry a credential anywhere in ClassPulse.
CREDENTIAL_PARAMS = ("token", "access_token", "ticket", "key")
_IN_QUERY = re.compile(rf"(?i)([?&](?:{'|'.join(CREDENTIAL_PARAMS)})=)[^&#\s\"']*")
REDACTED = "[redacted]"
#: The loggers uvicorn writes URLs to (errors and WebSocket lines; the access log).
UVICORN_LOGGERS = ("uvicorn.error", "uvicorn.access")


def redact(text: str) -> str:
    """``text`` with the value of every credential query parameter replaced."""
    return _IN_QUERY.sub(rf"\g<1>{REDACTED}", text)


def _redacted(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


class RedactCredentials(logging.Filter):
    """Redacts credentials in a record's message and arguments; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {k: _redacted(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redacted(a) for a in record.args)
        return True


def redact_server_logs() -> None:
    """Install the filter on uvicorn's loggers once per process (app factories call it)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())

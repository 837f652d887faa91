"""No credential in a log line: credentials in logged URLs are replaced by ``[redacted]``.

uvicorn logs every WebSocket with its URL (the classroom page's socket carries
the student token as ``?token=``), and its access log, when a deployment turns
it on, writes ``?access_token=`` of SSE and export links. A filter on
uvicorn's loggers rewrites those query values before any handler sees them.
"""

from __future__ import annotations

import logging

from shared.logs import RedactCredentials

#: The loggers uvicorn writes URLs to (errors and WebSocket lines; the access log).
UVICORN_LOGGERS = ("uvicorn.error", "uvicorn.access")


def redact_server_logs() -> None:
    """Install the filter on uvicorn's loggers once per process (app factories call it)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())

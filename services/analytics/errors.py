"""Error documentation of the analytics API; shape and handlers: ``services.api.errors``."""

from __future__ import annotations

from services.api.errors import error_docs, install_error_handlers, json_error_docs
from shared.errors import ClassPulseError

__all__ = [
    "READ_ERRORS",
    "InvalidQuery",
    "error_responses",
    "install_error_handlers",
    "json_error_responses",
]

DESCRIPTIONS = {
    400: "A request body that is not readable JSON, e.g. not UTF-8 (`bad_request`)",
    401: "Missing, invalid, expired or revoked credentials (`unauthorized`)",
    403: "Valid credentials that do not cover this lesson or student (`forbidden`)",
    404: "Unknown lesson or student (`not_found`)",
    422: "Bad query parameters or body fields (`validation_error`)",
    503: "Redis or PostgreSQL unavailable (`service_unavailable`)",
}

error_responses = error_docs(DESCRIPTIONS)
json_error_responses = json_error_docs(DESCRIPTIONS)
READ_ERRORS = error_responses(401, 403, 404, 422)


class InvalidQuery(ClassPulseError):
    """Query parameters that are well-formed but cannot be answered (422)."""

    code = "validation_error"
    status = 422

"""The ingest API's error documentation; the shape and handlers are in ``services.api.errors``."""

from __future__ import annotations

from services.api.errors import error_docs, install_error_handlers, retry_after_seconds

__all__ = ["error_responses", "install_error_handlers", "retry_after_seconds"]

DESCRIPTIONS = {
    400: "Unreadable image header or dimensions over the limit (`invalid_image`), or a "
    "body that cannot be parsed at all, such as JSON that is not UTF-8 (`bad_request`)",
    401: "Missing, invalid or expired credentials (`unauthorized`)",
    403: "Valid credentials that do not cover this resource (`forbidden`)",
    404: "Unknown class, lesson or student (`not_found`)",
    409: "The state forbids the request, e.g. the lesson is not live (`conflict`)",
    413: "Frame over the size limit (`payload_too_large`)",
    415: "Not JPEG, PNG or WebP by its magic bytes (`unsupported_media_type`)",
    422: "Bad or missing fields (`validation_error`)",
    429: "Per-student rate or queue limit hit; see `Retry-After` (`rate_limited`)",
    451: "No active consent for this student and lesson (`consent_required`)",
    503: "Redis or PostgreSQL unavailable; see `Retry-After` (`service_unavailable`)",
}

error_responses = error_docs(DESCRIPTIONS)

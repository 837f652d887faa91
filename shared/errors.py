"""The ClassPulse exception hierarchy.

Every error a user can cause derives from :class:`ClassPulseError`; the APIs
map each subclass to one HTTP status and error code in one exception handler,
the worker maps them to a frame's failure reason, and the command line prints
their message. Third-party errors (``cv2.error``, ``json`` errors, …) are
translated into these at the boundary where they happen.

    ClassPulseError
    ├── ConfigError            settings that cannot work (names the variable)
    ├── InvalidFrame           image bytes that cannot be processed (reason)
    ├── DatasetError           training data that cannot be read (file, row)
    ├── ModelArtifactError     a model artifact missing or not matching the code
    ├── NotFound               an entity that does not exist (404)
    ├── Conflict               a state that forbids the request (409)
    ├── AuthError              missing/invalid credentials (401)
    ├── Forbidden              valid credentials, not allowed here (403)
    ├── ConsentRequired        no consent recorded for this student/lesson (451)
    ├── PayloadTooLarge        frame over the size limit (413)
    ├── UnsupportedMediaType   not JPEG/PNG/WebP by its magic bytes (415)
    ├── InvalidValue           a well-formed value not acceptable here (422)
    ├── RateLimited            per-student rate or queue limit hit (429)
    └── ServiceUnavailable     a backing store is down; retry later (503)
"""

from __future__ import annotations


class ClassPulseError(Exception):
    """Base of every error ClassPulse raises on purpose."""

    #: Stable machine-readable code used in API error bodies and failure reasons.
    code: str = "error"
    #: HTTP status the APIs answer with.
    status: int = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ConfigError(ClassPulseError):
    """A setting is missing or invalid; the message names the variable."""

    code = "config_error"


class InvalidFrame(ClassPulseError):
    """Image bytes that can never be processed; ``reason`` says why."""

    code = "invalid_image"
    status = 400

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason.replace("_", " "), field="image")
        self.reason = reason


class DatasetError(ClassPulseError):
    """Training or evaluation data that cannot be read; names file and row."""

    code = "dataset_error"


class ModelArtifactError(ClassPulseError):
    """A model artifact is missing, unreadable or does not match the code."""

    code = "model_artifact_error"


class NotFound(ClassPulseError):
    code = "not_found"
    status = 404


class Conflict(ClassPulseError):
    code = "conflict"
    status = 409


class AuthError(ClassPulseError):
    code = "unauthorized"
    status = 401


class Forbidden(ClassPulseError):
    code = "forbidden"
    status = 403


class ConsentRequired(ClassPulseError):
    code = "consent_required"
    status = 451


class PayloadTooLarge(ClassPulseError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(ClassPulseError):
    code = "unsupported_media_type"
    status = 415


class InvalidValue(ClassPulseError):
    """A well-formed value that cannot be accepted here, such as a capture time
    outside its lesson; answered like a request validation error (422)."""

    code = "validation_error"
    status = 422


class RateLimited(ClassPulseError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(ClassPulseError):
    code = "service_unavailable"
    status = 503

    def __init__(self, message: str, *, retry_after: float = 2.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after

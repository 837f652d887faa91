"""One JSON error shape for every 4xx/5xx answer of the analytics API.

``{"error": {"code", "message", "field"}}``, the same shape as the ingest API:
the ``shared.errors`` hierarchy is mapped to its status in one handler,
validation errors to 422 and Starlette's own HTTP errors to the same shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import ClassPulseError


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


_DESCRIPTIONS = {
    401: "Missing, invalid, expired or revoked credentials (`unauthorized`)",
    403: "Valid credentials that do not cover this lesson or student (`forbidden`)",
    404: "Unknown lesson or student (`not_found`)",
    422: "Bad query parameters (`validation_error`)",
    503: "Redis or PostgreSQL unavailable (`service_unavailable`)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the error shape for ``statuses``."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}


READ_ERRORS = error_responses(401, 403, 404, 422)


def json_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Error entries for a route whose success body is not JSON (an event stream).

    With ``model=`` FastAPI documents errors in the route's own media type; the
    errors are JSON whatever the route serves, so say so explicitly.
    """
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {
        s: {"description": _DESCRIPTIONS[s], "content": {"application/json": {"schema": schema}}}
        for s in statuses
    }


def error_json(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


async def _classpulse_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClassPulseError)
    return JSONResponse(error_json(exc.code, exc.message, exc.field), status_code=exc.status)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    # loc is e.g. ("query", "bucket"): the field is the last name.
    names = [str(p) for p in first["loc"] if p not in ("body", "query", "path", "header")]
    field = ".".join(names) or None
    message = f"{field}: {first['msg']}" if field else str(first["msg"])
    return JSONResponse(error_json("validation_error", message, field), status_code=422)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        error_json(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the one JSON shape."""
    app.add_exception_handler(ClassPulseError, _classpulse_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class InvalidQuery(ClassPulseError):
    """Query parameters that are well-formed but cannot be answered (422)."""

    code = "validation_error"
    status = 422

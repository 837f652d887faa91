"""One JSON error shape for every 4xx/5xx answer of both APIs.

``{"error": {"code", "message", "field"}}``: the ``shared.errors`` hierarchy is
mapped to its status in one handler (with ``Retry-After`` when retrying can
help), FastAPI's validation errors to 422 with every problem at once (in
``errors``) and Starlette's own HTTP errors (unknown route, wrong method,
unparsable body) to the same shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import metrics
from shared.errors import ClassPulseError, RateLimited, ServiceUnavailable

ErrorDocs = Callable[..., dict[int | str, dict[str, Any]]]


class FieldProblem(BaseModel):
    """One of the problems of a request refused as invalid."""

    field: str | None = None
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    #: Every problem of an invalid request (422), so a client fixes them all at once;
    #: ``field`` and ``message`` also name the first.
    errors: list[FieldProblem] | None = None


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


def error_docs(descriptions: Mapping[int, str]) -> ErrorDocs:
    """``error_responses(*statuses)`` for OpenAPI ``responses=``, with an API's wording."""

    def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
        return {s: {"model": ErrorBody, "description": descriptions[s]} for s in statuses}

    return error_responses


def json_error_docs(descriptions: Mapping[int, str]) -> ErrorDocs:
    """Error entries for routes whose success body is not JSON (an event stream).

    With ``model=`` FastAPI documents errors in the route's own media type; the
    errors are JSON whatever the route serves, so say so explicitly.
    """

    def json_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
        schema = {"$ref": "#/components/schemas/ErrorBody"}
        return {
            s: {"description": descriptions[s], "content": {"application/json": {"schema": schema}}}
            for s in statuses
        }

    return json_error_responses


def retry_after_seconds(exc: ClassPulseError) -> int | None:
    """Whole seconds for ``Retry-After`` (at least 1), or None when not retryable."""
    if isinstance(exc, RateLimited | ServiceUnavailable):
        return max(1, math.ceil(exc.retry_after))
    return None


def error_json(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(exc: ClassPulseError) -> JSONResponse:
    """The HTTP answer for one of our errors (with ``Retry-After`` when retryable)."""
    headers = {}
    retry = retry_after_seconds(exc)
    if retry is not None:
        headers["Retry-After"] = str(retry)
    return JSONResponse(
        error_json(exc.code, exc.message, exc.field), status_code=exc.status, headers=headers
    )


def _count(request: Request, status: int, code: str) -> None:
    """Count an error answer under its route template (``none`` for unknown paths)."""
    handler = getattr(request.scope.get("route"), "path", None) or "none"
    metrics.API_ERRORS.labels(handler=handler, status=str(status), code=code).inc()


async def _classpulse_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ClassPulseError)
    _count(request, exc.status, exc.code)
    return error_response(exc)


def _problem(error: Mapping[str, Any]) -> dict[str, Any]:
    # loc is e.g. ("body", "title") or ("query", "seq"): the field is the names after it.
    names = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
    return {"field": ".".join(names) or None, "message": str(error.get("msg", "invalid"))}


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    _count(request, 422, "validation_error")
    problems = [_problem(e) for e in exc.errors()] or [{"field": None, "message": "invalid"}]
    message = "; ".join(
        f"{p['field']}: {p['message']}" if p["field"] else p["message"] for p in problems
    )
    body = error_json("validation_error", message, problems[0]["field"])
    body["error"]["errors"] = problems
    return JSONResponse(body, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    _count(request, exc.status_code, code)
    return JSONResponse(
        error_json(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the one JSON shape."""
    app.add_exception_handler(ClassPulseError, _classpulse_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

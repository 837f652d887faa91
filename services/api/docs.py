"""The interactive API documentation, ``/docs`` (Swagger UI) and ``/redoc``, served offline.

FastAPI's own pages load their scripts from a CDN, so they are blank without
internet access. Following FastAPI's "self-hosting the docs UI" recipe, each
API is created with ``docs_url=None, redoc_url=None`` and :func:`install_docs`
serves the pages with the vendored assets of ``static/docs`` (versions and
licences in its ``VENDORED.md``). Swagger UI is started by a script file
rather than FastAPI's inline script, so ``/docs`` runs under a policy of
``'self'`` only.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).parent / "static" / "docs"
#: Where the assets are served; the security middleware gives them the API policy.
ASSETS_URL = "/docs-assets"
SWAGGER_PAGE = ASSETS_DIR / "swagger.html"
#: The OpenAPI security scheme of every credential: ``Authorization: Bearer …``.
BEARER_SCHEME = "bearer"
BEARER_DESCRIPTION = (
    "An LMS or teacher API key (`cp_…`), a student token (`POST /v1/lessons/{lesson_id}/"
    "students/{external_student_id}/token`) or the teacher session of an LTI launch"
)


def install_security_schemes(app: FastAPI) -> None:
    """Declare the bearer credential in the OpenAPI document (``components.securitySchemes``
    and each operation's ``security``), so that generated clients authenticate.

    The routes read the ``Authorization`` header themselves (one error shape for a missing
    or bad credential); OpenAPI ignores header parameters of that name, so they are
    replaced by the scheme. Live and export links also open with a ``?ticket=``, hence
    the anonymous alternative there.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[BEARER_SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "description": BEARER_DESCRIPTION,
        }
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                parameters = operation.get("parameters", [])
                kept = [
                    p
                    for p in parameters
                    if not (
                        p.get("in") == "header" and p.get("name", "").lower() == "authorization"
                    )
                ]
                if len(kept) == len(parameters):
                    continue
                ticket = any(p.get("in") == "query" and p.get("name") == "ticket" for p in kept)
                operation["security"] = [{BEARER_SCHEME: []}] + ([{}] if ticket else [])
                if kept:
                    operation["parameters"] = kept
                else:
                    del operation["parameters"]
        return schema

    # FastAPI's documented way to change the generated document.
    app.openapi = openapi  # type: ignore[method-assign]


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` for ``app`` (created with both set to ``None``), and
    declare its credentials in the OpenAPI document (:func:`install_security_schemes`)."""
    install_security_schemes(app)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    template = SWAGGER_PAGE.read_text(encoding="utf-8")

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = template.format(
            title=html.escape(app.title),
            assets=html.escape(f"{root}{ASSETS_URL}"),
            openapi_url=html.escape(openapi_url(request)),
        )
        return HTMLResponse(page)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon-32x32.png",
            with_google_fonts=False,
        )

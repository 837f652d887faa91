"""Security headers on every HTTP response of both APIs (pages, JSON, streams, errors).

Pages get a Content-Security-Policy that allows only this origin's scripts,
styles and connections (no inline code) and no framing; API responses get one
that allows nothing at all. ``nosniff`` keeps a browser from reading JSON or an
upload as HTML, and ``no-referrer`` keeps URLs (lesson ids, ``?access_token=``)
out of other sites' logs.

The interactive API documentation is served from this origin too
(services/api/docs.py): ``/docs`` (Swagger UI) is a page like ours; ``/redoc``
gets a policy of its own because ReDoc writes its styles into ``<style>``
elements and runs its search index in a ``blob:`` worker.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Our own pages: the dashboard and the classroom page (camera frames are sent
#: with fetch and a same-origin WebSocket, which ``'self'`` covers).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
#: The classroom page also compiles WebAssembly: ONNX Runtime runs the face
#: detector in the page (``services/ingest/static/vendor``). Chromium refuses
#: ``WebAssembly.instantiate`` under a ``script-src`` without this keyword; it
#: allows no ``eval`` of JavaScript.
CLASSROOM_POLICY = PAGE_POLICY.replace(
    "script-src 'self';", "script-src 'self' 'wasm-unsafe-eval';"
)
#: JSON, event streams, files: nothing in them is ever to be run or framed.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: ReDoc: this origin's scripts only, but inline styles (styled-components) and a blob worker.
REDOC_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: Headers every response carries whatever its type.
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # For browsers that predate CSP's frame-ancestors.
    "X-Frame-Options": "DENY",
}


def policy_for(path: str, content_type: str) -> str:
    """The Content-Security-Policy of a response to ``path`` with this content type."""
    if path == "/redoc":
        return REDOC_POLICY
    if content_type.split(";", 1)[0].strip().lower() == "text/html":
        return CLASSROOM_POLICY if path.startswith("/classroom/") else PAGE_POLICY
    return API_POLICY


class SecurityHeaders:
    """ASGI middleware adding the headers to each HTTP response as it starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault(
                    "Content-Security-Policy", policy_for(path, headers.get("content-type", ""))
                )
            await send(message)

        await self.app(scope, receive, send_with_headers)

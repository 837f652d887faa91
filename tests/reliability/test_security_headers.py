"""Security headers on every page and API response of both APIs.

Pages may run only this origin's scripts and never be framed; API answers
(JSON, streams, files, errors) allow nothing; the documentation pages get
no more than this origin too (ReDoc: with inline styles).
"""

from __future__ import annotations

import httpx
import pytest

from tests.reliability.conftest import Realm, bearer
from tests.reliability.test_access_matrix import ENDPOINTS, fill


def directives(answer: httpx.Response) -> dict[str, str]:
    policy = answer.headers.get("content-security-policy", "")
    parts = (d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    return {p[0]: p[1] if len(p) > 1 else "" for p in parts}


def assert_secured(answer: httpx.Response) -> dict[str, str]:
    """The headers every answer carries; its CSP directives."""
    where = f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}"
    assert answer.headers.get("x-content-type-options") == "nosniff", where
    assert answer.headers.get("referrer-policy") == "no-referrer", where
    assert answer.headers.get("x-frame-options") == "DENY", where
    csp = directives(answer)
    assert csp.get("frame-ancestors") == "'none'", where
    return csp


def assert_page(answer: httpx.Response, script_src: str = "'self'") -> None:
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    csp = assert_secured(answer)
    assert csp["script-src"] == script_src  # no inline script, no other origin
    assert "unsafe-inline" not in answer.headers["content-security-policy"]
    assert csp["connect-src"] == "'self'"


def assert_api(answer: httpx.Response) -> None:
    assert assert_secured(answer)["default-src"] == "'none'", answer.request.url.path


def test_pages_allow_only_their_own_scripts_and_no_framing(
    realm: Realm, ingest: httpx.Client, analytics: httpx.Client
) -> None:
    # The classroom page compiles the face detector's WebAssembly, and may eval nothing.
    assert_page(ingest.get(f"/classroom/{realm.a.lesson_id}"), "'self' 'wasm-unsafe-eval'")
    assert_page(analytics.get("/"))
    assert_page(analytics.get("/dashboard"))
    for client in (ingest, analytics):
        # Swagger UI is served from this origin and started by a script file.
        assert_page(client.get("/docs"))
        redoc = client.get("/redoc")
        assert redoc.status_code == 200
        csp = assert_secured(redoc)
        assert csp["script-src"] == "'self'"
        assert "https:" not in redoc.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("api", "path"),
    [
        ("ingest", "/static/classroom.js"),
        ("ingest", "/static/vendor/onnxruntime-web/ort-wasm-simd.wasm"),
        ("ingest", "/detector-models/blazeface_full_range.onnx"),
        ("analytics", "/static/dashboard.js"),
        ("ingest", "/openapi.json"),
        ("analytics", "/openapi.json"),
        ("ingest", "/no/such/path"),
        ("analytics", "/healthz"),
    ],
)
def test_files_documents_and_errors_allow_nothing(
    api: str, path: str, ingest: httpx.Client, analytics: httpx.Client
) -> None:
    assert_api((ingest if api == "ingest" else analytics).get(path))


@pytest.mark.parametrize(("api", "operation"), ENDPOINTS, ids=[f"{a} {o}" for a, o in ENDPOINTS])
def test_every_endpoint_answers_with_the_headers(
    api: str, operation: str, realm: Realm, ingest: httpx.Client, analytics: httpx.Client
) -> None:
    """Refused (no credentials) and with the LMS key, whatever the status."""
    method, path = operation.split(" ", 1)
    client = ingest if api == "ingest" else analytics
    for headers in ({}, bearer(realm.a.lms_key)):
        with client.stream(method, fill(path, realm), headers=headers) as answer:
            assert_api(answer)


def test_the_live_stream_carries_the_headers(realm: Realm, analytics: httpx.Client) -> None:
    url = f"/v1/lessons/{realm.a.lesson_id}/live"
    with analytics.stream("GET", url, headers=bearer(realm.a.teacher_key)) as stream:
        assert stream.status_code == 200
        assert_api(stream)

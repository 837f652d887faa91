"""``/docs`` and ``/redoc`` of both APIs render in headless Chromium with no request
leaving 127.0.0.1 (their assets are served by the APIs themselves) and nothing
blocked by their Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.parametrize("api", ["ingest", "analytics"])
def test_docs_render_offline(api: str, request: pytest.FixtureRequest) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import Route, expect, sync_playwright

    base: str = request.getfixturevalue(f"{api}_url")
    outside: list[str] = []
    errors: list[str] = []

    def offline(route: Route) -> None:
        # As without internet: anything for another host fails (and is recorded).
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.route("**/*", offline)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "console",
                lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else 0,
            )
            page.goto(f"{base}/docs")
            # Swagger UI lists the operations of the OpenAPI document, e.g. the health check.
            expect(page.locator(".opblock").first).to_be_visible(timeout=15_000)
            assert page.locator(".opblock").count() > 3
            expect(page.locator(".opblock-summary-path", has_text="/healthz")).to_be_visible()

            assert errors == []

            page.goto(f"{base}/redoc")
            expect(page.get_by_text("/healthz").first).to_be_attached(timeout=15_000)
        finally:
            browser.close()
    # ReDoc's "API docs by Redocly" footer links an image on its CDN, which the policy
    # blocks before any request is made: the only refusal allowed. Filtered once the
    # browser is closed, since its console message may come after the page rendered.
    errors = [e for e in errors if "https://cdn.redoc.ly/redoc/logo-mini.svg" not in e]
    assert outside == []
    assert errors == []

"""LTI launches in headless Chromium, from the simulated Moodle's launch page to ClassPulse's
pages: the browser carries the state cookie through the OIDC round trip by itself."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.e2e.conftest import ARTIFACTS, CHROMIUM, browser, fake_camera  # noqa: F401  (fixtures)
from tests.lti.conftest import Tool
from tests.lti.platform import INSTRUCTOR_ROLES, LEARNER_ROLES, Platform, Scenario

pytestmark = pytest.mark.slow


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    tab = context.new_page()
    tab.on("console", lambda msg: print(f"[console] {msg.type}: {msg.text}"))
    yield tab
    tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def test_instructor_launch_opens_the_dashboard(
    tool: Tool, platform: Platform, page: Any, clean_db: Engine
) -> None:
    hint = platform.add(Scenario("u-teach", INSTRUCTOR_ROLES))
    page.goto(platform.start_url(hint))
    page.wait_for_url(re.compile(re.escape(f"{tool.analytics_url}/dashboard")), timeout=30_000)
    with clean_db.connect() as conn:
        lesson_id = str(conn.execute(text("SELECT id FROM lessons")).scalar_one())
    page.wait_for_function(
        f"() => document.body.dataset.loaded === '{lesson_id}'", timeout=30_000, polling=200
    )
    # The ticket is gone from the address bar, and the page holds a session, not a key.
    fragment = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(page.url).fragment))
    assert "ticket" not in fragment
    assert fragment["lesson"] == lesson_id
    held = page.evaluate("() => sessionStorage.getItem('classpulse.key')")
    assert held
    assert not held.startswith("cp_")
    assert "Fractions" in page.locator("#lesson-select").inner_text()


def test_learner_launch_opens_the_classroom_consent_step(
    tool: Tool, platform: Platform, page: Any, clean_db: Engine
) -> None:
    hint = platform.add(Scenario("u-learner-b", LEARNER_ROLES))
    page.goto(platform.start_url(hint))
    page.wait_for_url(re.compile(re.escape(f"{tool.url}/classroom/")), timeout=30_000)
    agree = page.get_by_role("button", name="I agree: start sharing")
    agree.wait_for(timeout=30_000)
    page.wait_for_function(
        "() => !document.getElementById('consent').disabled", timeout=30_000, polling=200
    )
    agree.click()
    page.wait_for_function(
        "() => !document.getElementById('session').hidden",
        timeout=30_000,
        polling=200,
    )
    with clean_db.connect() as conn:
        parties = set(
            conn.execute(
                text(
                    "SELECT c.party FROM consents c JOIN students s ON s.id = c.student_id "
                    "WHERE s.external_id = 'u-learner-b' AND c.withdrawn_at IS NULL"
                )
            ).scalars()
        )
    assert parties == {"school", "student"}


@pytest.fixture(scope="module")
def cookieless_browser(browser: Any) -> Iterator[Any]:  # noqa: F811
    """Headless Chromium that blocks third-party cookies, as Safari does and Chrome may
    (Playwright's contexts are private windows, which block them already)."""
    blocking = browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        args=["--headless", "--no-sandbox", "--disable-gpu", "--test-third-party-cookie-phaseout"],
    )
    yield blocking
    blocking.close()


def test_a_framed_placement_works_with_third_party_cookies_blocked(
    tool: Tool, platform: Platform, cookieless_browser: Any
) -> None:
    """Moodle and Canvas show content selection in an iframe: the tool (here on localhost)
    is a third party of the course page (127.0.0.1). Its state cookie is Partitioned, so
    a browser that blocks third-party cookies keeps it for that course page's frame."""
    platform.tool_url = tool.url.replace("127.0.0.1", "localhost")
    hint = platform.add(
        Scenario("u-teach", INSTRUCTOR_ROLES, message_type="LtiDeepLinkingRequest",
                 resource_link_id=None),
    )  # fmt: skip
    context = cookieless_browser.new_context()
    page = context.new_page()
    page.goto(platform.course_url(hint))
    frame = page.frame_locator("iframe[name=tool]")
    try:
        frame.locator("input[name=title]").fill("Quiz day")
        frame.locator("input[name=minutes]").fill("45")
        frame.locator("button[type=submit]").click()
        frame.locator("#placed").wait_for(timeout=30_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "framed-placement.png"), full_page=True)
        context.close()
    (placed,) = platform.deep_links
    items = placed["https://purl.imsglobal.org/spec/lti-dl/claim/content_items"]
    assert [item["title"] for item in items] == ["Quiz day"]

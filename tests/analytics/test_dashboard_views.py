"""The dashboard as a newcomer meets it, in headless Chromium against the real app.

Pasted links, the bucket kept over a reload, one time zone and the browser's
locale for every time, both charts over the whole lesson, titles that fit,
counts in the singular, and the palette shared with ``classpulse analyze``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine

from classpulse.harness.factories import (
    SeededLesson,
    SeedEvent,
    add_marker,
    insert_events,
    seed_lesson,
)
from shared.labels import LABELS, Expression
from shared.palette import EXPRESSION_COLOURS, palette
from tests.analytics.conftest import rotating_expressions

pytestmark = pytest.mark.slow

STUDENTS = [f"s{i}" for i in range(1, 7)]
#: A past lesson (2024-05-06 08:00-09:00 UTC) seen from Seoul (17:00-18:00).
ZONE = "Asia/Seoul"
#: Slide markers (minute, label); the last lies after every frame, within the lesson.
MARKERS = ((0, "Slide 1"), (5, "Slide 2"), (10, "Slide 3"), (50, "Questions"))
#: The y-axis titles' width against the height of their axis, per chart and axis.
TITLE_FIT = """(name) => {
  const chart = window.classpulse[name];
  return Object.values(chart.scales).filter((s) => s.axis === "y" && s.options.title.display)
    .map((s) => {
      chart.ctx.save();
      chart.ctx.font = Chart.helpers.toFont(s.options.title.font).string;
      const width = chart.ctx.measureText(s.options.title.text).width;
      chart.ctx.restore();
      return { text: s.options.title.text, width, height: s.height };
    });
}"""


@pytest.fixture
def lesson(clean_db: Engine) -> SeededLesson:
    """Six students every 30 s for the first 15 minutes of a one-hour lesson, four markers."""
    lesson = seed_lesson(clean_db, students=STUDENTS)
    for minute, label in MARKERS:
        add_marker(clean_db, lesson.lesson_id, lesson.at(minute * 60), label)
    insert_events(clean_db, lesson.lesson_id, rotating_expressions(lesson, STUDENTS, ticks=30))
    return lesson


def _page(browser: Any, **context: Any) -> tuple[Any, list[str]]:
    page = browser.new_context(viewport={"width": 1280, "height": 1100}, **context).new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


def _wait_loaded(page: Any, lesson: SeededLesson) -> None:
    page.wait_for_selector(
        f"body[data-loaded='{lesson.lesson_id}']", state="attached", timeout=15_000
    )


def _open(
    browser: Any, analytics_url: str, lesson: SeededLesson, fragment: str = "", **context: Any
) -> tuple[Any, list[str]]:
    """A new page on the lesson's dashboard through the LMS key, loaded; ``fragment`` adds
    to the link (``&bucket=1m``)."""
    page, errors = _page(browser, **context)
    page.goto(f"{analytics_url}/#key={lesson.lms_key}&lesson={lesson.lesson_id}{fragment}")
    _wait_loaded(page, lesson)
    return page, errors


def _until(page: Any, expression: str, timeout: float = 10.0) -> None:
    """Wait until ``expression`` is true in the page (wait_for_function needs eval, which
    the page's Content-Security-Policy refuses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {expression}")
        time.sleep(0.1)


def test_a_keyed_link_pasted_into_an_open_tab_loads_without_a_reload(
    analytics_url: str, lesson: SeededLesson, browser: Any
) -> None:
    page, errors = _page(browser)
    page.goto(f"{analytics_url}/")
    page.wait_for_selector("#key-panel:not([hidden])")
    page.evaluate("window.sameDocument = true")
    # As a pasted link: only the fragment changes, so the browser does not reload.
    page.evaluate(
        f"location.href = '{analytics_url}/#key={lesson.lms_key}&lesson={lesson.lesson_id}"
        "&bucket=5m'"
    )
    _wait_loaded(page, lesson)
    assert page.evaluate("window.sameDocument") is True
    assert page.is_hidden("#key-panel")
    assert page.input_value("#bucket-select") == "5m"
    assert page.evaluate("window.classpulse.points()") == 12  # 60 minutes in 5-minute buckets
    assert "key=" not in page.url

    # A link to another bucket of the same lesson, pasted again, follows too.
    page.evaluate(f"location.hash = '#lesson={lesson.lesson_id}&bucket=30s'")
    _until(page, "window.classpulse.points() === 120")
    assert page.input_value("#bucket-select") == "30s"
    assert errors == []


def test_the_bucket_choice_survives_a_reload(
    analytics_url: str, lesson: SeededLesson, browser: Any
) -> None:
    page, errors = _open(browser, analytics_url, lesson)
    assert page.evaluate("window.classpulse.points()") == 60
    page.select_option("#bucket-select", "30s")
    _until(page, "window.classpulse.points() === 120")
    assert "bucket=30s" in page.url

    page.reload()
    _wait_loaded(page, lesson)
    assert page.input_value("#bucket-select") == "30s"
    assert page.evaluate("window.classpulse.points()") == 120

    # A new tab on the bare address opens with the browser's last choice too.
    page.goto(f"{analytics_url}/#lesson={lesson.lesson_id}")
    _wait_loaded(page, lesson)
    assert page.input_value("#bucket-select") == "30s"
    assert errors == []


def test_times_in_one_named_zone_and_the_browsers_locale(
    analytics_url: str, lesson: SeededLesson, browser: Any
) -> None:
    page, errors = _open(browser, analytics_url, lesson, locale="de-DE", timezone_id=ZONE)
    start = lesson.starts_at.astimezone(ZoneInfo(ZONE))
    end = start + dt.timedelta(hours=1)

    # The zone is named once beside the lesson and on both time axes.
    assert ZONE in page.inner_text("#time-zone")
    for chart in ("chart", "studentChart"):
        title = page.evaluate(f"window.classpulse.{chart}.options.scales.x.title.text")
        assert ZONE in title
    # The lesson's start and end, and every tick, are Seoul times in German style.
    class_title = page.inner_text("#class-title")
    assert f"{start:%H:%M}–{end:%H:%M}" in class_title, class_title
    ticks = page.evaluate("window.classpulse.chart.scales.x.ticks.map((t) => t.label)")
    assert ticks[0] == f"{start:%H:%M}"
    assert all(re.fullmatch(r"\d\d:\d\d", tick) for tick in ticks), ticks
    texts = page.inner_text("main") + page.inner_text("#lesson-select")
    assert f"{start:%H:%M}" in page.inner_text("#lesson-select")
    assert not re.search(r"\b(AM|PM|UTC)\b", texts), texts
    tooltip = page.evaluate(
        "window.classpulse.chart.options.plugins.tooltip.callbacks.title([{ parsed: { x: 1.5 } }])"
    )
    assert tooltip == f"{start + dt.timedelta(minutes=1, seconds=30):%H:%M}"
    assert errors == []


def test_both_charts_span_the_lesson_with_every_marker_and_their_titles_fit(
    analytics_url: str, lesson: SeededLesson, browser: Any
) -> None:
    page, errors = _open(browser, analytics_url, lesson)
    page.select_option("#student-select", str(lesson.students["s1"]))
    _until(page, "window.classpulse.studentPoints() === 30")

    listed = page.locator("#segments button").all_inner_texts()
    assert len(listed) == len(MARKERS), listed
    assert "Questions" in listed[-1], listed
    for chart in ("chart", "studentChart"):
        axis = page.evaluate(
            f"(({{ min, max }}) => [min, max])(window.classpulse.{chart}.scales.x)"
        )
        assert axis[0] <= 0, (chart, axis)
        assert axis[1] >= 60, (chart, axis)
        markers = page.evaluate(
            f"window.classpulse.{chart}.options.plugins.lessonMarkers.markers.map((m) => m.x)"
        )
        assert [round(x) for x in markers] == [minute for minute, _ in MARKERS]
        assert all(axis[0] <= x <= axis[1] for x in markers)
    # No y-axis title longer than its axis, wide or narrow (one column) layout.
    for width in (1280, 1024, 800, 420):
        page.set_viewport_size({"width": width, "height": 1100})
        for chart, canvas in (("chart", "class-chart"), ("studentChart", "student-chart")):
            # Chart.js follows its box a moment after the resize.
            _until(
                page,
                f"window.classpulse.{chart}.width === "
                f"document.getElementById('{canvas}').parentElement.clientWidth",
            )
            for title in page.evaluate(TITLE_FIT, chart):
                assert title["width"] <= title["height"], (width, chart, title)
    page.set_viewport_size({"width": 1280, "height": 1100})
    # Zoomed in and back: the whole lesson again.
    page.locator("#segments button", has_text="Slide 2").click()
    page.locator("#reset-zoom").click()
    assert page.evaluate("window.classpulse.chart.scales.x.max") >= 60
    assert errors == []


def test_one_student_and_one_frame_are_singular(
    analytics_url: str, clean_db: Engine, browser: Any
) -> None:
    lesson = seed_lesson(clean_db, students=["solo"])
    insert_events(
        clean_db,
        lesson.lesson_id,
        [SeedEvent(lesson.students["solo"], lesson.at(90), Expression.HAPPY)],
    )
    page, errors = _open(browser, analytics_url, lesson)
    assert page.locator("#student-select option").all_inner_texts()[1] == "solo · 1 frame"
    page.select_option("#student-select", str(lesson.students["solo"]))
    _until(page, "window.classpulse.studentPoints() === 1")
    assert page.inner_text("#student-note") == "solo: 1 labelled frame."
    shown = page.inner_text("main")
    assert not re.search(r"\b1 (students|frames|time buckets)\b", shown), shown
    assert errors == []


def test_the_charts_use_the_palette_served_to_the_page(
    analytics_url: str, lesson: SeededLesson, browser: Any
) -> None:
    served = httpx.get(f"{analytics_url}/palette.json", timeout=5)
    assert served.status_code == 200
    assert served.json() == palette()
    assert tuple(EXPRESSION_COLOURS) == LABELS  # one colour per label, in label order

    page, errors = _open(browser, analytics_url, lesson)
    for chart in ("chart", "studentChart"):
        colours = page.evaluate(
            f"window.classpulse.{chart}.data.datasets.map((d) => [d.label, d.borderColor])"
        )
        expected = [[label, EXPRESSION_COLOURS[label]] for label in LABELS]
        expected.append(["face presence", palette()["face_presence"]])
        expected.append(["facing the screen", palette()["facing_screen"]])
        expected.append(["expression uncertain", palette()["uncertain"]])
        assert colours == expected
    assert errors == []

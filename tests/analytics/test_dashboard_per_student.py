"""The dashboard with a key that reads class figures only (issue 19, point 5), in
headless Chromium against the real app: it works, and says why per-student data is
not there instead of failing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from classpulse.harness.factories import SeededLesson, insert_events, seed_lesson
from tests.analytics.conftest import rotating_expressions

pytestmark = pytest.mark.slow

STUDENTS = [f"s{i}" for i in range(1, 7)]


@pytest.fixture
def past_lesson(clean_db: Engine) -> SeededLesson:
    """Six students, a frame every 30 s for ten minutes of a past lesson."""
    lesson = seed_lesson(clean_db, students=STUDENTS)
    insert_events(clean_db, lesson.lesson_id, rotating_expressions(lesson, STUDENTS, ticks=20))
    return lesson


def test_a_class_only_key_sees_the_class_and_is_told_why_students_are_not_listed(
    analytics_url: str, past_lesson: SeededLesson, browser: Any
) -> None:
    from playwright.sync_api import expect

    lesson = past_lesson
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The seeded teacher key has no per-student permission.
    page.goto(f"{analytics_url}/#key={lesson.teacher_key}&lesson={lesson.lesson_id}")
    page.wait_for_selector(
        f"body[data-loaded='{lesson.lesson_id}']", state="attached", timeout=15_000
    )

    assert page.evaluate("window.classpulse.points()") == 60  # the class chart
    expect(page.locator("#totals")).to_contain_text("6 students seen")
    expect(page.locator("#student-panel")).to_have_attribute("data-per-student", "refused")
    expect(page.locator("#student-select")).to_be_disabled()
    expect(page.locator("#student-note")).to_contain_text("per-student permission")
    expect(page.locator("#export-events")).to_be_hidden()
    expect(page.locator("#export-csv")).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()

    # Asked anyway (a stale page, a key changed meanwhile): the server refuses
    # and the panel says why, with no error for the whole page.
    page.evaluate(
        """(id) => {
          const select = document.getElementById("student-select");
          select.disabled = false;
          select.appendChild(new Option("s1", id));
        }""",
        str(lesson.students["s1"]),
    )
    page.select_option("#student-select", str(lesson.students["s1"]))
    expect(page.locator("#student-note")).to_contain_text("per-student permission")
    expect(page.locator("#error")).to_be_hidden()
    assert page.evaluate("window.classpulse.studentPoints()") == 0
    assert errors == []

"""The dashboard draws the share of faces too uncertain for a label, in headless Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from classpulse.harness.factories import SeededLesson, insert_events
from tests.analytics.conftest import every_ten_seconds, happy_or_unsure
from tests.analytics.test_dashboard_views import _open, _until

pytestmark = pytest.mark.slow

SEVEN = [f"s{i}" for i in range(1, 8)]


@pytest.fixture
def unsure_in_minute_two(clean_db: Engine, lesson: SeededLesson) -> SeededLesson:
    """Seven students every 10 s for 4 minutes, smiling; in minute 2 the model is unsure of
    s1's and s2's faces (withheld top label: sad)."""
    events = [
        happy_or_unsure(student, lesson.at(seconds), unsure=120 <= seconds < 180 and n < 2)
        for n, student, seconds in every_ten_seconds(lesson, SEVEN, minutes=4)
    ]
    insert_events(clean_db, lesson.lesson_id, events)
    return lesson


def test_the_charts_draw_the_uncertain_share_and_the_totals_name_it(
    analytics_url: str, unsure_in_minute_two: SeededLesson, browser: Any
) -> None:
    lesson = unsure_in_minute_two
    page, errors = _open(browser, analytics_url, lesson, "&bucket=1m")

    def series(chart: str) -> dict[str, list[float | None]]:
        return page.evaluate(
            f"""() => Object.fromEntries(window.classpulse.{chart}.data.datasets
                 .map((d) => [d.label, d.data.map((p) => p.y)]))"""
        )

    drawn = series("chart")
    # 2 of the 7 faces of each frame in minute 2; the withheld "sad" is never drawn.
    assert drawn["expression uncertain"][:4] == [0.0, 0.0, round(2 / 7, 4), 0.0]
    assert drawn["happy"][:4] == [1.0] * 4
    assert drawn["sad"][:4] == [0.0] * 4
    # 12 uncertain of 168 classified faces.
    assert "expression uncertain for 7%" in page.inner_text("#totals")

    page.select_option("#student-select", str(lesson.students["s1"]))
    _until(page, "window.classpulse.studentPoints() === 18")
    mine = series("studentChart")
    assert mine["expression uncertain"] == [0.0, 0.0, 1.0, 0.0]
    assert mine["happy"] == [1.0, 1.0, None, 1.0]
    assert errors == []

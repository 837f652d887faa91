"""The dashboard draws "facing the screen" beside face presence, in headless Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from classpulse.harness.factories import SeededLesson, SeedEvent, add_marker, insert_events
from shared.labels import Expression
from tests.analytics.conftest import every_ten_seconds
from tests.analytics.test_dashboard_views import _open, _until

pytestmark = pytest.mark.slow

SIX = [f"s{i}" for i in range(1, 7)]


@pytest.fixture
def turned_during_the_proof(clean_db: Engine, lesson: SeededLesson) -> SeededLesson:
    """Six students every 10 s for 6 minutes; during "Proof" (minutes 2-4) s1..s3 turn away."""
    add_marker(clean_db, lesson.lesson_id, lesson.at(0), "Intro")
    add_marker(clean_db, lesson.lesson_id, lesson.at(120), "Proof")
    add_marker(clean_db, lesson.lesson_id, lesson.at(240), "Exercise")
    events = [
        SeedEvent(
            student,
            lesson.at(seconds),
            Expression.NEUTRAL,
            facing=not (120 <= seconds < 240 and n < 3),
        )
        for n, student, seconds in every_ten_seconds(lesson, SIX, minutes=6)
    ]
    insert_events(clean_db, lesson.lesson_id, events)
    return lesson


def test_the_class_chart_draws_facing_beside_presence_and_names_the_turn(
    analytics_url: str, turned_during_the_proof: SeededLesson, browser: Any
) -> None:
    lesson = turned_during_the_proof
    page, errors = _open(browser, analytics_url, lesson, "&bucket=1m")

    series = page.evaluate(
        """() => Object.fromEntries(window.classpulse.chart.data.datasets
             .filter((d) => d.yAxisID === "y2").map((d) => [d.label, d.data.map((p) => p.y)]))"""
    )
    assert list(series) == ["face presence", "facing the screen", "expression uncertain"]
    assert series["face presence"][:6] == [1.0] * 6
    assert series["facing the screen"][:6] == [1.0, 1.0, 0.5, 0.5, 1.0, 1.0]

    # 216 frames, 36 turned away: 83 % facing; the Proof segment at half.
    assert "facing the screen 83%" in page.inner_text("#totals")
    proof = page.locator("#segments button", has_text="Proof").inner_text()
    assert "facing the screen 50%" in proof
    moments = page.locator("#moments button").all_inner_texts()
    assert any("turned towards the screen" in m and "Proof" in m for m in moments), moments

    page.select_option("#student-select", str(lesson.students["s1"]))
    _until(page, "window.classpulse.studentPoints() === 36")
    # s1 turned away for 12 of its 36 frames.
    assert page.inner_text("#student-note") == "s1: 36 labelled frames, facing the screen 67%."
    # The student's chart draws its presence and facing too: away through the Proof.
    student = page.evaluate(
        """() => Object.fromEntries(window.classpulse.studentChart.data.datasets
             .filter((d) => d.yAxisID === "y2").map((d) => [d.label, d.data.map((p) => p.y)]))"""
    )
    assert student["face presence"] == [1.0] * 6
    assert student["facing the screen"] == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    shown = page.inner_text("main").lower()
    assert "attention" not in shown
    assert "engagement" not in shown
    assert errors == []

"""The teacher dashboard in headless Chromium against the real app and a seeded live lesson."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from classpulse.harness.factories import (
    SeededLesson,
    SeedEvent,
    add_key,
    add_marker,
    insert_events,
    seed_lesson,
)
from shared.db.models import KeyRole
from shared.labels import Expression
from shared.schemas import live_channel
from tests.analytics.test_live import notice

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CALM = (Expression.NEUTRAL, Expression.HAPPY, Expression.NEUTRAL)
HARD = (Expression.SAD, Expression.ANGRY, Expression.FEAR)
STUDENTS = [f"s{i}" for i in range(1, 7)]


@pytest.fixture
def live_lesson(clean_db: Engine) -> SeededLesson:
    """A demo lesson that started 20 min 45 s ago (20 closed one-minute buckets so far; the
    open one closes 15 s after this fixture), with three slides and a hard Slide 3
    (minutes 10-15); events every 30 s until minute 15. Its teacher key may drill down
    to one student (the LMS granted it the per-student permission)."""
    starts = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=20, seconds=45)
    lesson = seed_lesson(clean_db, students=STUDENTS, starts_at=starts, minutes=60, is_demo=True)
    with Session(clean_db) as session:
        lesson.teacher_key = add_key(
            session, lesson.organisation_id, KeyRole.TEACHER, lesson.class_id, per_student=True
        )
        session.commit()
    for minute, label in ((0, "Slide 1"), (5, "Slide 2"), (10, "Slide 3")):
        add_marker(clean_db, lesson.lesson_id, lesson.at(minute * 60), label)
    events = []
    for n, external_id in enumerate(STUDENTS):
        for tick in range(30):
            mix = HARD if 20 <= tick < 30 else CALM
            events.append(
                SeedEvent(
                    lesson.students[external_id], lesson.at(tick * 30 + n), mix[(tick + n) % 3]
                )
            )
    insert_events(clean_db, lesson.lesson_id, events)
    return lesson


def test_dashboard_chart_moments_drill_down_and_live(
    analytics_url: str,
    live_lesson: SeededLesson,
    clean_db: Engine,
    redis_client: redis_lib.Redis,
    browser: Any,
) -> None:
    from playwright.sync_api import expect

    lesson = live_lesson
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The page's Content-Security-Policy must not block anything it uses.
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else 0,
    )
    page.goto(f"{analytics_url}/#key={lesson.teacher_key}&lesson={lesson.lesson_id}")
    page.wait_for_selector(
        f"body[data-loaded='{lesson.lesson_id}']", state="attached", timeout=15_000
    )

    # The chart: one point per closed one-minute bucket, markers known, DEMO shown.
    assert page.evaluate("window.classpulse.points()") == 20
    # Seven expressions, face presence, facing the screen and the uncertain share.
    assert page.evaluate("window.classpulse.chart.data.datasets.length") == 10
    assert (
        page.evaluate("window.classpulse.chart.options.plugins.lessonMarkers.markers.length") == 3
    )
    expect(page.locator("#demo-badge")).to_be_visible()
    assert "key=" not in page.url  # the key left the address bar
    assert "feeling" not in page.inner_text("main").lower()
    expect(page.locator("footer")).to_contain_text("Responsible use")

    # A moment click zooms onto Slide 3; a segment (marker) click onto Slide 2.
    moments = page.locator("#moments button")
    expect(moments).to_have_count(1)
    expect(moments.first).to_contain_text("Slide 3")
    moments.first.click()
    expect(page.locator("#class-chart")).to_have_attribute("data-zoom", "10-15")
    assert page.evaluate("window.classpulse.chart.scales.x.min") < 10
    # Over two minutes, ticks fall between whole minutes: still no label repeats.
    ticks = page.evaluate(
        """() => {
          const chart = window.classpulse.chart;
          Object.assign(chart.options.scales.x, { min: 11, max: 13 });
          chart.update();
          return chart.scales.x.ticks.map((t) => t.label);
        }"""
    )
    assert len(ticks) > 3
    assert len(set(ticks)) == len(ticks), ticks
    page.locator("#segments button", has_text="Slide 2").click()
    expect(page.locator("#class-chart")).to_have_attribute("data-zoom", "5-10")
    page.locator("#reset-zoom").click()

    # Drill-down to one student.
    page.select_option("#student-select", str(lesson.students["s1"]))
    expect(page.locator("#student-note")).to_contain_text("s1: 30 labelled frames")
    assert page.evaluate("window.classpulse.studentPoints()") == 30

    # Live: a new frame committed and announced reaches the chart.
    page.wait_for_selector("body[data-live='ready']", timeout=10_000)
    totals_before = page.inner_text("#totals")
    now = dt.datetime.now(dt.UTC)
    insert_events(
        clean_db,
        lesson.lesson_id,
        [SeedEvent(lesson.students[s], now, Expression.SURPRISE) for s in STUDENTS],
    )
    for s in STUDENTS:
        redis_client.publish(live_channel(lesson.lesson_id), notice(lesson, s, now, "surprise"))
    # The open bucket is pushed once it has closed (the lesson's grid is whole minutes).
    closes = 60 - (now - lesson.starts_at).total_seconds() % 60
    page.wait_for_selector("body[data-live-events]", timeout=(closes + 10) * 1000)
    surprise_index = list(Expression).index(Expression.SURPRISE)
    last = page.evaluate(f"window.classpulse.chart.data.datasets[{surprise_index}].data.at(-1)")
    assert last["y"] == 1.0
    expect(page.locator("#live-badge")).to_be_visible()
    # The totals follow the live lesson too, keeping the teacher's drill-down.
    expect(page.locator("#totals")).not_to_have_text(totals_before, timeout=15_000)
    assert page.input_value("#student-select") == str(lesson.students["s1"])

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert errors == []

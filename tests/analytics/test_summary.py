"""Lesson summary on a constructed lesson where the shift is known: Slide 3 is hard."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from classpulse.harness.factories import SeededLesson, SeedEvent, add_marker, insert_events
from shared.labels import Expression
from tests.analytics.conftest import bearer

CALM = (Expression.NEUTRAL, Expression.NEUTRAL, Expression.HAPPY)
HARD = (Expression.SAD, Expression.ANGRY, Expression.FEAR)


@pytest.fixture
def hard_slide_lesson(clean_db: Engine, lesson: SeededLesson) -> SeededLesson:
    """20 minutes, 6 students, a frame every 30 s; slides change every 5 minutes and
    during "Slide 3" (minutes 10-15) the class shows sad, angry and fear."""
    for minute, label in ((0, "Slide 1"), (5, "Slide 2"), (10, "Slide 3"), (15, "Slide 4")):
        add_marker(clean_db, lesson.lesson_id, lesson.at(minute * 60), label)
    events = []
    for n, external_id in enumerate(["s1", "s2", "s3", "s4", "s5", "s6"]):
        for tick in range(40):
            seconds = tick * 30 + n  # students are a second apart
            mix = HARD if 600 <= seconds < 900 else CALM
            events.append(
                SeedEvent(lesson.students[external_id], lesson.at(seconds), mix[(tick + n) % 3])
            )
    events.append(SeedEvent(lesson.students["s7"], lesson.at(30), face=False))
    insert_events(clean_db, lesson.lesson_id, events)
    return lesson


def test_moments_find_the_hard_slide(api: httpx.Client, hard_slide_lesson: SeededLesson) -> None:
    lesson = hard_slide_lesson
    response = api.get(
        f"/v1/lessons/{lesson.lesson_id}/summary", headers=bearer(lesson.teacher_key)
    )
    assert response.status_code == 200, response.text
    body = response.json()

    (moment,) = body["moments"]
    assert moment["kind"] == "negative_rise"
    assert (moment["start"], moment["end"]) == ("2024-05-06T08:10:00Z", "2024-05-06T08:15:00Z")
    assert moment["marker"] == "Slide 3"
    assert moment["marker_at"] == "2024-05-06T08:10:00Z"
    assert moment["value"] == pytest.approx(1.0, abs=1e-3)
    assert moment["baseline"] == 0.0


def test_segments_totals_and_students(api: httpx.Client, hard_slide_lesson: SeededLesson) -> None:
    lesson = hard_slide_lesson
    body = api.get(f"/v1/lessons/{lesson.lesson_id}/summary", headers=bearer(lesson.lms_key)).json()

    assert [s["marker"] for s in body["segments"]] == ["Slide 1", "Slide 2", "Slide 3", "Slide 4"]
    slide3 = body["segments"][2]
    assert (slide3["start"], slide3["end"]) == ("2024-05-06T08:10:00Z", "2024-05-06T08:15:00Z")
    negative = sum(slide3["expressions"][k] for k in ("sad", "angry", "fear", "disgust"))
    assert negative == pytest.approx(1.0, abs=1e-3)
    assert slide3["frames"] == 60
    assert slide3["students_seen"] == 6
    assert body["segments"][0]["expressions"]["sad"] == 0.0

    totals = body["totals"]
    assert totals["frames"] == 241
    assert totals["faces_labelled"] == 240
    assert totals["students_seen"] == 7
    assert totals["face_share"] == pytest.approx(240 / 241, abs=1e-4)
    assert totals["expressions"]["sad"] == pytest.approx(20 / 240, abs=1e-4)
    assert [s["external_id"] for s in body["students"]] == [
        "s1",
        "s2",
        "s3",
        "s4",
        "s5",
        "s6",
        "s7",
    ]
    assert body["students"][6]["face_share"] == 0.0
    assert [m["label"] for m in body["markers"]] == ["Slide 1", "Slide 2", "Slide 3", "Slide 4"]
    assert body["lesson"]["class_title"] == "Maths 7B"
    assert body["lesson"]["is_demo"] is False

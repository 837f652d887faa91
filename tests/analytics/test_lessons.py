"""Lesson picker, frame counts and the API description."""

from __future__ import annotations

import datetime as dt
import json

import httpx
from sqlalchemy import Engine, text

from classpulse.harness.factories import SeededLesson, SeedEvent, insert_events
from tests.analytics.conftest import bearer


def test_lessons_are_listed_newest_first_with_their_class(
    api: httpx.Client, lesson: SeededLesson, clean_db: Engine
) -> None:
    later = lesson.starts_at + dt.timedelta(days=1)
    with clean_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO lessons (id, class_id, title, starts_at, ends_at, is_demo) "
                "VALUES (gen_random_uuid(), :c, 'Demo lesson', :s, :e, true)"
            ),
            {"c": lesson.class_id, "s": later, "e": later + dt.timedelta(hours=1)},
        )
    body = api.get("/v1/lessons", headers=bearer(lesson.teacher_key)).json()
    assert [(item["title"], item["is_demo"]) for item in body["lessons"]] == [
        ("Demo lesson", True),
        ("Fractions", False),
    ]
    assert {item["class_title"] for item in body["lessons"]} == {"Maths 7B"}
    assert body["lessons"][1]["starts_at"] == "2024-05-06T08:00:00Z"
    assert body["lessons"][1]["is_live"] is False


def test_frame_stats_count_frames_by_status_and_reason(
    api: httpx.Client, lesson: SeededLesson, clean_db: Engine
) -> None:
    s1 = lesson.students["s1"]
    insert_events(clean_db, lesson.lesson_id, [SeedEvent(s1, lesson.at(i)) for i in range(4)])
    with clean_db.begin() as conn:
        conn.execute(
            text(
                "UPDATE frames SET status = 'failed', failure_reason = 'undecodable' "
                "WHERE id IN (SELECT id FROM frames ORDER BY captured_at LIMIT 1)"
            )
        )
    body = api.get(
        f"/v1/lessons/{lesson.lesson_id}/frames/stats", headers=bearer(lesson.lms_key)
    ).json()
    assert body["accepted"] == 4
    assert body["by_status"] == {"queued": 0, "done": 3, "failed": 1, "expired": 0}
    assert body["failed_by_reason"] == {"undecodable": 1}


def test_frame_stats_of_a_lesson_at_the_ends_of_time(
    api: httpx.Client, lesson: SeededLesson, clean_db: Engine
) -> None:
    """A lesson stored as starting in year 1 and ending in 9999 (an LMS's "no dates")
    still has its frames counted: the capture-time bound stops at the ends of time."""
    insert_events(clean_db, lesson.lesson_id, [SeedEvent(lesson.students["s1"], lesson.at(0))])
    with clean_db.begin() as conn:
        conn.execute(
            text("UPDATE lessons SET starts_at = :s, ends_at = :e WHERE id = :l"),
            {
                "s": dt.datetime(1, 1, 1, tzinfo=dt.UTC),
                "e": dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC),
                "l": lesson.lesson_id,
            },
        )
    answer = api.get(f"/v1/lessons/{lesson.lesson_id}/frames/stats", headers=bearer(lesson.lms_key))
    assert answer.status_code == 200, answer.text
    assert answer.json()["by_status"]["done"] == 1


def test_openapi_documents_every_endpoint_in_terms_of_displayed_expressions(
    api: httpx.Client,
) -> None:
    spec = api.get("/openapi.json").json()
    assert {
        "/v1/lessons",
        "/v1/lessons/{lesson}/timeline",
        "/v1/lessons/{lesson}/students/{student}/timeline",
        "/v1/lessons/{lesson}/summary",
        "/v1/lessons/{lesson}/live",
        "/v1/lessons/{lesson}/export",
    } <= set(spec["paths"])
    described = json.dumps(spec).lower()
    assert "displayed expression" in described
    assert "feeling" not in described
    assert "emotion" not in described
    timeline = spec["paths"]["/v1/lessons/{lesson}/timeline"]["get"]
    assert {"401", "403", "404", "422"} <= set(timeline["responses"])


def test_dashboard_page_and_vendored_chart_library(api: httpx.Client) -> None:
    for path in ("/", "/dashboard"):
        page = api.get(path)
        assert page.status_code == 200
        assert "displayed expressions" in page.text
    script = api.get("/static/vendor/chart.umd.min.js")
    assert script.status_code == 200
    assert "Chart.js v4" in script.text[:200]

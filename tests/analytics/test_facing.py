"""The "facing the screen" share in class and student timelines, summaries, moments and
exports, under the same group-size rules as the other shares (issue 26)."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest
from sqlalchemy import Engine

from classpulse.harness.factories import SeededLesson, SeedEvent, add_marker, insert_events
from shared.labels import Expression
from tests.analytics.conftest import K, every_ten_seconds, get

HAPPY = Expression.HAPPY
SIX = [f"s{i}" for i in range(1, 7)]


@pytest.fixture
def turned_in_minute_two(clean_db: Engine, lesson: SeededLesson) -> SeededLesson:
    """Six students, a frame each every 10 s for 4 minutes, all facing the screen except
    in minute 2, when s1..s3 are turned away; s7 is seen by a detector without a pose."""
    events = [
        SeedEvent(student, lesson.at(seconds), HAPPY, facing=not (120 <= seconds < 180 and n < 3))
        for n, student, seconds in every_ten_seconds(lesson, SIX, minutes=4)
    ]
    events.append(SeedEvent(lesson.students["s7"], lesson.at(30), HAPPY))
    insert_events(clean_db, lesson.lesson_id, events)
    return lesson


@pytest.mark.parametrize("bucket", ["1m", "10s"])  # the rollup, then raw events
def test_class_timeline_shows_the_share_facing_the_screen(
    api: httpx.Client, turned_in_minute_two: SeededLesson, bucket: str
) -> None:
    lesson = turned_in_minute_two
    body = get(api, lesson, "timeline", bucket=bucket, to="2024-05-06T08:04:00Z").json()
    by_minute: dict[int, list[float]] = {}
    for b in body["buckets"]:
        minute = int(b["start"][14:16])
        by_minute.setdefault(minute, []).append(b["facing_share"])
        # Everyone who is there has a face: presence does not move, facing does.
        assert b["face_share"] == 1.0
    assert by_minute[0] == by_minute[1] == by_minute[3] == [1.0] * len(by_minute[0])
    assert by_minute[2] == [0.5] * len(by_minute[2])


def test_facing_share_needs_k_students_with_a_pose(
    api: httpx.Client, clean_db: Engine, lesson: SeededLesson
) -> None:
    # K students seen; one short of K of them had a head pose (the rest: no keypoints).
    events = [
        SeedEvent(lesson.students[s], lesson.at(5 + n), HAPPY, facing=n < K - 1 or None)
        for n, s in enumerate(SIX[:K])
    ]
    insert_events(clean_db, lesson.lesson_id, events)
    (bucket,) = get(api, lesson, "timeline", to="2024-05-06T08:01:00Z").json()["buckets"]
    assert bucket["suppressed"] is False
    assert bucket["face_share"] == 1.0
    assert bucket["expressions"]["happy"] == 1.0
    assert bucket["facing_share"] is None
    summary = get(api, lesson, "summary", key=lesson.lms_key, bucket="1m").json()
    assert summary["totals"]["facing_share"] is None
    # One student's own figures are not a class view: shown to a key allowed to see them.
    rows = {s["external_id"]: s for s in summary["students"]}
    assert rows["s1"]["facing_share"] == 1.0
    assert rows[SIX[K - 1]]["facing_share"] is None


def test_student_timeline_shows_facing_to_a_key_with_the_per_student_permission(
    api: httpx.Client, turned_in_minute_two: SeededLesson
) -> None:
    lesson = turned_in_minute_two
    path = "students/s1/timeline"
    assert get(api, lesson, path, bucket="1m").status_code == 403  # teacher key: no permission
    body = get(api, lesson, path, key=lesson.lms_key, bucket="1m").json()
    shares = [b["facing_share"] for b in body["buckets"][:4]]
    assert shares == [1.0, 1.0, 0.0, 1.0]


def test_summary_totals_segments_and_the_class_turned_away_moment(
    api: httpx.Client, clean_db: Engine, turned_in_minute_two: SeededLesson
) -> None:
    lesson = turned_in_minute_two
    add_marker(clean_db, lesson.lesson_id, lesson.at(0), "Intro")
    add_marker(clean_db, lesson.lesson_id, lesson.at(120), "Proof")
    add_marker(clean_db, lesson.lesson_id, lesson.at(180), "Exercise")
    body = get(api, lesson, "summary", key=lesson.lms_key, bucket="1m").json()

    # 6 students x 24 frames, 18 of them turned away.
    assert body["totals"]["facing_share"] == pytest.approx(126 / 144, abs=1e-4)
    segments = {s["marker"]: s["facing_share"] for s in body["segments"]}
    assert segments == {"Intro": 1.0, "Proof": 0.5, "Exercise": 1.0}
    (moment,) = [m for m in body["moments"] if m["kind"] == "facing_drop"]
    assert (moment["start"], moment["end"]) == ("2024-05-06T08:02:00Z", "2024-05-06T08:03:00Z")
    assert moment["marker"] == "Proof"
    assert moment["value"] == 0.5
    assert moment["baseline"] == 1.0
    assert "turned towards the screen" in moment["description"]
    assert "attention" not in json.dumps(body).lower()
    students = {s["external_id"]: s["facing_share"] for s in body["students"]}
    assert students["s1"] == pytest.approx(18 / 24, abs=1e-4)
    assert students["s6"] == 1.0


def test_exports_carry_the_facing_share_and_each_face_pose(
    api: httpx.Client, turned_in_minute_two: SeededLesson
) -> None:
    lesson = turned_in_minute_two
    to = "2024-05-06T08:04:00Z"
    timeline = get(api, lesson, "export", format="csv", what="timeline", bucket="1m", to=to)
    rows = list(csv.DictReader(io.StringIO(timeline.text)))
    assert [r["facing_share"] for r in rows] == ["1.0", "1.0", "0.5", "1.0"]

    events = get(api, lesson, "export", key=lesson.lms_key, format="json", what="events", to=to)
    assert events.status_code == 200, events.text
    records = events.json()
    turned = [r for r in records if r["facing"] is False]
    assert len(turned) == 18
    assert all(r["yaw"] == 60.0 and r["pitch"] == 0.0 for r in turned)
    unposed = [r for r in records if r["external_id"] == "s7"]
    assert [(r["yaw"], r["pitch"], r["facing"]) for r in unposed] == [(None, None, None)]


def test_openapi_describes_facing_as_head_direction(api: httpx.Client) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    described = schemas["GroupStats"]["properties"]["facing_share"]["description"]
    assert described.startswith("Facing the screen")
    assert "not where eyes look" in described
    assert "facing_drop" in schemas["MomentOut"]["properties"]["kind"]["description"]

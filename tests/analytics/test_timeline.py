"""Class and student timelines on the real PostgreSQL: buckets, time zones, suppression."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import Engine

from classpulse.harness.factories import SeededLesson, SeedEvent, insert_events
from shared.labels import Expression
from tests.analytics.conftest import bearer, get

HAPPY, SAD, NEUTRAL = Expression.HAPPY, Expression.SAD, Expression.NEUTRAL


def timeline(api: httpx.Client, lesson: SeededLesson, **params: str) -> dict:
    response = get(api, lesson, "timeline", **params)
    assert response.status_code == 200, response.text
    return response.json()


def test_bucket_edges_are_half_open_and_start_at_the_lesson_start(
    api: httpx.Client, lesson: SeededLesson, clean_db: Engine
) -> None:
    ids = [lesson.students[f"s{i}"] for i in range(1, 6)]
    just_before = dt.timedelta(seconds=59, microseconds=999_999)
    events = [SeedEvent(s, lesson.at(0), HAPPY) for s in ids]  # first instant of bucket 0
    events += [SeedEvent(s, lesson.at(0) + just_before, HAPPY) for s in ids]  # last of bucket 0
    events += [SeedEvent(s, lesson.at(60), SAD) for s in ids]  # first instant of bucket 1
    insert_events(clean_db, lesson.lesson_id, events)

    body = timeline(api, lesson, bucket="1m", to="2024-05-06T08:03:00Z")

    starts = [b["start"] for b in body["buckets"]]
    assert starts == ["2024-05-06T08:00:00Z", "2024-05-06T08:01:00Z", "2024-05-06T08:02:00Z"]
    first, second, empty = body["buckets"]
    assert (first["frames"], first["students_seen"], first["dominant"]) == (10, 5, "happy")
    assert first["expressions"]["happy"] == 1.0
    assert (second["frames"], second["dominant"]) == (5, "sad")
    assert empty["suppressed"] is True  # no students: no figures at all
    assert empty["frames"] is None
    assert empty["expressions"] is None


def test_from_with_an_offset_is_converted_to_utc(
    api: httpx.Client, lesson: SeededLesson, clean_db: Engine
) -> None:
    ids = [lesson.students[f"s{i}"] for i in range(1, 6)]
    insert_events(clean_db, lesson.lesson_id, [SeedEvent(s, lesson.at(75), HAPPY) for s in ids])
    insert_events(clean_db, lesson.lesson_id, [SeedEvent(s, lesson.at(15), SAD) for s in ids])

    # 10:01:30+02:00 is 08:01:30Z: buckets stay aligned to the lesson start (08:00Z).
    body = timeline(
        api,
        lesson,
        bucket="30s",
        **{"from": "2024-05-06T10:01:00+02:00", "to": "2024-05-06T10:02:00+02:00"},
    )

    assert body["start"] == "2024-05-06T08:01:00Z"
    assert body["end"] == "2024-05-06T08:02:00Z"
    assert [b["start"] for b in body["buckets"]] == ["2024-05-06T08:01:00Z", "2024-05-06T08:01:30Z"]
    # The 08:00:15 events are outside; the empty bucket is suppressed.
    assert [b["frames"] for b in body["buckets"]] == [5, None]


def test_a_naive_time_is_refused(api: httpx.Client, lesson: SeededLesson) -> None:
    response = get(api, lesson, "timeline", **{"from": "2024-05-06T08:00:00"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_an_unknown_bucket_is_a_validation_error(api: httpx.Client, lesson: SeededLesson) -> None:
    response = get(api, lesson, "timeline", lesson.lms_key, bucket="7s")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "bucket"


def test_buckets_with_fewer_students_than_the_group_size_are_suppressed(
    api: httpx.Client, lesson: SeededLesson, clean_db: Engine
) -> None:
    ids = [lesson.students[f"s{i}"] for i in range(1, 8)]
    # Minute 0: four students (one short of 5). Minute 1: five students, 3 happy 2 sad,
    # plus two students without a face.
    events = [SeedEvent(s, lesson.at(10), HAPPY) for s in ids[:4]]
    events += [SeedEvent(s, lesson.at(70), HAPPY, confidence=0.9) for s in ids[:3]]
    events += [SeedEvent(s, lesson.at(70), SAD, confidence=0.4) for s in ids[3:5]]
    events += [SeedEvent(s, lesson.at(70), face=False) for s in ids[5:7]]
    insert_events(clean_db, lesson.lesson_id, events)

    small, enough = timeline(api, lesson, bucket="1m", to="2024-05-06T08:02:00Z")["buckets"]

    assert small["suppressed"] is True
    assert small["students_seen"] is None  # no counts either: see test_k_anonymity
    assert small["expressions"] is None
    assert small["dominant"] is None
    assert small["face_share"] is None
    assert small["mean_confidence"] is None
    assert enough["suppressed"] is False
    assert enough["students_seen"] == 7
    assert enough["frames"] == 7
    assert enough["faces_labelled"] == 5
    assert enough["face_share"] == pytest.approx(5 / 7, abs=1e-4)
    assert enough["expressions"]["happy"] == pytest.approx(0.6)
    assert enough["expressions"]["sad"] == pytest.approx(0.4)
    assert enough["expressions"]["neutral"] == 0.0
    assert enough["dominant"] == "happy"
    assert enough["mean_confidence"] == pytest.approx((3 * 0.9 + 2 * 0.4) / 5, abs=1e-4)


def test_student_timeline_is_never_suppressed_and_lists_raw_points(
    api: httpx.Client, lesson: SeededLesson, clean_db: Engine
) -> None:
    s1 = lesson.students["s1"]
    insert_events(
        clean_db,
        lesson.lesson_id,
        [
            SeedEvent(s1, lesson.at(5), SAD),
            SeedEvent(s1, lesson.at(10), face=False),
            SeedEvent(s1, lesson.at(65), HAPPY),
        ],
    )

    response = api.get(
        f"/v1/lessons/{lesson.lesson_id}/students/{s1}/timeline",
        params={"bucket": "1m", "to": "2024-05-06T08:02:00Z"},
        headers=bearer(lesson.student_token("s1")),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["external_id"] == "s1"
    assert body["min_group_size"] is None
    first, second = body["buckets"]
    assert first["suppressed"] is False
    assert first["students_seen"] == 1
    assert first["expressions"]["sad"] == 1.0
    assert first["face_share"] == 0.5
    assert second["dominant"] == "happy"
    assert [(p["captured_at"], p["label"]) for p in body["points"]] == [
        ("2024-05-06T08:00:05Z", "sad"),
        ("2024-05-06T08:01:05Z", "happy"),
    ]


def test_smoothing_relabels_a_lone_frame_with_the_student_s_recent_mix(
    api: httpx.Client, lesson: SeededLesson, clean_db: Engine
) -> None:
    s1 = lesson.students["s1"]
    labels = [HAPPY, HAPPY, SAD, HAPPY, HAPPY]
    insert_events(
        clean_db,
        lesson.lesson_id,
        [SeedEvent(s1, lesson.at(5 * i), label) for i, label in enumerate(labels)],
    )
    url = f"/v1/lessons/{lesson.lesson_id}/students/{s1}/timeline"
    params = {"bucket": "1m", "to": "2024-05-06T08:01:00Z"}

    raw = api.get(url, params=params, headers=bearer(lesson.lms_key)).json()
    smooth = api.get(url, params={**params, "smooth": "3"}, headers=bearer(lesson.lms_key)).json()

    assert raw["buckets"][0]["expressions"]["sad"] == pytest.approx(0.2)
    assert smooth["smooth"] == 3
    assert smooth["buckets"][0]["expressions"]["sad"] == 0.0
    assert smooth["buckets"][0]["expressions"]["happy"] == 1.0

"""Faces too uncertain for a label in class and student timelines, summaries and exports:
counted on their own, left out of the expression shares, under the same group-size rules
(issue 21)."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from sqlalchemy import Engine

from classpulse.harness.factories import SeededLesson, SeedEvent, insert_events
from shared.labels import Expression
from tests.analytics.conftest import K, every_ten_seconds, get, happy_or_unsure
from tests.analytics.test_facing import SIX

HAPPY, SAD = Expression.HAPPY, Expression.SAD
SEVEN = [*SIX, "s7"]
TO = "2024-05-06T08:03:00Z"


@pytest.fixture
def unsure_in_minute_one(clean_db: Engine, lesson: SeededLesson) -> SeededLesson:
    """Seven students, a happy face every 10 s for 3 minutes; in minute 1, the faces of s1
    and s2 are too uncertain for a label (the withheld top label: sad), so K = 5 students
    still have a labelled face."""
    events = [
        happy_or_unsure(student, lesson.at(seconds), unsure=60 <= seconds < 120 and n < 2)
        for n, student, seconds in every_ten_seconds(lesson, SEVEN, minutes=3)
    ]
    insert_events(clean_db, lesson.lesson_id, events)
    return lesson


@pytest.mark.parametrize(
    ("bucket", "smooth"), [("1m", "0"), ("10s", "0"), ("1m", "3")]
)  # the rollup, raw events, smoothed raw events
def test_class_timeline_counts_uncertain_faces_apart_from_the_shares(
    api: httpx.Client, unsure_in_minute_one: SeededLesson, bucket: str, smooth: str
) -> None:
    body = get(api, unsure_in_minute_one, "timeline", bucket=bucket, smooth=smooth, to=TO).json()
    by_minute: dict[int, list[dict]] = {}
    for b in body["buckets"]:
        by_minute.setdefault(int(b["start"][14:16]), []).append(b)
    for minute, buckets in by_minute.items():
        uncertain = sum(b["faces_uncertain"] for b in buckets)
        labelled = sum(b["faces_labelled"] for b in buckets)
        # The withheld "sad" labels never reach the shares: only happy faces are labelled.
        assert all(b["expressions"]["happy"] == 1.0 for b in buckets)
        if minute == 1:
            assert (uncertain, labelled) == (12, 30)
            assert {b["uncertain_share"] for b in buckets} == {round(2 / 7, 4)}
        else:
            assert (uncertain, labelled) == (0, 42)
            assert {b["uncertain_share"] for b in buckets} == {0.0}


def test_uncertain_share_needs_k_students_with_a_labelled_face(
    api: httpx.Client, clean_db: Engine, lesson: SeededLesson
) -> None:
    # K students seen, all classified; only K - 1 of them with a face sure enough for a label.
    events = [
        SeedEvent(lesson.students[s], lesson.at(5 + n), HAPPY, confidence=0.3, uncertain=n == 0)
        for n, s in enumerate(SIX[:K])
    ]
    insert_events(clean_db, lesson.lesson_id, events)
    (bucket,) = get(api, lesson, "timeline", to="2024-05-06T08:01:00Z").json()["buckets"]
    assert bucket["suppressed"] is False
    assert (bucket["faces_labelled"], bucket["faces_uncertain"]) == (K - 1, 1)
    assert bucket["expressions"] is None
    assert bucket["uncertain_share"] is None


def test_a_suppressed_bucket_carries_no_uncertain_figures(
    api: httpx.Client, clean_db: Engine, lesson: SeededLesson
) -> None:
    events = [
        SeedEvent(lesson.students[s], lesson.at(5 + n), HAPPY, confidence=0.3, uncertain=True)
        for n, s in enumerate(SIX[: K - 1])
    ]
    insert_events(clean_db, lesson.lesson_id, events)
    (bucket,) = get(api, lesson, "timeline", to="2024-05-06T08:01:00Z").json()["buckets"]
    assert bucket["suppressed"] is True
    assert bucket["faces_uncertain"] is None
    assert bucket["uncertain_share"] is None


def test_summary_and_student_timeline_count_uncertain_faces(
    api: httpx.Client, unsure_in_minute_one: SeededLesson
) -> None:
    lesson = unsure_in_minute_one
    totals = get(api, lesson, "summary", to=TO).json()["totals"]
    assert (totals["faces_labelled"], totals["faces_uncertain"]) == (114, 12)
    assert totals["uncertain_share"] == round(12 / 126, 4)
    assert totals["expressions"]["happy"] == 1.0

    s1 = lesson.students["s1"]
    body = get(api, lesson, f"students/{s1}/timeline", lesson.student_token("s1"), to=TO).json()
    assert [b["faces_uncertain"] for b in body["buckets"]] == [0, 6, 0]
    assert [b["uncertain_share"] for b in body["buckets"]] == [0.0, 1.0, 0.0]
    # The student's one-minute bucket of only uncertain faces has no expression shares.
    assert body["buckets"][1]["expressions"] is None


def test_timeline_export_has_the_uncertain_columns(
    api: httpx.Client, unsure_in_minute_one: SeededLesson
) -> None:
    response = get(api, unsure_in_minute_one, "export", format="csv", to=TO)
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["faces_uncertain"] for row in rows] == ["0", "12", "0"]
    assert [row["uncertain_share"] for row in rows] == ["0.0", str(round(2 / 7, 4)), "0.0"]

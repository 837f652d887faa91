"""Exports: CSV parsed back equals the JSON export equals the timeline endpoint."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from sqlalchemy import Engine

from classpulse.harness.factories import SeededLesson, SeedEvent, insert_events
from services.analytics.export import EVENT_COLUMNS, TIMELINE_COLUMNS
from shared.labels import LABELS, Expression
from tests.analytics.conftest import bearer


@pytest.fixture
def busy_lesson(clean_db: Engine, lesson: SeededLesson) -> SeededLesson:
    """Minute 0: 3 students (suppressed); minutes 1-2: 7 students, mixed labels and no-faces."""
    events = [
        SeedEvent(lesson.students[f"s{i}"], lesson.at(20), Expression.HAPPY) for i in (1, 2, 3)
    ]
    for minute in (1, 2):
        for i in range(1, 8):
            student = lesson.students[f"s{i}"]
            if i == 7:
                events.append(SeedEvent(student, lesson.at(60 * minute + i), face=False))
            else:
                label = Expression((i + minute) % 7)
                events.append(
                    SeedEvent(student, lesson.at(60 * minute + i), label, confidence=0.5 + i / 20)
                )
    insert_events(clean_db, lesson.lesson_id, events)
    return lesson


def parse_timeline_csv(text: str) -> list[dict]:
    """CSV rows back to the JSON record shape."""
    rows = list(csv.DictReader(io.StringIO(text)))
    records = []

    def count(cell: str) -> int | None:
        return int(cell) if cell else None

    for row in rows:
        shares = {label: row[f"share_{label}"] for label in LABELS}
        records.append(
            {
                "start": row["start"],
                "students_seen": count(row["students_seen"]),
                "frames": count(row["frames"]),
                "faces_labelled": count(row["faces_labelled"]),
                "faces_uncertain": count(row["faces_uncertain"]),
                "uncertain_share": (
                    float(row["uncertain_share"]) if row["uncertain_share"] else None
                ),
                "face_share": float(row["face_share"]) if row["face_share"] else None,
                "facing_share": float(row["facing_share"]) if row["facing_share"] else None,
                "suppressed": row["suppressed"] == "True",
                "dominant": row["dominant"] or None,
                "mean_confidence": float(row["mean_confidence"])
                if row["mean_confidence"]
                else None,
                "expressions": (
                    {k: float(v) for k, v in shares.items()} if any(shares.values()) else None
                ),
            }
        )
    return records


def test_timeline_round_trip(api: httpx.Client, busy_lesson: SeededLesson) -> None:
    lesson, headers = busy_lesson, bearer(busy_lesson.teacher_key)
    params = {"bucket": "1m", "to": "2024-05-06T08:04:00Z"}
    base = f"/v1/lessons/{lesson.lesson_id}"

    timeline = api.get(f"{base}/timeline", params=params, headers=headers).json()["buckets"]
    as_json = api.get(f"{base}/export", params={**params, "format": "json"}, headers=headers)
    as_csv = api.get(f"{base}/export", params={**params, "format": "csv"}, headers=headers)

    assert as_json.status_code == as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    assert as_csv.text.splitlines()[0] == ",".join(TIMELINE_COLUMNS)
    assert len(timeline) == 4
    assert [b["suppressed"] for b in timeline] == [True, False, False, True]
    assert as_json.json() == timeline
    assert parse_timeline_csv(as_csv.text) == timeline


def test_events_export_has_every_event_in_both_formats(
    api: httpx.Client, busy_lesson: SeededLesson
) -> None:
    lesson, headers = busy_lesson, bearer(busy_lesson.lms_key)
    base = f"/v1/lessons/{lesson.lesson_id}/export"

    as_json = api.get(base, params={"what": "events", "format": "json"}, headers=headers).json()
    as_csv = api.get(base, params={"what": "events", "format": "csv"}, headers=headers).text
    rows = list(csv.DictReader(io.StringIO(as_csv)))

    assert len(as_json) == len(rows) == 17
    assert list(rows[0]) == list(EVENT_COLUMNS)
    assert [r["captured_at"] for r in as_json] == sorted(r["captured_at"] for r in as_json)
    first = next(r for r in as_json if r["external_id"] == "s1")
    assert (first["label"], first["kind"], first["external_id"]) == ("happy", "face", "s1")
    assert first["p_happy"] == pytest.approx(0.8)
    no_faces = [r for r in as_json if r["kind"] == "no_face"]
    assert len(no_faces) == 2
    assert all(r["label"] is None for r in no_faces)
    assert [r["frame_id"] for r in rows] == [r["frame_id"] for r in as_json]
    assert [r["label"] or None for r in rows] == [r["label"] for r in as_json]


#: LMS ids a spreadsheet would run as formulas (OWASP, CSV injection), and two it would not.
FORMULA_IDS = ["=1+2", "+SUM(A1:A9)", "-2+3", "@cmd", "\t=1", "\r=1", "＝1+2"]
SAFE_IDS = ["s-1", "a;=1+1"]


def test_formula_like_cells_are_neutralised_in_csv_and_kept_in_json(
    api: httpx.Client, clean_db: Engine
) -> None:
    from classpulse.harness.factories import seed_lesson

    lesson = seed_lesson(clean_db, students=[*FORMULA_IDS, *SAFE_IDS])
    insert_events(
        clean_db,
        lesson.lesson_id,
        [
            SeedEvent(student_id, lesson.at(10 + n), Expression.HAPPY)
            for n, student_id in enumerate(lesson.students.values())
        ],
    )
    base, headers = f"/v1/lessons/{lesson.lesson_id}/export", bearer(lesson.lms_key)
    as_csv = api.get(base, params={"what": "events", "format": "csv"}, headers=headers).text
    as_json = api.get(base, params={"what": "events", "format": "json"}, headers=headers).json()

    written = [row["external_id"] for row in csv.DictReader(io.StringIO(as_csv))]
    expected = [f"'{i}" for i in FORMULA_IDS] + SAFE_IDS
    assert written == expected
    assert [r["external_id"] for r in as_json] == [*FORMULA_IDS, *SAFE_IDS]
    # Text cells are quoted, so a spreadsheet splitting on ';' keeps "a;=1+1" whole;
    # numbers stay numbers.
    assert '"a;=1+1"' in as_csv
    first = as_csv.splitlines()[1]
    assert f'"{lesson.students["=1+2"]}"' in first
    assert ",0.8," in first


def test_an_uncertain_face_is_exported_as_uncertain_with_its_probabilities(
    api: httpx.Client, clean_db: Engine, lesson: SeededLesson
) -> None:
    from sqlalchemy import text

    sure, unsure = lesson.students["s1"], lesson.students["s2"]
    insert_events(
        clean_db,
        lesson.lesson_id,
        [
            SeedEvent(sure, lesson.at(10), Expression.HAPPY, confidence=0.9),
            SeedEvent(unsure, lesson.at(11), Expression.SAD, confidence=0.4),
        ],
    )
    # What the worker stores for a face under the model's threshold: no label, the rest kept.
    with clean_db.begin() as conn:
        conn.execute(
            text("UPDATE face_events SET label = NULL WHERE student_id = :s"), {"s": unsure}
        )
    base, headers = f"/v1/lessons/{lesson.lesson_id}/export", bearer(lesson.lms_key)
    as_json = api.get(base, params={"what": "events", "format": "json"}, headers=headers).json()
    as_csv = api.get(base, params={"what": "events", "format": "csv"}, headers=headers).text
    labels = {r["external_id"]: (r["label"], r["p_sad"]) for r in as_json}
    assert labels["s1"][0] == "happy"
    assert labels["s2"] == ("uncertain", pytest.approx(0.4))
    assert [r["label"] for r in csv.DictReader(io.StringIO(as_csv))] == ["happy", "uncertain"]

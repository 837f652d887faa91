"""The minimum group size holds for the data a key can read, not just for the chart.

With exactly k students, two class windows one frame apart, two exports, two live
pushes or two summaries must not differ by one frame; suppressed buckets carry no
figures; per-student data needs the key's per-student permission (issue 19, point 5).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import httpx
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
from tests.analytics.conftest import K, bearer
from tests.analytics.test_live import notice, sse_events

HAPPY, SAD = Expression.HAPPY, Expression.SAD
#: Every figure of a bucket: all null in a suppressed one.
FIGURES = (
    "students_seen",
    "frames",
    "faces_labelled",
    "faces_uncertain",
    "uncertain_share",
    "face_share",
    "facing_share",
    "expressions",
    "dominant",
    "mean_confidence",
)
FIVE = [f"s{i}" for i in range(1, K + 1)]


def iso(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture
def five_happy_then_one_sad(clean_db: Engine, lesson: SeededLesson) -> SeededLesson:
    """Exactly k students: all happy at 08:00:10-14; then s1 alone, sad, at 08:00:30."""
    events = [SeedEvent(lesson.students[s], lesson.at(10 + n), HAPPY) for n, s in enumerate(FIVE)]
    events.append(SeedEvent(lesson.students["s1"], lesson.at(30), SAD))
    insert_events(clean_db, lesson.lesson_id, events)
    return lesson


def get(api: httpx.Client, lesson: SeededLesson, path: str, **params: str) -> httpx.Response:
    return api.get(
        f"/v1/lessons/{lesson.lesson_id}/{path}", params=params, headers=bearer(lesson.teacher_key)
    )


def test_two_class_timelines_one_frame_apart_do_not_reveal_the_frame(
    api: httpx.Client, five_happy_then_one_sad: SeededLesson
) -> None:
    lesson = five_happy_then_one_sad
    t6, t7 = iso(lesson.at(30)), iso(lesson.at(31))  # the sad frame is in [t6, t7)

    before = get(api, lesson, "timeline", bucket="1m", to=t6).json()
    after = get(api, lesson, "timeline", bucket="1m", to=t7).json()
    later_start = get(api, lesson, "timeline", bucket="1m", **{"from": t6, "to": t7}).json()

    # Both windows cover the whole bucket 08:00-08:01: the same answer, not a difference.
    assert before == after
    assert (before["start"], before["end"]) == ("2024-05-06T08:00:00Z", "2024-05-06T08:01:00Z")
    (bucket,) = before["buckets"]
    assert bucket["frames"] == 6
    assert bucket["expressions"]["sad"] == pytest.approx(1 / 6, abs=1e-4)
    # A window starting at the frame is widened back to its bucket as well.
    assert later_start["buckets"] == before["buckets"]


def test_two_csv_exports_one_frame_apart_are_identical(
    api: httpx.Client, five_happy_then_one_sad: SeededLesson
) -> None:
    lesson = five_happy_then_one_sad
    t6, t7 = iso(lesson.at(30)), iso(lesson.at(31))
    exports = [
        get(api, lesson, "export", format="csv", what="timeline", bucket="1m", to=to)
        for to in (t6, t7)
    ]
    assert [e.status_code for e in exports] == [200, 200]
    assert exports[0].text == exports[1].text
    as_json = get(api, lesson, "export", format="json", bucket="1m", **{"from": t6, "to": t7})
    assert as_json.json() == get(api, lesson, "timeline", bucket="1m", to=t6).json()["buckets"]


def test_suppressed_buckets_carry_no_counts_in_any_class_view(
    api: httpx.Client, clean_db: Engine, lesson: SeededLesson
) -> None:
    # Minute 0: four students (one short of k); minute 1: k students.
    events = [SeedEvent(lesson.students[s], lesson.at(5 + n), HAPPY) for n, s in enumerate(FIVE)]
    events = events[:4] + [
        SeedEvent(lesson.students[s], lesson.at(65 + n), SAD) for n, s in enumerate(FIVE)
    ]
    insert_events(clean_db, lesson.lesson_id, events)
    to = "2024-05-06T08:02:00Z"

    small, enough = get(api, lesson, "timeline", bucket="1m", to=to).json()["buckets"]

    assert small == {"start": "2024-05-06T08:00:00Z", "suppressed": True} | dict.fromkeys(FIGURES)
    assert (enough["suppressed"], enough["students_seen"], enough["frames"]) == (False, 5, 5)
    csv_text = get(api, lesson, "export", bucket="1m", to=to).text
    first = next(csv.DictReader(io.StringIO(csv_text)))
    # Only the time and the flag are filled in.
    assert {k: v for k, v in first.items() if v} == {
        "start": "2024-05-06T08:00:00Z",
        "suppressed": "True",
    }
    # The summary of a lesson whose only k-student minute is out of its window: suppressed.
    add_marker(clean_db, lesson.lesson_id, lesson.at(0), "Intro")
    add_marker(clean_db, lesson.lesson_id, lesson.at(60), "Main")
    summary = get(api, lesson, "summary", bucket="1m").json()
    intro, main = summary["segments"]
    assert intro["suppressed"] is True
    assert {k: intro[k] for k in FIGURES} == dict.fromkeys(FIGURES)
    assert main["frames"] == 5


def test_a_bucket_with_enough_students_but_few_labels_shows_presence_not_expressions(
    api: httpx.Client, clean_db: Engine, lesson: SeededLesson
) -> None:
    """Face presence needs k students seen (it survives inference switched off), the
    expression shares k students with a label."""
    students = [lesson.students[f"s{i}"] for i in range(1, 8)]
    events = [SeedEvent(s, lesson.at(5), face=False) for s in students[:4]]
    events += [SeedEvent(s, lesson.at(6), HAPPY) for s in students[4:]]
    insert_events(clean_db, lesson.lesson_id, events)

    (bucket,) = get(api, lesson, "timeline", bucket="1m", to="2024-05-06T08:01:00Z").json()[
        "buckets"
    ]

    assert bucket["suppressed"] is False
    assert (bucket["students_seen"], bucket["frames"], bucket["face_share"]) == (7, 7, 0.4286)
    assert (bucket["expressions"], bucket["dominant"], bucket["mean_confidence"]) == (
        None,
        None,
        None,
    )


def test_segments_start_on_the_bucket_grid_so_markers_cannot_cut_out_a_frame(
    api: httpx.Client, clean_db: Engine, five_happy_then_one_sad: SeededLesson
) -> None:
    lesson = five_happy_then_one_sad
    # Students also in minute 1, so that the segment after the marker is not empty.
    more = [SeedEvent(lesson.students[s], lesson.at(70 + n), HAPPY) for n, s in enumerate(FIVE)]
    insert_events(clean_db, lesson.lesson_id, more)
    add_marker(clean_db, lesson.lesson_id, lesson.at(30.5), "Right after the sad frame")

    segments = get(api, lesson, "summary", bucket="1m").json()["segments"]

    # The marker counts from its bucket's start: no segment ends between two frames.
    assert [(s["marker"], s["start"]) for s in segments] == [
        ("Right after the sad frame", "2024-05-06T08:00:00Z")
    ]
    assert segments[0]["frames"] == 11


@pytest.fixture
def running_lesson(clean_db: Engine) -> SeededLesson:
    """A lesson that started 90 s ago: its second one-minute bucket is still open."""
    starts = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=90)
    return seed_lesson(clean_db, students=FIVE, starts_at=starts)


def test_the_open_bucket_is_not_shown_until_it_closes(
    api: httpx.Client, clean_db: Engine, running_lesson: SeededLesson
) -> None:
    lesson = running_lesson
    students = [lesson.students[s] for s in FIVE]
    insert_events(
        clean_db, lesson.lesson_id, [SeedEvent(s, lesson.at(20), HAPPY) for s in students]
    )
    # The open bucket (60-120 s) fills frame by frame: it must not be readable meanwhile.
    insert_events(clean_db, lesson.lesson_id, [SeedEvent(s, lesson.at(70), SAD) for s in students])
    open_start = lesson.at(60)

    timeline = get(api, lesson, "timeline", bucket="1m").json()
    asked_on = get(api, lesson, "timeline", bucket="1m", to=iso(lesson.at(3000))).json()
    summary = get(api, lesson, "summary", bucket="1m").json()

    for body in (timeline, asked_on):
        assert body["end"] == iso(open_start)
        assert [b["start"] for b in body["buckets"]] == [iso(lesson.at(0))]
    assert summary["totals"]["frames"] == K
    assert summary["totals"]["expressions"]["sad"] == 0.0


def test_live_pushes_a_bucket_once_it_has_closed_not_frame_by_frame(
    api: httpx.Client, clean_db: Engine, redis_client: redis_lib.Redis
) -> None:
    now = dt.datetime.now(dt.UTC)
    # The open 10 s bucket closes about 4 s from now.
    lesson = seed_lesson(clean_db, students=FIVE, starts_at=now - dt.timedelta(seconds=96))
    open_start = lesson.at(90)
    closes = open_start + dt.timedelta(seconds=10)
    url = f"/v1/lessons/{lesson.lesson_id}/live"
    with api.stream("GET", url, params={"bucket": "10s"}, headers=bearer(lesson.lms_key)) as stream:
        events = sse_events(stream.iter_lines())
        assert next(events)[0] == "ready"
        at = lesson.at(95)
        insert_events(
            clean_db, lesson.lesson_id, [SeedEvent(lesson.students[s], at, HAPPY) for s in FIVE]
        )
        for s in FIVE:
            redis_client.publish(live_channel(lesson.lesson_id), notice(lesson, s, at))

        kind, data = next(events)
        arrived = dt.datetime.now(dt.UTC)

    assert kind == "buckets"
    assert arrived >= closes
    (bucket,) = json.loads(data)
    assert bucket["start"] == iso(open_start)
    assert bucket["students_seen"] == K


def test_live_pushes_suppressed_buckets_without_counts(
    api: httpx.Client, lesson: SeededLesson, clean_db: Engine, redis_client: redis_lib.Redis
) -> None:
    url = f"/v1/lessons/{lesson.lesson_id}/live"
    with api.stream("GET", url, params={"bucket": "1m"}, headers=bearer(lesson.lms_key)) as stream:
        events = sse_events(stream.iter_lines())
        assert next(events)[0] == "ready"
        at = lesson.at(125)
        insert_events(clean_db, lesson.lesson_id, [SeedEvent(lesson.students["s1"], at, SAD)])
        redis_client.publish(live_channel(lesson.lesson_id), notice(lesson, "s1", at))
        kind, data = next(events)
    assert kind == "buckets"
    assert json.loads(data) == [
        {"start": "2024-05-06T08:02:00Z", "suppressed": True} | dict.fromkeys(FIGURES)
    ]


# ---- per-student data ------------------------------------------------------------


@pytest.fixture
def keys(clean_db: Engine, five_happy_then_one_sad: SeededLesson) -> dict[str, str]:
    """The seeded keys plus a teacher key the LMS gave the per-student permission."""
    lesson = five_happy_then_one_sad
    with Session(clean_db) as session:
        trusted = add_key(
            session, lesson.organisation_id, KeyRole.TEACHER, lesson.class_id, per_student=True
        )
        session.commit()
    return {"teacher": lesson.teacher_key, "trusted_teacher": trusted, "lms": lesson.lms_key}


def read(api: httpx.Client, lesson: SeededLesson, path: str, key: str, **params: Any) -> Any:
    return api.get(f"/v1/lessons/{lesson.lesson_id}/{path}", params=params, headers=bearer(key))


def test_a_teacher_key_reads_no_per_student_data_without_the_permission(
    api: httpx.Client, five_happy_then_one_sad: SeededLesson, keys: dict[str, str]
) -> None:
    lesson, teacher = five_happy_then_one_sad, keys["teacher"]

    refused = [
        read(api, lesson, "students/s1/timeline", teacher),
        read(api, lesson, f"students/{lesson.students['s1']}/timeline", teacher),
        read(api, lesson, "export", teacher, what="events"),
        read(api, lesson, "export", teacher, what="events", format="json"),
    ]
    summary = read(api, lesson, "summary", teacher).json()

    assert [r.status_code for r in refused] == [403] * 4
    assert all("per-student permission" in r.json()["error"]["message"] for r in refused)
    assert (summary["per_student"], summary["students"]) == (False, [])
    assert summary["totals"]["students_seen"] == K  # the class figures are all there
    # Class-level reads still work.
    assert read(api, lesson, "timeline", teacher).status_code == 200
    assert read(api, lesson, "export", teacher).status_code == 200


@pytest.mark.parametrize("who", ["trusted_teacher", "lms"])
def test_a_key_with_the_permission_reads_per_student_data(
    api: httpx.Client, five_happy_then_one_sad: SeededLesson, keys: dict[str, str], who: str
) -> None:
    lesson, key = five_happy_then_one_sad, keys[who]

    timeline = read(api, lesson, "students/s1/timeline", key, to="2024-05-06T08:01:00Z")
    events = read(api, lesson, "export", key, what="events", format="json")
    summary = read(api, lesson, "summary", key).json()

    assert timeline.status_code == 200
    assert [p["label"] for p in timeline.json()["points"]] == ["happy", "sad"]
    assert len(events.json()) == 6
    assert summary["per_student"] is True
    assert [s["external_id"] for s in summary["students"]] == FIVE


def test_a_student_token_always_reads_its_own_timeline(
    api: httpx.Client, five_happy_then_one_sad: SeededLesson
) -> None:
    lesson = five_happy_then_one_sad
    own = read(api, lesson, "students/s1/timeline", lesson.student_token("s1"))
    other = read(api, lesson, "students/s2/timeline", lesson.student_token("s1"))
    assert own.status_code == 200
    assert len(own.json()["points"]) == 2
    assert other.status_code == 403


def test_the_live_stream_carries_class_buckets_only(
    api: httpx.Client, five_happy_then_one_sad: SeededLesson, keys: dict[str, str]
) -> None:
    """A teacher key without the permission may follow the class live: nothing in the
    stream names a student."""
    lesson = five_happy_then_one_sad
    url = f"/v1/lessons/{lesson.lesson_id}/live"
    with api.stream("GET", url, headers=bearer(keys["teacher"])) as stream:
        assert stream.status_code == 200
        kind, data = next(sse_events(stream.iter_lines()))
    assert (kind, set(json.loads(data))) == ("ready", {"lesson_id", "bucket"})


def test_summary_totals_and_segments_sum_only_the_buckets_the_timeline_shows(
    api: httpx.Client, clean_db: Engine, lesson: SeededLesson
) -> None:
    """A total that grows by a suppressed bucket (or by labels the timeline withholds)
    would expose them: totals and segments add up the shown buckets only."""
    ids = [lesson.students[s] for s in FIVE]
    events = [SeedEvent(s, lesson.at(5), HAPPY) for s in ids]  # minute 0: k students
    events.append(SeedEvent(ids[0], lesson.at(65), SAD))  # minute 1: one student alone
    events += [SeedEvent(s, lesson.at(125), HAPPY) for s in ids]  # minute 2: k students
    # Minute 3: k students seen, one labelled (sad): presence counts, the label does not.
    events += [SeedEvent(s, lesson.at(185), face=False) for s in ids[1:]]
    events.append(SeedEvent(ids[0], lesson.at(185), SAD))
    insert_events(clean_db, lesson.lesson_id, events)
    add_marker(clean_db, lesson.lesson_id, lesson.at(0), "Everything")

    body = get(api, lesson, "summary", bucket="1m").json()

    for figures in (body["totals"], body["segments"][0]):
        assert (figures["frames"], figures["faces_labelled"]) == (15, 10)
        assert figures["expressions"]["sad"] == 0.0
        assert figures["face_share"] == pytest.approx(11 / 15, abs=1e-4)

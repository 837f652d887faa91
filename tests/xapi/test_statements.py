"""Statement ids, segments and bodies, without servers."""

from __future__ import annotations

import datetime as dt
import uuid

from services.analytics.queries.aggregate import GroupCounts
from services.xapi.lrs_config import LrsCredentials
from services.xapi.segments import lesson_segments
from services.xapi.statements import (
    EXT_EXPRESSIONS,
    EXT_FACE_PRESENCE,
    EXT_FACES_LABELLED,
    EXT_FACES_UNCERTAIN,
    EXT_FACING,
    LessonRef,
    Segment,
    StudentSegment,
    build_statement,
    statement_id,
)
from shared.db.models import Lesson, LessonMarker

START = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.UTC)
LESSON, STUDENT = uuid.uuid4(), uuid.uuid4()


def at(seconds: float) -> dt.datetime:
    return START + dt.timedelta(seconds=seconds)


def lesson(minutes: float = 10) -> Lesson:
    return Lesson(id=LESSON, starts_at=START, ends_at=at(minutes * 60), title="Fractions")


def marker(seconds: float, label: str) -> LessonMarker:
    return LessonMarker(at=at(seconds), kind="slide", label=label)


def test_the_id_depends_on_lesson_student_and_segment_only() -> None:
    one = statement_id(LESSON, STUDENT, at(60))
    assert one == statement_id(
        LESSON, STUDENT, at(60).astimezone(dt.timezone(dt.timedelta(hours=2)))
    )
    assert uuid.UUID(one).version == 5
    others = {
        statement_id(uuid.uuid4(), STUDENT, at(60)),
        statement_id(LESSON, uuid.uuid4(), at(60)),
        statement_id(LESSON, STUDENT, at(120)),
    }
    assert one not in others
    assert len(others) == 3


def test_markers_cut_the_lesson_on_the_one_minute_grid() -> None:
    segments = lesson_segments(
        lesson(),
        [marker(150, "B"), marker(130, "A"), marker(-30, "Early"), marker(610, "After")],
    )
    # A marker before the start opens the lesson; two in one minute: the later names it;
    # one after the end is left out.
    assert [(s.start, s.end, s.label) for s in segments] == [
        (at(0), at(120), "Early"),
        (at(120), at(600), "B"),
    ]


def test_without_markers_one_unlabelled_segment_to_the_end_of_its_minute() -> None:
    [only] = lesson_segments(lesson(minutes=9.5), [])
    assert (only.start, only.end, only.label) == (at(0), at(600), None)


def counts(
    *,
    frames: int,
    faces: int,
    labels: tuple[int, ...],
    posed: int = 0,
    facing: int = 0,
    uncertain: int = 0,
) -> GroupCounts:
    return GroupCounts(
        students_seen=1, students_labelled=int(sum(labels) > 0), frames=frames,
        face_frames=faces, labelled=sum(labels), label_counts=labels, confidence_sum=0.8 * sum(labels),
        students_posed=int(posed > 0), posed_frames=posed, facing_frames=facing,
        uncertain=uncertain,
    )  # fmt: skip


def test_a_statement_holds_the_students_figures_and_no_name() -> None:
    ref = LessonRef(LESSON, "Fractions", START, uuid.uuid4(), "Maths 7B")
    row = StudentSegment(
        STUDENT,
        "lti-sub-8841",
        Segment(at(0), at(120), "Intro", "slide"),
        counts(frames=4, faces=3, labels=(0, 0, 0, 2, 0, 0, 1), posed=3, facing=2, uncertain=1),
    )
    body = build_statement("https://lms.example.org", ref, row)

    assert body["id"] == statement_id(LESSON, STUDENT, at(0))
    assert body["actor"] == {
        "objectType": "Agent",
        "account": {"homePage": "https://lms.example.org", "name": "lti-sub-8841"},
    }
    extensions = body["result"]["extensions"]
    assert extensions[EXT_FACE_PRESENCE] == 0.75
    assert extensions[EXT_EXPRESSIONS]["happy"] == 0.6667
    assert extensions[EXT_EXPRESSIONS]["neutral"] == 0.3333
    assert extensions[EXT_FACING] == 0.6667
    # The uncertain face is counted apart and left out of the shares.
    assert (extensions[EXT_FACES_LABELLED], extensions[EXT_FACES_UNCERTAIN]) == (3, 1)
    assert body["timestamp"] == "2026-05-04T09:02:00Z"
    assert body["object"]["definition"]["name"] == {"en-US": "Intro"}


def test_inference_off_sends_presence_without_expressions() -> None:
    ref = LessonRef(LESSON, "Fractions", START, uuid.uuid4(), "Maths 7B")
    row = StudentSegment(
        STUDENT,
        "s1",
        Segment(at(0), at(60), None, None),
        counts(frames=2, faces=1, labels=(0,) * 7),
    )
    extensions = build_statement("https://lms.example.org", ref, row)["result"]["extensions"]
    assert extensions[EXT_FACE_PRESENCE] == 0.5
    assert EXT_EXPRESSIONS not in extensions
    assert EXT_FACING not in extensions


def test_credentials_never_show_their_password() -> None:
    creds = LrsCredentials("https://lrs.example/xAPI", "ops", "pw-in-a-traceback", "https://lms")
    assert "pw-in-a-traceback" not in repr(creds)
    assert "pw-in-a-traceback" not in str(creds)

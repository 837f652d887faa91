"""One xAPI 1.0.3 statement per student per lesson segment: pure data in, JSON out.

The actor is the student's pseudonymous LMS id as an xAPI ``account`` on the
organisation's LMS (never a name or e-mail); the object is the segment (the
lesson between two markers), its parent the lesson, its grouping the class.
The figures are the student's own (per-student data: they leave only for an
organisation that configured an LRS, and the export needs the per-student
permission); class figures, which k-anonymity would govern, are never sent.
The vocabulary is documented in docs/integration.md.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from services.analytics.queries.aggregate import GroupCounts

#: Fixed namespace of ClassPulse's statement ids: uuid5(namespace, key) gives every
#: (lesson, student, segment) one id forever, so a resend is never a second statement.
STATEMENT_NAMESPACE = uuid.UUID("6f0b3c1e-5a7d-4e43-9c2a-2b6c1d0e8a41")
XAPI_VERSION = "1.0.3"
#: ADL's verb for being present at an event: the student had the classroom page open.
VERB_ATTENDED = "http://adlnet.gov/expapi/verbs/attended"
ACTIVITY_LESSON_TYPE = "http://adlnet.gov/expapi/activities/lesson"
ACTIVITY_SEGMENT_TYPE = "urn:classpulse:xapi:activity-type:lesson-segment"
ACTIVITY_CLASS_TYPE = "urn:classpulse:xapi:activity-type:class"
EXT = "urn:classpulse:xapi:ext:"
EXT_FRAMES = EXT + "frames"
EXT_FACE_PRESENCE = EXT + "face-presence"
EXT_FACES_LABELLED = EXT + "faces-labelled"
EXT_FACES_UNCERTAIN = EXT + "faces-uncertain"
EXT_EXPRESSIONS = EXT + "displayed-expressions"
EXT_FACING = EXT + "facing-screen"
EXT_SEGMENT = EXT + "segment"
PLATFORM = "ClassPulse"


@dataclass(frozen=True, slots=True)
class LessonRef:
    """What a statement says about the lesson and its class."""

    lesson_id: uuid.UUID
    title: str
    starts_at: dt.datetime
    class_id: uuid.UUID
    class_title: str


@dataclass(frozen=True, slots=True)
class Segment:
    """The lesson from one marker (or its start) to the next marker (or its end)."""

    start: dt.datetime
    end: dt.datetime
    #: The marker that opens it; None for the span before the first marker.
    label: str | None
    kind: str | None


@dataclass(frozen=True, slots=True)
class StudentSegment:
    student_id: uuid.UUID
    external_id: str
    segment: Segment
    counts: GroupCounts


def lesson_activity_id(lesson_id: uuid.UUID) -> str:
    return f"urn:classpulse:lesson:{lesson_id}"


def segment_activity_id(lesson: LessonRef, segment: Segment) -> str:
    """The segment's IRI: its lesson and its start, in whole seconds from the lesson start."""
    offset = int((segment.start - lesson.starts_at).total_seconds())
    return f"{lesson_activity_id(lesson.lesson_id)}:segment:{offset}"


def class_activity_id(class_id: uuid.UUID) -> str:
    return f"urn:classpulse:class:{class_id}"


def statement_id(lesson_id: uuid.UUID, student_id: uuid.UUID, segment_start: dt.datetime) -> str:
    """UUIDv5 of keys that no frame changes: lesson, student, segment start (UTC)."""
    start = segment_start.astimezone(dt.UTC).isoformat()
    return str(uuid.uuid5(STATEMENT_NAMESPACE, f"v1/{lesson_id}/{student_id}/{start}"))


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _segment_name(lesson: LessonRef, segment: Segment) -> str:
    return (
        segment.label if segment.label is not None else f"{lesson.title} (before the first marker)"
    )


def _result(counts: GroupCounts) -> dict[str, Any]:
    # No group size: these are one student's own figures, as the summary's
    # per-student rows, which need the per-student permission.
    stats = counts.stats(None)
    extensions: dict[str, Any] = {
        EXT_FRAMES: counts.frames,
        EXT_FACE_PRESENCE: stats["face_share"],
        EXT_FACES_LABELLED: counts.labelled,
        EXT_FACES_UNCERTAIN: counts.uncertain,
    }
    if stats["expressions"] is not None:
        extensions[EXT_EXPRESSIONS] = stats["expressions"]
    if stats["facing_share"] is not None:
        extensions[EXT_FACING] = stats["facing_share"]
    return {"extensions": extensions}


def build_statement(lms_url: str, lesson: LessonRef, row: StudentSegment) -> dict[str, Any]:
    """The xAPI statement of one student's segment (JSON-ready)."""
    seg = row.segment
    return {
        "id": statement_id(lesson.lesson_id, row.student_id, seg.start),
        "actor": {
            "objectType": "Agent",
            "account": {"homePage": lms_url, "name": row.external_id},
        },
        "verb": {"id": VERB_ATTENDED, "display": {"en-US": "attended"}},
        "object": {
            "objectType": "Activity",
            "id": segment_activity_id(lesson, seg),
            "definition": {
                "type": ACTIVITY_SEGMENT_TYPE,
                "name": {"en-US": _segment_name(lesson, seg)},
            },
        },
        "result": _result(row.counts),
        "context": {
            "platform": PLATFORM,
            "contextActivities": {
                "parent": [
                    {
                        "objectType": "Activity",
                        "id": lesson_activity_id(lesson.lesson_id),
                        "definition": {
                            "type": ACTIVITY_LESSON_TYPE,
                            "name": {"en-US": lesson.title},
                        },
                    }
                ],
                "grouping": [
                    {
                        "objectType": "Activity",
                        "id": class_activity_id(lesson.class_id),
                        "definition": {
                            "type": ACTIVITY_CLASS_TYPE,
                            "name": {"en-US": lesson.class_title},
                        },
                    }
                ],
            },
            "extensions": {
                EXT_SEGMENT: {
                    "start": _iso(seg.start),
                    "end": _iso(seg.end),
                    "marker": seg.label,
                    "kind": seg.kind,
                }
            },
        },
        # When it happened: the segment's end (the LRS adds when it stored it).
        "timestamp": _iso(seg.end),
        "version": XAPI_VERSION,
    }

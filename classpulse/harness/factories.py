"""Rows for tests and benchmarks: an organisation, keys, a class, a lesson, students,
consents, stored frames, events.

Tests insert a few hand-made events with :func:`insert_events`; the benchmark
generates hundreds of thousands with :func:`generate_events`, which does the
work in PostgreSQL (``generate_series``) instead of sending rows one by one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import redis
from sqlalchemy import Engine, insert, text
from sqlalchemy.orm import Session

from shared.auth import generate_api_key, issue_student_token
from shared.db.models import (
    ApiKey,
    Consent,
    ConsentParty,
    Enrolment,
    EventKind,
    FaceEvent,
    FaceQuality,
    Frame,
    FrameStatus,
    KeyRole,
    Lesson,
    LessonMarker,
    Organisation,
    SchoolClass,
    Student,
)
from shared.labels import NUM_CLASSES
from shared.schemas import FrameRef, frame_key

#: Signs the student tokens of every seeded world (tests and benchmarks, never a deployment).
TOKEN_SECRET = "harness-test-secret-of-at-least-32-bytes"


@dataclass
class SeededLesson:
    """One organisation with an LMS key, a class with a teacher key, a lesson, students."""

    organisation_id: uuid.UUID
    class_id: uuid.UUID
    lesson_id: uuid.UUID
    starts_at: dt.datetime
    lms_key: str
    teacher_key: str
    students: dict[str, uuid.UUID] = field(default_factory=dict)

    def student_token(
        self,
        external_id: str,
        lesson_id: uuid.UUID | None = None,
        *,
        ttl: int = 3600,
        now: dt.datetime | None = None,
    ) -> str:
        """A token signed with :data:`TOKEN_SECRET`, valid ``ttl`` seconds from ``now``."""
        return issue_student_token(
            TOKEN_SECRET,
            student_id=self.students[external_id],
            lesson_id=lesson_id or self.lesson_id,
            ttl_seconds=ttl,
            now=now,
        )

    def at(self, seconds: float) -> dt.datetime:
        """A time ``seconds`` after the lesson start."""
        return self.starts_at + dt.timedelta(seconds=seconds)


def add_key(
    session: Session,
    organisation_id: uuid.UUID,
    role: KeyRole,
    class_id: uuid.UUID | None = None,
    *,
    revoked: bool = False,
    per_student: bool | None = None,
) -> str:
    """A new API key row; returns the plaintext key.

    ``per_student`` defaults as for real keys: LMS keys have it, teacher keys not.
    """
    new = generate_api_key()
    session.add(
        ApiKey(
            organisation_id=organisation_id,
            name=f"{role.value} key",
            role=role,
            class_id=class_id,
            per_student=role == KeyRole.LMS if per_student is None else per_student,
            prefix=new.prefix,
            key_hash=new.key_hash,
            revoked_at=dt.datetime.now(dt.UTC) if revoked else None,
        )
    )
    return new.plaintext


#: Which of the seeded students something applies to: all (True), none (False) or
#: those whose external ids are named.
Chosen = bool | Collection[str]


def _chosen(which: Chosen, students: dict[str, uuid.UUID]) -> list[uuid.UUID]:
    if isinstance(which, bool):
        return list(students.values()) if which else []
    unknown = set(which) - students.keys()
    if unknown:
        raise ValueError(f"not among the seeded students: {sorted(unknown)}")
    return [students[external_id] for external_id in which]


def seed_lesson(
    engine: Engine,
    *,
    students: Iterable[str] = (),
    starts_at: dt.datetime | None = None,
    minutes: int = 60,
    title: str = "Fractions",
    is_demo: bool = False,
    consenting: Chosen = False,
    enrolled: Chosen = False,
) -> SeededLesson:
    """An organisation, its LMS key, a class, its teacher key, a lesson and students;
    the ``consenting`` students have the class-wide consent of both parties and the
    ``enrolled`` ones are enrolled in the class (each: all, none or those named)."""
    starts_at = starts_at or dt.datetime(2024, 5, 6, 8, 0, tzinfo=dt.UTC)
    with Session(engine) as session:
        org = Organisation(id=uuid.uuid4(), name="Test school")
        school_class = SchoolClass(
            id=uuid.uuid4(), organisation_id=org.id, external_id="c1", title="Maths 7B"
        )
        lesson = Lesson(
            id=uuid.uuid4(),
            class_id=school_class.id,
            title=title,
            starts_at=starts_at,
            ends_at=starts_at + dt.timedelta(minutes=minutes),
            is_demo=is_demo,
        )
        session.add(org)
        session.flush()
        session.add(school_class)
        session.flush()
        session.add(lesson)
        lms = add_key(session, org.id, KeyRole.LMS)
        teacher = add_key(session, org.id, KeyRole.TEACHER, school_class.id)
        seeded = SeededLesson(org.id, school_class.id, lesson.id, starts_at, lms, teacher)
        for external_id in students:
            student = Student(id=uuid.uuid4(), organisation_id=org.id, external_id=external_id)
            session.add(student)
            seeded.students[external_id] = student.id
        session.flush()
        session.add_all(
            Enrolment(class_id=school_class.id, student_id=student_id)
            for student_id in _chosen(enrolled, seeded.students)
        )
        session.add_all(
            Consent(student_id=student_id, class_id=school_class.id, party=party)
            for student_id in _chosen(consenting, seeded.students)
            for party in ConsentParty
        )
        session.commit()
    return seeded


def store_frame(
    engine: Engine,
    client: redis.Redis,
    lesson_id: uuid.UUID,
    student_id: uuid.UUID,
    data: bytes | None,
    *,
    seq: int,
    captured_at: dt.datetime | None = None,
    received_at: dt.datetime | None = None,
    media_type: str = "image/jpeg",
    ttl_seconds: int = 600,
) -> FrameRef:
    """A frame stored as ingest stores it, not yet on the queue: a ``queued`` row
    (640x480) and its bytes in Redis for ``ttl_seconds`` (none when ``data`` is None,
    as if they had expired); returns its queue message."""
    frame_id = uuid.uuid4()
    captured_at = captured_at or dt.datetime.now(dt.UTC)
    row = {
        "id": frame_id,
        "lesson_id": lesson_id,
        "student_id": student_id,
        "seq": seq,
        "captured_at": captured_at,
        "status": FrameStatus.QUEUED,
        "media_type": media_type,
        "size_bytes": len(data or b""),
        "width": 640,
        "height": 480,
    }
    if received_at is not None:
        row["received_at"] = received_at
    with engine.begin() as conn:
        conn.execute(insert(Frame).values(row))
    if data is not None:
        client.set(frame_key(frame_id), data, ex=ttl_seconds)
    return FrameRef(
        frame_id=frame_id,
        lesson_id=lesson_id,
        student_id=student_id,
        captured_at=captured_at,
        enqueued_at=captured_at,
        redis_key=frame_key(frame_id),
    )


@dataclass(frozen=True)
class SeedEvent:
    """One frame of one student: a labelled face, an unlabelled face or no face."""

    student_id: uuid.UUID
    captured_at: dt.datetime
    label: int | None = None
    face: bool = True
    confidence: float = 0.8
    #: The face's head pose: True facing the screen, False turned away, None none
    #: (as from the Haar detector).
    facing: bool | None = None
    #: Classified but too unsure for a label: ``label`` is the withheld top label,
    #: stored as probabilities and confidence only.
    uncertain: bool = False


def probabilities(label: int, confidence: float) -> list[float]:
    """Seven probabilities with ``confidence`` on ``label`` and the rest spread evenly."""
    rest = (1.0 - confidence) / (NUM_CLASSES - 1)
    return [confidence if i == label else rest for i in range(NUM_CLASSES)]


#: Yaw (degrees) of a seeded face facing the screen and of one turned away.
FACING_YAW, TURNED_YAW = 5.0, 60.0


def pose_columns(event: SeedEvent) -> dict[str, float | bool | None]:
    """The ``yaw``, ``pitch`` and ``facing`` columns of a seeded face."""
    if not event.face or event.facing is None:
        return {"yaw": None, "pitch": None, "facing": None}
    return {
        "yaw": FACING_YAW if event.facing else TURNED_YAW,
        "pitch": 0.0,
        "facing": event.facing,
    }


def insert_events(engine: Engine, lesson_id: uuid.UUID, events: Sequence[SeedEvent]) -> None:
    """One done frame and one face event (or ``no_face`` row) per ``SeedEvent``."""
    frames, faces = [], []
    for event in events:
        frame_id = uuid.uuid4()
        # The capture time in microseconds: unique per student, like a client's counter.
        seq = int(event.captured_at.timestamp() * 1_000_000)
        frames.append(
            {
                "id": frame_id,
                "lesson_id": lesson_id,
                "student_id": event.student_id,
                "seq": seq,
                "captured_at": event.captured_at,
                "status": FrameStatus.DONE,
                "processed_at": event.captured_at,
                "media_type": "image/jpeg",
                "size_bytes": 30_000,
                "width": 640,
                "height": 480,
            }
        )
        classified = event.face and event.label is not None
        labelled = classified and not event.uncertain
        faces.append(
            {
                "frame_id": frame_id,
                "face_index": 0,
                "lesson_id": lesson_id,
                "student_id": event.student_id,
                "captured_at": event.captured_at,
                "kind": EventKind.FACE if event.face else EventKind.NO_FACE,
                "quality": FaceQuality.OK if event.face else None,
                "label": event.label if labelled else None,
                "confidence": event.confidence if classified else None,
                "probabilities": (
                    probabilities(event.label, event.confidence)
                    if classified and event.label is not None
                    else None
                ),
                "model_version": "seed" if classified else None,
                **pose_columns(event),
            }
        )
    with engine.begin() as conn:
        if frames:
            conn.execute(insert(Frame), frames)
            conn.execute(insert(FaceEvent), faces)


def add_marker(
    engine: Engine, lesson_id: uuid.UUID, at: dt.datetime, label: str, kind: str = "slide"
) -> None:
    with Session(engine) as session:
        session.add(LessonMarker(lesson_id=lesson_id, at=at, kind=kind, label=label))
        session.commit()


_PROBABILITY_ARRAY = (
    "ARRAY["
    + ", ".join(f"CASE WHEN x.label = {i} THEN 0.7 ELSE 0.05 END" for i in range(NUM_CLASSES))
    + "]::real[]"
)


def generate_events(
    engine: Engine,
    seeded: SeededLesson,
    *,
    students: int,
    minutes: int,
    interval_seconds: int = 5,
    no_face_share: float = 0.1,
) -> int:
    """``students`` new students each sending a frame every ``interval_seconds`` for
    ``minutes``, with random labels (seeded, so runs are repeatable); returns events."""
    params = {
        "org": seeded.organisation_id,
        "lesson": seeded.lesson_id,
        "students": students,
        "frames": minutes * 60 // interval_seconds,
        "start": seeded.starts_at,
        "step": dt.timedelta(seconds=interval_seconds),
        "no_face": no_face_share,
    }
    with engine.begin() as conn:
        conn.execute(text("SELECT setseed(0.42)"))
        conn.execute(
            text(
                """
CREATE TEMP TABLE gen_students ON COMMIT DROP AS
SELECT gen_random_uuid() AS id, 'gen-' || g AS external_id
FROM generate_series(1, :students) g"""
            ),
            params,
        )
        conn.execute(
            text(
                """
INSERT INTO students (id, organisation_id, external_id)
SELECT id, :org, external_id FROM gen_students"""
            ),
            params,
        )
        conn.execute(
            text(
                """
CREATE TEMP TABLE gen_frames ON COMMIT DROP AS
SELECT gen_random_uuid() AS id, s.id AS student_id, t.i AS seq,
       CAST(:start AS timestamptz) + t.i * CAST(:step AS interval) AS captured_at,
       CASE WHEN random() < :no_face THEN NULL ELSE floor(random() * 7)::smallint END AS label,
       (0.4 + random() * 0.6)::float AS confidence
FROM gen_students s CROSS JOIN generate_series(0, :frames - 1) t(i)"""
            ),
            params,
        )
        conn.execute(
            text(
                """
INSERT INTO frames (id, lesson_id, student_id, seq, captured_at, status, processed_at,
                    media_type, size_bytes, width, height)
SELECT id, :lesson, student_id, seq, captured_at, 'done', captured_at,
       'image/jpeg', 30000, 640, 480
FROM gen_frames"""
            ),
            params,
        )
        inserted = conn.execute(
            text(
                f"""
INSERT INTO face_events (frame_id, face_index, lesson_id, student_id, captured_at, kind,
                         quality, label, confidence, probabilities, model_version)
SELECT x.id, 0, :lesson, x.student_id, x.captured_at,
       CASE WHEN x.label IS NULL THEN 'no_face' ELSE 'face' END::event_kind,
       CASE WHEN x.label IS NULL THEN NULL ELSE 'ok' END::face_quality,
       x.label, CASE WHEN x.label IS NULL THEN NULL ELSE x.confidence END,
       CASE WHEN x.label IS NULL THEN NULL ELSE {_PROBABILITY_ARRAY} END,
       CASE WHEN x.label IS NULL THEN NULL ELSE 'bench' END
FROM gen_frames x"""
            ),
            params,
        ).rowcount
    with engine.begin() as conn:
        conn.execute(text("ANALYZE frames"))
        conn.execute(text("ANALYZE face_events"))
        conn.execute(text("ANALYZE face_event_minutes"))
    return int(inserted)

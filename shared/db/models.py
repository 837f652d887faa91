"""Tables of ClassPulse. Times are ``timestamptz`` in UTC; no pixels are ever stored.

Organisations own API keys, classes and students (pseudonymous LMS ids).
A lesson is one session of a class. A frame is one image a student sent: its
status moves queued → done | failed | expired, with a reason when not done. A
face event is one face of a frame (or one ``no_face`` row), with its label and
all seven probabilities; ``(frame_id, face_index)`` is unique so workers write
idempotently. Frames, face events and their per-minute rollup are partitioned
by day of capture time (``shared.db.partitions`` says why): their unique keys
carry the capture time, which is the partition key.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, created_at_column


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


class FrameStatus(enum.StrEnum):
    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"


class KeyRole(enum.StrEnum):
    """LMS keys manage a whole organisation; teacher keys read one class."""

    LMS = "lms"
    TEACHER = "teacher"


class EventKind(enum.StrEnum):
    FACE = "face"
    NO_FACE = "no_face"


class ConsentParty(enum.StrEnum):
    """Who gives a consent record: processing needs both parties' (see ``shared.consent``)."""

    #: The school's permission, recorded by its LMS key for a class or a lesson.
    SCHOOL = "school"
    #: The student's own consent, recorded with the student's token.
    STUDENT = "student"


class FaceQuality(enum.StrEnum):
    """Stored face quality; the same values as ``shared.vision.quality.Quality``."""

    OK = "ok"
    TOO_SMALL = "too_small"
    TOO_DARK = "too_dark"
    TOO_BLURRED = "too_blurred"
    #: Keypoint checks of the CNN detectors (migration 0004).
    TURNED_AWAY = "turned_away"
    CUT_OFF = "cut_off"


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e])


class Organisation(Base):
    __tablename__ = "organisations"
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = created_at_column()


class ApiKey(Base):
    """An API key, stored as SHA-256 of the secret; the prefix finds the row."""

    __tablename__ = "api_keys"
    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[KeyRole] = mapped_column(_enum(KeyRole, "key_role"))
    #: Teacher keys are bound to one class; LMS keys have none.
    class_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    #: May read per-student data (student timelines, per-student summary rows, event
    #: exports). Off unless granted: the LMS decides for the teacher keys it creates.
    per_student: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[dt.datetime] = created_at_column()
    revoked_at: Mapped[dt.datetime | None]


class SchoolClass(Base):
    __tablename__ = "classes"
    __table_args__ = (UniqueConstraint("organisation_id", "external_id"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    external_id: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    #: The classroom page sends face crops (True) or whole frames (False); None follows
    #: the deployment's ``CLASSPULSE_CLIENT_DETECTION``.
    client_detection: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()


class Lesson(Base):
    __tablename__ = "lessons"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    class_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("classes.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(300))
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    #: A demonstration (``LessonIn.is_demo``, as ``classpulse demo`` makes): labelled in the
    #: dashboard; no xAPI statements are sent for it.
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[dt.datetime] = created_at_column()


class Student(Base):
    __tablename__ = "students"
    __table_args__ = (UniqueConstraint("organisation_id", "external_id"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    #: Pseudonymous id from the LMS; never a name or e-mail.
    external_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = created_at_column()


class Enrolment(Base):
    __tablename__ = "enrolments"
    class_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True
    )
    student_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("students.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[dt.datetime] = created_at_column()


class Consent(Base):
    """One party's consent for a student in one lesson or a whole class.

    The school's and the student's records are kept apart (``party``) so that
    neither can grant over the other's withdrawal; withdrawal is a timestamp.
    """

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_student_class", "student_id", "class_id"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"))
    #: None: the consent covers every lesson of the class.
    lesson_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("lessons.id", ondelete="CASCADE")
    )
    granted_at: Mapped[dt.datetime] = created_at_column()
    withdrawn_at: Mapped[dt.datetime | None]
    party: Mapped[ConsentParty] = mapped_column(_enum(ConsentParty, "consent_party"))


class LessonMarker(Base):
    """A slide or topic change at a time in the lesson."""

    __tablename__ = "lesson_markers"
    __table_args__ = (Index("ix_lesson_markers_lesson_at", "lesson_id", "at"),)
    id: Mapped[uuid.UUID] = _uuid_pk()
    lesson_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime]
    kind: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = created_at_column()


class Frame(Base):
    """One image a student sent: its life in the queue, never its pixels."""

    __tablename__ = "frames"
    __table_args__ = (
        PrimaryKeyConstraint("id", "captured_at"),
        # One frame per (lesson_id, student_id, seq) is a unique index on each day
        # partition (shared.db.partitions, migration 0011): a key on the parent would
        # have to hold captured_at, which differs between two requests of one seq.
        Index("ix_frames_lesson_status", "lesson_id", "status"),
        Index("ix_frames_status_received", "status", "received_at"),
        Index("ix_frames_student", "student_id"),
        {"postgresql_partition_by": "RANGE (captured_at)"},
    )
    #: The frame id alone identifies a frame (born once in ingest); the table's key
    #: adds the capture time only because a partitioned table's keys must hold it.
    __mapper_args__ = {"primary_key": ["id"]}
    id: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4)
    lesson_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"))
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    #: The client's sequence number; a repeat is an idempotent retry.
    seq: Mapped[int] = mapped_column(BigInteger)
    captured_at: Mapped[dt.datetime]
    received_at: Mapped[dt.datetime] = created_at_column()
    status: Mapped[FrameStatus] = mapped_column(
        _enum(FrameStatus, "frame_status"), default=FrameStatus.QUEUED
    )
    failure_reason: Mapped[str | None] = mapped_column(String(100))
    processed_at: Mapped[dt.datetime | None]
    media_type: Mapped[str] = mapped_column(String(20))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)


class FaceEvent(Base):
    """One face found in a frame (or one ``no_face`` row for a frame without any)."""

    __tablename__ = "face_events"
    __table_args__ = (
        PrimaryKeyConstraint("id", "captured_at"),
        # A frame's events copy its capture time: unique per frame and face as before.
        UniqueConstraint("frame_id", "face_index", "captured_at"),
        # "Events of lesson L between t0 and t1" and "of student S in lesson L".
        Index("ix_face_events_lesson_time", "lesson_id", "captured_at"),
        Index("ix_face_events_lesson_student_time", "lesson_id", "student_id", "captured_at"),
        Index("ix_face_events_student", "student_id"),
        CheckConstraint("label BETWEEN 0 AND 6", name="label_range"),
        CheckConstraint("array_length(probabilities, 1) = 7", name="seven_probabilities"),
        CheckConstraint(
            "(yaw IS NULL) = (pitch IS NULL) AND (yaw IS NULL) = (facing IS NULL)",
            name="pose_complete",
        ),
        {"postgresql_partition_by": "RANGE (captured_at)"},
    )
    __mapper_args__ = {"primary_key": ["id"]}
    id: Mapped[int] = mapped_column(BigInteger, autoincrement=True)
    #: No foreign key to ``frames`` (migration 0009): a frame's events live in the
    #: same day partition and leave with it (retention), or with the frame (erasure
    #: deletes both), and the key would block moving a day out of the default.
    frame_id: Mapped[uuid.UUID]
    face_index: Mapped[int] = mapped_column(SmallInteger)
    # Denormalised from the frame so time-range queries need no join.
    lesson_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"))
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    captured_at: Mapped[dt.datetime]
    kind: Mapped[EventKind] = mapped_column(_enum(EventKind, "event_kind"))
    box_x: Mapped[int | None] = mapped_column(Integer)
    box_y: Mapped[int | None] = mapped_column(Integer)
    box_w: Mapped[int | None] = mapped_column(Integer)
    box_h: Mapped[int | None] = mapped_column(Integer)
    quality: Mapped[FaceQuality | None] = mapped_column(_enum(FaceQuality, "face_quality"))
    #: FER2013 index of ``shared.labels.Expression``; NULL when not labelled
    #: (poor quality, or expression inference switched off).
    label: Mapped[int | None] = mapped_column(SmallInteger)
    confidence: Mapped[float | None] = mapped_column(Float)
    probabilities: Mapped[list[float] | None] = mapped_column(ARRAY(REAL))
    model_version: Mapped[str | None] = mapped_column(String(100))
    #: Head pose in degrees and the "facing the screen" call (``shared.vision.pose``,
    #: migration 0006); NULL without keypoints (Haar) and for ``no_face`` rows.
    yaw: Mapped[float | None] = mapped_column(REAL)
    pitch: Mapped[float | None] = mapped_column(REAL)
    facing: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = created_at_column()


class FaceEventMinute(Base):
    """Counts of one student's face events in one UTC minute of a lesson (a rollup).

    Kept by statement-level triggers on ``face_events`` (migration 0002), never
    written by application code. Class timelines at minute buckets read these
    rows instead of every event: a 90-minute lesson of 500 students is 45,000
    rows instead of 540,000.
    """

    __tablename__ = "face_event_minutes"
    __table_args__ = ({"postgresql_partition_by": "RANGE (minute)"},)
    lesson_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lessons.id", ondelete="CASCADE"), primary_key=True
    )
    #: Start of the minute (aligned to whole UTC minutes).
    minute: Mapped[dt.datetime] = mapped_column(primary_key=True)
    student_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("students.id", ondelete="CASCADE"), primary_key=True
    )
    frames: Mapped[int] = mapped_column(Integer)
    face_frames: Mapped[int] = mapped_column(Integer)
    labelled: Mapped[int] = mapped_column(Integer)
    #: Labelled faces per expression, in ``shared.labels`` index order.
    label_counts: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    confidence_sum: Mapped[float] = mapped_column(Float)
    #: Frames whose (first) face has a head pose, and of those the ones facing the screen.
    posed_frames: Mapped[int] = mapped_column(Integer, server_default="0")
    facing_frames: Mapped[int] = mapped_column(Integer, server_default="0")
    #: Faces classified but too unsure for a label (migration 0012).
    uncertain: Mapped[int] = mapped_column(Integer, server_default="0")


class AuditEntry(Base):
    """Who did what to personal data (erasure, consent changes, key changes)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = created_at_column()
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict)


class LrsConfig(Base):
    """An organisation's Learning Record Store, where its xAPI statements go (migration 0007).

    The password must be sent, so it cannot be hashed like an API key: it is
    encrypted with ``CLASSPULSE_SECRETS_KEY`` (``shared.secret_box``) and never
    returned or logged.
    """

    __tablename__ = "lrs_configs"
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    #: The LRS's xAPI base URL; statements go to ``{endpoint}/statements``.
    endpoint: Mapped[str] = mapped_column(String(500))
    username: Mapped[str] = mapped_column(String(200))
    password_encrypted: Mapped[str] = mapped_column(String(1000))
    #: The LMS's URL: the ``homePage`` of every actor's xAPI account.
    lms_url: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime] = created_at_column()


class XapiStatement(Base):
    """One xAPI statement waiting for, or already accepted by, the organisation's LRS.

    The id is the statement's own (UUIDv5 of lesson, student and segment), so
    building a lesson's statements twice inserts nothing new, and the LRS sees
    the same id again if a send must be repeated.
    """

    __tablename__ = "xapi_statements"
    __table_args__ = (
        Index(
            "ix_xapi_statements_pending",
            "organisation_id",
            "next_attempt_at",
            postgresql_where="sent_at IS NULL AND rejected_at IS NULL",
        ),
        Index("ix_xapi_statements_lesson", "lesson_id"),
        Index("ix_xapi_statements_student", "student_id"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    lesson_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lessons.id", ondelete="CASCADE"))
    #: Erasing the student deletes its statements that have not left yet.
    student_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = created_at_column()
    next_attempt_at: Mapped[dt.datetime] = created_at_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Why the last attempt failed (an HTTP status or error class; never a credential).
    last_error: Mapped[str | None] = mapped_column(String(300))
    sent_at: Mapped[dt.datetime | None]
    #: The LRS refused this statement on its own (a 4xx): kept, not retried.
    rejected_at: Mapped[dt.datetime | None]


class XapiLesson(Base):
    """A lesson whose statements were built (once it ended and no frame of it waited)."""

    __tablename__ = "xapi_lessons"
    lesson_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lessons.id", ondelete="CASCADE"), primary_key=True
    )
    statements: Mapped[int] = mapped_column(Integer)
    built_at: Mapped[dt.datetime] = created_at_column()


# The LTI tool's tables live in their own module; imported here so that every user of
# the models (Alembic's metadata, the tests' TRUNCATE) sees them.
import shared.db.lti_models  # noqa: E402, F401

"""Build a finished lesson's statements into the outbox, once, and purge old sent ones.

A lesson is built when it has ended (plus the clock skew frames may carry) and
none of its frames is still queued, so every figure is final: its statements
never change after they were first stored, and their ids never point at two
different bodies.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.xapi.segments import student_segments
from services.xapi.statements import LessonRef, build_statement
from shared.consent import consent_active
from shared.db.models import (
    Frame,
    FrameStatus,
    Lesson,
    LrsConfig,
    SchoolClass,
    XapiLesson,
    XapiStatement,
)


def lessons_ready(
    session: Session, now: dt.datetime, *, settle: dt.timedelta, retention: dt.timedelta
) -> list[uuid.UUID]:
    """Lessons of organisations with an LRS, over and settled, still within retention
    (older ones have no events left), not built yet."""
    queued = exists().where(Frame.lesson_id == Lesson.id, Frame.status == FrameStatus.QUEUED)
    built = exists().where(XapiLesson.lesson_id == Lesson.id)
    rows = session.scalars(
        select(Lesson.id)
        .join(SchoolClass, SchoolClass.id == Lesson.class_id)
        .join(LrsConfig, LrsConfig.organisation_id == SchoolClass.organisation_id)
        .where(
            Lesson.ends_at < now - settle,
            Lesson.ends_at > now - retention,
            # Simulated students of `classpulse demo` never reach a real LRS.
            Lesson.is_demo.is_(False),
            ~queued,
            ~built,
        )
        .order_by(Lesson.ends_at)
    )
    return list(rows)


def consenting(
    session: Session, student_id: uuid.UUID, class_id: uuid.UUID, lesson_id: uuid.UUID
) -> bool:
    """Whether the student's consent for the lesson is active now (both parties)."""
    return bool(session.scalar(select(consent_active(student_id, class_id, lesson_id))))


def build_lesson(session: Session, lesson_id: uuid.UUID, now: dt.datetime) -> int:
    """Store the lesson's statements, due at ``now`` (those already stored are kept as
    they are); returns how many the lesson has. The caller commits."""
    lesson = session.get(Lesson, lesson_id, with_for_update=True)
    if lesson is None:
        return 0
    school_class = session.get_one(SchoolClass, lesson.class_id)
    config = session.get(LrsConfig, school_class.organisation_id)
    if config is None:
        return 0
    ref = LessonRef(lesson.id, lesson.title, lesson.starts_at, school_class.id, school_class.title)
    # A student (or school) who withdrew consent is no longer processed: nothing of
    # theirs leaves for an LRS, even of frames taken before.
    rows = [
        row
        for row in student_segments(session, lesson)
        if consenting(session, row.student_id, lesson.class_id, lesson.id)
    ]
    values = [
        {
            "id": uuid.UUID(body["id"]),
            "organisation_id": school_class.organisation_id,
            "lesson_id": lesson.id,
            "student_id": row.student_id,
            "body": body,
            "next_attempt_at": now,
        }
        for row in rows
        for body in [build_statement(config.lms_url, ref, row)]
    ]
    if values:
        session.execute(insert(XapiStatement).values(values).on_conflict_do_nothing())
    session.execute(
        insert(XapiLesson)
        .values(lesson_id=lesson.id, statements=len(values))
        .on_conflict_do_nothing()
    )
    return len(values)


def purge_old(session: Session, before: dt.datetime) -> int:
    """Delete statements that hold per-student figures longer than events are kept
    (``before``: now less the retention period): those the LRS accepted or refused
    before then, and those of an organisation that has no LRS any more. Statements
    waiting for an LRS that is set stay until it takes them: none is lost to an outage.
    """
    s = XapiStatement
    orphaned = ~exists().where(LrsConfig.organisation_id == s.organisation_id)
    statement = delete(s).where(
        or_(s.sent_at < before, s.rejected_at < before, and_(s.created_at < before, orphaned))
    )
    return session.connection().execute(statement).rowcount

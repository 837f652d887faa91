"""The worker's SQL: idempotent writes of frame outcomes and face events.

Every function takes an open connection inside the caller's transaction and
never commits: the task is the one commit point. Writes are safe to repeat
(a redelivered message, a retry after a lost connection): events are inserted
with ``ON CONFLICT (frame_id, face_index, captured_at) DO NOTHING`` (a
frame's events copy its capture time, so that is one row per frame and face)
and a frame's status moves only out of ``queued``.

The tables are partitioned by day of capture time (``shared.db.partitions``):
a frame is looked up by its id *and* the capture time its queue message
carries, so PostgreSQL reads one partition's index instead of every day's.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Connection, and_, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from shared.consent import consent_active as shared_consent_active
from shared.db import partitions
from shared.db.models import (
    EventKind,
    FaceEvent,
    FaceQuality,
    Frame,
    FrameStatus,
    Lesson,
)
from shared.schemas import FrameRef, frame_key
from shared.vision.pipeline import FrameResult


@dataclass(frozen=True, slots=True)
class FrameRow:
    """What the worker needs of a frame row (locked for the transaction)."""

    id: uuid.UUID
    lesson_id: uuid.UUID
    student_id: uuid.UUID
    #: None: the capture time lies outside the frame's lesson (see ``lesson_capture_time``).
    captured_at: dt.datetime | None
    status: FrameStatus
    #: The capture time that found the row (its partition key), for the writes that
    #: follow; None when only the id found it (a message whose time is not the row's).
    key_time: dt.datetime | None = None


def lesson_capture_time(skew: dt.timedelta) -> ColumnElement[dt.datetime | None]:
    """The frame's capture time if it lies within its lesson give or take ``skew``, else NULL.

    Ingest refuses other times, but rows stored before it did may hold anything,
    even PostgreSQL's ±infinity, which the driver cannot load: selecting this
    instead of the column lets such a row be marked failed instead of failing
    every query that reads it. Needs ``lessons`` joined.
    """
    within = and_(
        func.isfinite(Frame.captured_at),
        Frame.captured_at.between(Lesson.starts_at - skew, Lesson.ends_at + skew),
    )
    return case((within, Frame.captured_at), else_=None).label("captured_at")


def lock_frame(
    conn: Connection, frame_id: uuid.UUID, captured_at: dt.datetime | None, skew: dt.timedelta
) -> FrameRow | None:
    """The frame row, locked until commit so two deliveries of it run one after the other.

    Looked up by id and ``captured_at`` (the message's: one partition), then, if
    that finds nothing, by id alone (every partition): a row whose capture time
    was changed after its message was sent is still found and finished.
    """
    query = (
        select(Frame.id, Frame.lesson_id, Frame.student_id, lesson_capture_time(skew), Frame.status)
        .join(Lesson, Lesson.id == Frame.lesson_id)
        .where(Frame.id == frame_id)
        .with_for_update(of=Frame)
    )
    if captured_at is not None:
        row = conn.execute(query.where(Frame.captured_at == captured_at)).one_or_none()
        if row is not None:
            return FrameRow(*row, key_time=captured_at)
    row = conn.execute(query).one_or_none()
    return None if row is None else FrameRow(*row)


def _frame_is(frame_id: uuid.UUID, key_time: dt.datetime | None) -> ColumnElement[bool]:
    """The frame with this id, in the partition of ``key_time`` when it is known."""
    if key_time is None:
        return Frame.id == frame_id
    return and_(Frame.id == frame_id, Frame.captured_at == key_time)


def consent_active(conn: Connection, student_id: uuid.UUID, lesson_id: uuid.UUID) -> bool:
    """Whether the student's deciding consent for this lesson is still active."""
    class_id = select(Lesson.class_id).where(Lesson.id == lesson_id).scalar_subquery()
    return bool(conn.scalar(select(shared_consent_active(student_id, class_id, lesson_id))))


def event_rows(
    frame: FrameRow, result: FrameResult, model_version: str | None
) -> list[dict[str, Any]]:
    """One row per face, or a single ``no_face`` row, for ``face_events``."""
    common = {
        "frame_id": frame.id,
        "lesson_id": frame.lesson_id,
        "student_id": frame.student_id,
        "captured_at": frame.captured_at,
    }
    if result.no_face:
        return [{**common, "face_index": 0, "kind": EventKind.NO_FACE}]
    rows = []
    for index, face in enumerate(result.faces):
        # An uncertain face was classified too: its probabilities name the model.
        classified = face.probabilities is not None
        rows.append(
            {
                **common,
                "face_index": index,
                "kind": EventKind.FACE,
                "box_x": face.box.x,
                "box_y": face.box.y,
                "box_w": face.box.w,
                "box_h": face.box.h,
                "quality": FaceQuality(face.quality.value),
                "yaw": face.head_pose.yaw if face.head_pose else None,
                "pitch": face.head_pose.pitch if face.head_pose else None,
                "facing": face.facing,
                "label": int(face.label) if face.label is not None else None,
                "confidence": face.confidence,
                "probabilities": list(face.probabilities) if face.probabilities else None,
                "model_version": model_version if classified else None,
            }
        )
    return rows


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert face events, skipping those already stored; returns how many were new."""
    if not rows:
        return 0
    statement = (
        insert(FaceEvent)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["frame_id", "face_index", "captured_at"])
    )
    return conn.execute(statement).rowcount


def finish_frame(
    conn: Connection,
    frame_id: uuid.UUID,
    key_time: dt.datetime | None,
    status: FrameStatus,
    reason: str | None = None,
) -> bool:
    """Move a still-queued frame to its final status; False if it had already left ``queued``.

    ``key_time``: the frame's capture time, to read one partition (None: search all).
    """
    result = conn.execute(
        update(Frame)
        .where(_frame_is(frame_id, key_time), Frame.status == FrameStatus.QUEUED)
        .values(status=status, failure_reason=reason, processed_at=dt.datetime.now(dt.UTC))
    )
    return result.rowcount == 1


@dataclass(frozen=True, slots=True)
class StaleFrames:
    """Frames still queued after a while: as queue messages, and those that cannot be one."""

    refs: list[FrameRef]
    #: Frames whose capture time lies outside their lesson (``lesson_capture_time``).
    bad_capture_time: list[uuid.UUID]


def stale_queued_refs(
    conn: Connection, before: dt.datetime, limit: int, skew: dt.timedelta
) -> StaleFrames:
    """Frames still queued, received before ``before``, oldest first."""
    rows = conn.execute(
        select(Frame.id, Frame.lesson_id, Frame.student_id, lesson_capture_time(skew))
        .join(Lesson, Lesson.id == Frame.lesson_id)
        .where(Frame.status == FrameStatus.QUEUED, Frame.received_at < before)
        .order_by(Frame.received_at)
        .limit(limit)
    )
    now = dt.datetime.now(dt.UTC)
    stale = StaleFrames([], [])
    for row in rows:
        try:
            ref = FrameRef(
                frame_id=row.id,
                lesson_id=row.lesson_id,
                student_id=row.student_id,
                captured_at=row.captured_at,
                enqueued_at=now,
                redis_key=frame_key(row.id),
            )
        except ValidationError:  # captured_at NULL: outside its lesson
            stale.bad_capture_time.append(row.id)
        else:
            stale.refs.append(ref)
    return stale


def finish_frames(
    conn: Connection, frame_ids: Sequence[uuid.UUID], status: FrameStatus, reason: str
) -> int:
    """Move still-queued frames to ``status`` with ``reason``; returns how many changed."""
    if not frame_ids:
        return 0
    result = conn.execute(
        update(Frame)
        .where(Frame.id.in_(list(frame_ids)), Frame.status == FrameStatus.QUEUED)
        .values(status=status, failure_reason=reason, processed_at=dt.datetime.now(dt.UTC))
    )
    return result.rowcount


def expire_frames(conn: Connection, frame_ids: Sequence[uuid.UUID], reason: str) -> int:
    """Mark still-queued frames ``expired`` with ``reason``; returns how many changed."""
    return finish_frames(conn, frame_ids, FrameStatus.EXPIRED, reason)


def purge_outside(conn: Connection, cutoff: dt.datetime, ahead: dt.datetime) -> Purged:
    """Drop the day partitions older than ``cutoff``, then delete the rows captured before
    it or after ``ahead`` that lie elsewhere (in the default partition).

    Whole days go with ``DROP TABLE``. The row deletes read only what no day
    partition wholly below ``cutoff`` holds: their bound is the start of
    ``cutoff``'s day, so the day that straddles ``cutoff`` (kept until it is all
    older) is not scanned. Nothing of a lesson is captured after ``ahead``: such
    rows come from before ingest checked capture times (a year 2999,
    PostgreSQL's infinity) and would otherwise outlive every retention period.
    """
    dropped = partitions.drop_before(conn, cutoff)
    floor = partitions.day_start(cutoff)
    events = conn.execute(
        delete(FaceEvent).where(or_(FaceEvent.captured_at < floor, FaceEvent.captured_at > ahead))
    ).rowcount
    frames = conn.execute(
        delete(Frame).where(or_(Frame.captured_at < floor, Frame.captured_at > ahead))
    ).rowcount
    return Purged(dropped, events, frames)


@dataclass(frozen=True, slots=True)
class Purged:
    """What a retention purge removed: whole partitions, and rows deleted one by one."""

    partitions: list[str]
    events: int
    frames: int

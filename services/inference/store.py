"""The worker's SQL: idempotent writes of frame outcomes and face events.

Every function takes an open connection inside the caller's transaction and
never commits: the task is the one commit point. Writes are safe to repeat
(a redelivered message, a retry after a lost connection): events are inserted
with ``ON CONFLICT (frame_id, face_index) DO NOTHING`` and a frame's status
moves only out of ``queued``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.postgresql import insert

from shared.consent import consent_active as shared_consent_active
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
    captured_at: dt.datetime
    status: FrameStatus


def lock_frame(conn: Connection, frame_id: uuid.UUID) -> FrameRow | None:
    """The frame row, locked until commit so two deliveries of it run one after the other."""
    row = conn.execute(
        select(Frame.id, Frame.lesson_id, Frame.student_id, Frame.captured_at, Frame.status)
        .where(Frame.id == frame_id)
        .with_for_update()
    ).one_or_none()
    return None if row is None else FrameRow(*row)


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
        labelled = face.label is not None
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
                "label": int(face.label) if face.label is not None else None,
                "confidence": face.confidence,
                "probabilities": list(face.probabilities) if face.probabilities else None,
                "model_version": model_version if labelled else None,
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
        .on_conflict_do_nothing(index_elements=["frame_id", "face_index"])
    )
    return conn.execute(statement).rowcount


def finish_frame(
    conn: Connection, frame_id: uuid.UUID, status: FrameStatus, reason: str | None = None
) -> bool:
    """Move a still-queued frame to its final status; False if it had already left ``queued``."""
    result = conn.execute(
        update(Frame)
        .where(Frame.id == frame_id, Frame.status == FrameStatus.QUEUED)
        .values(status=status, failure_reason=reason, processed_at=dt.datetime.now(dt.UTC))
    )
    return result.rowcount == 1


def stale_queued_refs(conn: Connection, before: dt.datetime, limit: int) -> list[FrameRef]:
    """Frames still queued, received before ``before``, oldest first, as queue messages."""
    rows = conn.execute(
        select(Frame.id, Frame.lesson_id, Frame.student_id, Frame.captured_at)
        .where(Frame.status == FrameStatus.QUEUED, Frame.received_at < before)
        .order_by(Frame.received_at)
        .limit(limit)
    )
    now = dt.datetime.now(dt.UTC)
    return [
        FrameRef(
            frame_id=row.id,
            lesson_id=row.lesson_id,
            student_id=row.student_id,
            captured_at=row.captured_at,
            enqueued_at=now,
            redis_key=frame_key(row.id),
        )
        for row in rows
    ]


def expire_frames(conn: Connection, frame_ids: Sequence[uuid.UUID], reason: str) -> int:
    """Mark still-queued frames ``expired`` with ``reason``; returns how many changed."""
    if not frame_ids:
        return 0
    result = conn.execute(
        update(Frame)
        .where(Frame.id.in_(list(frame_ids)), Frame.status == FrameStatus.QUEUED)
        .values(
            status=FrameStatus.EXPIRED,
            failure_reason=reason,
            processed_at=dt.datetime.now(dt.UTC),
        )
    )
    return result.rowcount


def purge_before(conn: Connection, cutoff: dt.datetime) -> tuple[int, int]:
    """Delete face events and frames captured before ``cutoff``: (events, frames)."""
    events = conn.execute(delete(FaceEvent).where(FaceEvent.captured_at < cutoff)).rowcount
    frames = conn.execute(delete(Frame).where(Frame.captured_at < cutoff)).rowcount
    return events, frames

"""Wire shapes shared across services: the queue message and the live notice.

These are neither database rows nor API responses (those live with their
service); they are the only contract between ingest, inference and analytics.
"""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.labels import LABELS

#: Redis key prefix for frame bytes waiting for a worker.
FRAME_KEY_PREFIX = "classpulse:frame:"
#: Redis pub/sub channel prefix for per-lesson live notices.
LIVE_CHANNEL_PREFIX = "classpulse:live:"
#: Name of the Celery queue that carries frame references.
FRAME_QUEUE = "frames"


def frame_key(frame_id: uuid.UUID) -> str:
    """Redis key of a frame's bytes."""
    return f"{FRAME_KEY_PREFIX}{frame_id}"


def live_channel(lesson_id: uuid.UUID) -> str:
    """Redis channel where workers announce new events of a lesson."""
    return f"{LIVE_CHANNEL_PREFIX}{lesson_id}"


class FrameRef(BaseModel):
    """Queue message: a reference to frame bytes in Redis, never the bytes."""

    model_config = ConfigDict(frozen=True)

    frame_id: uuid.UUID
    lesson_id: uuid.UUID
    student_id: uuid.UUID
    captured_at: AwareDatetime
    enqueued_at: AwareDatetime
    redis_key: str


class FaceResult(BaseModel):
    """One face as the worker stores and announces it."""

    face_index: int = Field(ge=0)
    box: tuple[int, int, int, int] | None = Field(
        None, description="x, y, width, height in frame pixels"
    )
    quality: str | None = None
    label: str | None = Field(None, description=f"displayed expression, one of {LABELS}")
    confidence: float | None = Field(None, ge=0, le=1)
    probabilities: dict[str, float] | None = None


class LiveNotice(BaseModel):
    """Published on ``live_channel(lesson)`` after a frame's events are committed."""

    frame_id: uuid.UUID
    lesson_id: uuid.UUID
    student_id: uuid.UUID
    captured_at: dt.datetime
    status: str
    faces: int
    labels: list[str | None] = Field(default_factory=list)

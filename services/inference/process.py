"""The body of the frame task: bytes from Redis → pipeline → events in PostgreSQL.

Two short transactions around the work, none during it. The first claims the
frame: it locks the row, settles what needs no pixel (the frame erased or
already finished, a capture time outside the lesson, consent withdrawn, the
bytes gone) and reads the bytes, then lets go. Decoding, detection and
classification run with no lock and no connection held. The second locks the
row again and records the result only if the frame is still queued and its
consent still active: a second delivery that ran meanwhile, an expiry or an
erasure wins, and the result is dropped, so each frame still ends in exactly
one state with one set of events (inserts skip rows already stored). After the
commit the bytes are deleted and a notice is published for live views; the
notice is best effort, the stored events are the truth.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from sqlalchemy import Connection

from services.inference import orphans, store
from services.inference.resources import WorkerResources
from services.inference.store import FrameRow
from shared import face_crops, metrics, tracing
from shared.db import partitions
from shared.db.models import FrameStatus
from shared.errors import InvalidFrame
from shared.schemas import FrameRef, LiveNotice, frame_key, live_channel
from shared.vision.crops import aligned_faces
from shared.vision.decode import decode_reduced

if TYPE_CHECKING:
    from shared.vision.pipeline import FrameResult

log = logging.getLogger(__name__)

#: Failure reasons stored on frames (besides the decoder's InvalidFrame reasons).
BYTES_EXPIRED = "bytes_expired"
CONSENT_WITHDRAWN = "consent_withdrawn"
RETRIES_EXHAUSTED = "retries_exhausted"
#: The capture time lies outside the frame's lesson: stored before ingest checked it.
INVALID_CAPTURE_TIME = "invalid_capture_time"
#: Logged after the frame id for each frame whose lost message is published again.
REQUEUED_LOG = "still queued after the queue passed it; queued again"
#: Logged after the frame id for each queued frame a periodic task marks failed.
BAD_CAPTURE_TIME_LOG = "capture time outside its lesson; marked failed"
#: No lesson's frame is captured further ahead of now than this (ingest allows at
#: most an hour of clock skew); the purge deletes rows captured beyond it.
FUTURE_CAPTURE_LIMIT = dt.timedelta(days=1)


@dataclass(frozen=True)
class Outcome:
    """What became of a frame in this run."""

    status: FrameStatus | None
    reason: str | None = None
    faces: int = 0
    labels: list[str | None] = field(default_factory=list)
    #: False when an earlier delivery had already finished the frame.
    changed: bool = True


@dataclass(frozen=True)
class _Analysis:
    """What the pipeline made of a frame's bytes: a result, or why there is none."""

    result: FrameResult | None = None
    failure: str | None = None


def process_frame(ref: FrameRef, res: WorkerResources) -> Outcome:
    """Process one queued frame; idempotent, safe to run again after any failure."""
    with res.engine.begin() as conn:
        claim = _claim(conn, ref, res)
    if isinstance(claim, Outcome):
        outcome = claim
    else:
        frame, data = claim
        analysis = _analyze(data, res)
        with res.engine.begin() as conn:
            outcome = _record(conn, frame, analysis, res)
    if outcome.changed and outcome.status is not None:
        metrics.FRAMES_FINISHED.labels(
            status=outcome.status.value, reason=outcome.reason or ""
        ).inc()
        # Done frames at DEBUG (one a frame); the others say why they ended.
        level = logging.DEBUG if outcome.status is FrameStatus.DONE else logging.INFO
        log.log(
            level,
            "frame %s %s%s",
            ref.frame_id,
            outcome.status.value,
            f" ({outcome.reason})" if outcome.reason else "",
            extra={
                "frame_id": str(ref.frame_id),
                "lesson_id": str(ref.lesson_id),
                "status": outcome.status.value,
                "reason": outcome.reason,
                "faces": outcome.faces,
            },
        )
    # Whatever happened, the bytes are no longer needed once the outcome is stored.
    res.redis.delete(frame_key(ref.frame_id))
    if outcome.changed and outcome.status is not None:
        _announce(ref, outcome, res)
    return outcome


def _settled(conn: Connection, frame_id: uuid.UUID, frame: FrameRow | None) -> Outcome | None:
    """The outcome of a locked frame that needs no pixel, or None when it is to be processed."""
    if frame is None:
        # Erased (student data deletion) or never committed: nothing to record.
        log.warning("frame %s: no such frame row; bytes dropped", frame_id)
        return Outcome(None, "frame_not_found", changed=False)
    if frame.status is not FrameStatus.QUEUED:
        return Outcome(frame.status, changed=False)
    if frame.captured_at is None:
        store.finish_frame(conn, frame_id, frame.key_time, FrameStatus.FAILED, INVALID_CAPTURE_TIME)
        return Outcome(FrameStatus.FAILED, INVALID_CAPTURE_TIME)
    if not store.consent_active(conn, frame.student_id, frame.lesson_id):
        store.finish_frame(conn, frame_id, frame.key_time, FrameStatus.FAILED, CONSENT_WITHDRAWN)
        return Outcome(FrameStatus.FAILED, CONSENT_WITHDRAWN)
    return None


def _claim(
    conn: Connection, ref: FrameRef, res: WorkerResources
) -> Outcome | tuple[FrameRow, bytes]:
    """Settle what needs no pixel (consent before any pixel is decoded), else the bytes."""
    frame_id = ref.frame_id
    frame = store.lock_frame(conn, frame_id, ref.captured_at, res.clock_skew)
    settled = _settled(conn, frame_id, frame)
    if settled is not None:
        return settled
    assert frame is not None  # settled otherwise
    data = res.redis.get(frame_key(frame_id))
    if data is None:
        store.finish_frame(conn, frame_id, frame.key_time, FrameStatus.EXPIRED, BYTES_EXPIRED)
        return Outcome(FrameStatus.EXPIRED, BYTES_EXPIRED)
    assert isinstance(data, bytes)  # a synchronous client that does not decode responses
    return frame, data


def _analyze(data: bytes, res: WorkerResources) -> _Analysis:
    """Faces of a frame's bytes, outside any transaction."""
    try:
        if face_crops.is_packed(data):
            # A browser's aligned face crops (shared.face_crops): no frame, no detection.
            meta, image = face_crops.unpack(data)
            faces = aligned_faces(meta, image, res.settings.min_face_fraction)
            with metrics.STAGE_SECONDS.labels(stage="analyze").time(), tracing.span("analyze"):
                result = res.pipeline.analyze_aligned(faces, meta.frame_width, meta.frame_height)
        else:
            with metrics.STAGE_SECONDS.labels(stage="decode").time(), tracing.span("decode"):
                decoded = decode_reduced(
                    data, res.settings.min_face_fraction, res.settings.max_frame_pixels
                )
            with metrics.STAGE_SECONDS.labels(stage="analyze").time(), tracing.span("analyze"):
                result = res.pipeline.analyze(decoded.image, (decoded.width, decoded.height))
    except InvalidFrame as exc:
        return _Analysis(failure=exc.reason)
    metrics.FACES_PER_FRAME.observe(len(result.faces))
    return _Analysis(result=result)


def _record(
    conn: Connection, claimed: FrameRow, analysis: _Analysis, res: WorkerResources
) -> Outcome:
    """Store the analysis if the frame is still the claimed, queued, consented one."""
    frame = store.lock_frame(conn, claimed.id, claimed.key_time, res.clock_skew)
    settled = _settled(conn, claimed.id, frame)
    if settled is not None:
        return settled
    assert frame is not None  # settled otherwise
    if analysis.failure is not None:
        store.finish_frame(conn, frame.id, frame.key_time, FrameStatus.FAILED, analysis.failure)
        return Outcome(FrameStatus.FAILED, analysis.failure)
    result = analysis.result
    assert result is not None  # a failure otherwise
    with metrics.STAGE_SECONDS.labels(stage="store").time(), tracing.span("write"):
        store.insert_events(conn, store.event_rows(frame, result, res.pipeline.model_version))
        store.finish_frame(conn, frame.id, frame.key_time, FrameStatus.DONE)
    labels = [face.label.label if face.label is not None else None for face in result.faces]
    return Outcome(FrameStatus.DONE, faces=len(result.faces), labels=labels)


def _announce(ref: FrameRef, outcome: Outcome, res: WorkerResources) -> None:
    assert outcome.status is not None
    notice = LiveNotice(
        frame_id=ref.frame_id,
        lesson_id=ref.lesson_id,
        student_id=ref.student_id,
        captured_at=ref.captured_at,
        status=outcome.status.value,
        faces=outcome.faces,
        labels=outcome.labels,
    )
    try:
        with tracing.span("live notice", frame_id=ref.frame_id, kind="producer"):
            res.redis.publish(live_channel(ref.lesson_id), notice.model_dump_json())
    except RedisError as exc:
        # Live views catch up from the stored events; not worth a retry.
        log.warning("frame %s: live notice not published: %s", ref.frame_id, exc)


def give_up(ref: FrameRef, res: WorkerResources) -> bool:
    """Best effort after the last retry: mark the frame failed so it is not left queued."""
    try:
        with res.engine.begin() as conn:
            # The message's capture time finds the row in its partition; the id alone
            # finds one whose time changed since.
            return any(
                store.finish_frame(conn, ref.frame_id, key, FrameStatus.FAILED, RETRIES_EXHAUSTED)
                for key in (ref.captured_at, None)
            )
    except Exception as exc:  # the store may well still be down; expiry catches it later
        log.error("frame %s: could not be marked failed after retries: %s", ref.frame_id, exc)
        return False


def expire_stale(
    res: WorkerResources,
    now: dt.datetime | None = None,
    batch: int = 500,
    *,
    received_before: dt.datetime | None = None,
) -> int:
    """Frames queued longer than the TTL whose bytes are gone → ``expired``.

    With ``received_before`` (after the Redis of the bytes restarted empty), every
    queued frame received before it whose bytes are gone, however young: ingest
    stores the bytes before the row, and a worker deletes them only after its
    commit, so a queued row without bytes can never be processed (a worker that
    read them before they went finds the frame expired when it records, and
    drops its result). Queued frames whose capture time lies outside
    their lesson are marked ``failed`` on the way (``fail_bad_capture_times``).
    """
    now = now or dt.datetime.now(dt.UTC)
    cutoff = received_before or now - dt.timedelta(seconds=res.settings.frame_ttl_seconds)
    with res.engine.begin() as conn:
        stale = store.stale_queued_refs(conn, cutoff, batch, res.clock_skew)
        fail_bad_capture_times(conn, stale.bad_capture_time)
        if not stale.refs:
            expired = 0
        else:
            present = _bytes_present(res, stale.refs)
            gone = [r.frame_id for r, there in zip(stale.refs, present, strict=True) if not there]
            expired = store.expire_frames(conn, gone, BYTES_EXPIRED)
    _drop_bytes(res, stale.bad_capture_time)
    return expired


def fail_bad_capture_times(conn: Connection, frame_ids: list[uuid.UUID]) -> None:
    """Mark queued frames failed whose capture time lies outside their lesson, one log line each.

    Such a row (stored before ingest checked capture times) can never be
    processed; left queued, it would come first in every periodic run again.
    """
    for frame_id in frame_ids:
        log.warning("frame %s: %s", frame_id, BAD_CAPTURE_TIME_LOG)
    store.finish_frames(conn, frame_ids, FrameStatus.FAILED, INVALID_CAPTURE_TIME)


def _drop_bytes(res: WorkerResources, frame_ids: list[uuid.UUID]) -> None:
    """Best effort: the bytes expire with their TTL anyway."""
    if not frame_ids:
        return
    try:
        res.redis.delete(*(frame_key(frame_id) for frame_id in frame_ids))
    except RedisError as exc:
        log.warning("bytes of %d failed frames not deleted: %s", len(frame_ids), exc)


def _bytes_present(res: WorkerResources, refs: list[FrameRef]) -> list[bool]:
    """Whether each frame's bytes are still in Redis, in one round trip."""
    pipe = res.redis.pipeline(transaction=False)
    for ref in refs:
        pipe.exists(ref.redis_key)
    return [bool(n) for n in pipe.execute()]


def requeue_orphans(
    res: WorkerResources,
    publish: Callable[[FrameRef], None],
    older_than: dt.timedelta,
    now: dt.datetime | None = None,
    batch: int = 500,
    *,
    waiting: Callable[[], int] | None = None,
) -> list[uuid.UUID]:
    """Publish again the frames queued longer than ``older_than`` that the queue has passed.

    Passed: a worker finished a frame received after them, or ``waiting`` (the
    queue's length; None: unknown) is 0. Only frames whose bytes are still in
    Redis and that were not requeued within ``older_than`` are published
    (``services.inference.orphans``); the broker's own keys are never read.
    Returns the ids published.
    """
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - older_than
    with res.engine.begin() as conn:
        stale = store.stale_queued_refs(conn, cutoff, batch, res.clock_skew)
        fail_bad_capture_times(conn, stale.bad_capture_time)
        passed = bool(stale.refs) and orphans.queue_passed(
            conn, cutoff + orphans.margin(older_than)
        )
    _drop_bytes(res, stale.bad_capture_time)
    if not stale.refs or not (passed or (waiting is not None and waiting() == 0)):
        return []
    present = _bytes_present(res, stale.refs)
    candidates = [ref for ref, there in zip(stale.refs, present, strict=True) if there]
    claimed = orphans.claim_requeue(res.redis, [ref.frame_id for ref in candidates], older_than)
    lost = [ref for ref, mine in zip(candidates, claimed, strict=True) if mine]
    for ref in lost:
        extra = {"frame_id": str(ref.frame_id)}
        log.warning("frame %s: %s", ref.frame_id, REQUEUED_LOG, extra=extra)
        publish(ref)
    return [ref.frame_id for ref in lost]


def purge_old(res: WorkerResources, now: dt.datetime | None = None) -> store.Purged:
    """Drop the days older than the retention period, and delete the rows outside any
    day partition that are older or captured impossibly far ahead
    (``FUTURE_CAPTURE_LIMIT``)."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=res.settings.retention_days)
    with res.engine.begin() as conn:
        return store.purge_outside(conn, cutoff, now + FUTURE_CAPTURE_LIMIT)


def create_partitions(res: WorkerResources, now: dt.datetime | None = None) -> list[str]:
    """Day partitions from today to ``partitions.DAYS_AHEAD`` days ahead; the ones created."""
    with res.engine.begin() as conn:
        return partitions.ensure_ahead(conn, now or dt.datetime.now(dt.UTC))

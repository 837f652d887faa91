"""Celery tasks of the inference worker.

``classpulse.process_frame`` is the contract with ingest: queue ``frames``,
keyword argument ``ref`` = ``FrameRef.model_dump(mode="json")``. Transient
store errors (PostgreSQL or Redis unreachable) are retried with exponential
backoff and full jitter, a bounded number of times; anything else about a
frame is recorded on the frame itself by ``process_frame``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import Task
from celery.utils.time import get_exponential_backoff_interval
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from services.inference import process
from services.inference.celery_app import XAPI_EVERY_SECONDS, app
from services.inference.resources import get_resources
from shared import metrics
from shared.schemas import FRAME_QUEUE, FrameRef
from shared.settings import worker_settings

log = logging.getLogger(__name__)

PROCESS_FRAME_TASK = "classpulse.process_frame"
EXPIRE_FRAMES_TASK = "classpulse.expire_frames"
PURGE_OLD_EVENTS_TASK = "classpulse.purge_old_events"
CREATE_PARTITIONS_TASK = "classpulse.create_partitions"
REQUEUE_ORPHANS_TASK = "classpulse.requeue_orphaned_frames"
SEND_XAPI_TASK = "classpulse.send_xapi_statements"
#: Sent by ``classpulse up`` when it restarted its embedded Redis (which keeps nothing).
EXPIRE_LOST_FRAMES_TASK = "classpulse.expire_lost_frames"
#: Queued frames one recovery looks at: more than a single machine's queue holds.
LOST_FRAMES_BATCH = 20_000

#: Errors of an unreachable store: worth retrying, the frame itself is fine.
TRANSIENT_ERRORS = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)
MAX_RETRIES = 8
#: Backoff: 1, 2, 4 … seconds, capped, each drawn uniformly below (full jitter).
RETRY_BACKOFF_SECONDS = 1
RETRY_BACKOFF_MAX_SECONDS = 30


def retry_delay(retries: int) -> int:
    """Seconds before retry number ``retries + 1``."""
    return int(
        get_exponential_backoff_interval(
            RETRY_BACKOFF_SECONDS, retries, RETRY_BACKOFF_MAX_SECONDS, full_jitter=True
        )
    )


def process_frame_task(self: Task[Any, Any], ref: dict[str, Any]) -> str | None:
    """Process one frame reference from the queue; returns the frame's status."""
    try:
        frame_ref = FrameRef.model_validate(ref)
    except ValidationError as exc:
        log.error("malformed frame reference dropped: %s (%s)", ref, exc)
        return None
    resources = get_resources()
    try:
        outcome = process.process_frame(frame_ref, resources)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= MAX_RETRIES:
            process.give_up(frame_ref, resources)
            raise
        log.warning("frame %s: %s; retrying", frame_ref.frame_id, type(exc).__name__)
        metrics.TASK_RETRIES.inc()
        raise self.retry(exc=exc, countdown=retry_delay(self.request.retries)) from exc
    return None if outcome.status is None else outcome.status.value


def expire_frames_task() -> int:
    """Mark frames whose bytes expired before any worker took them as ``expired``."""
    expired = process.expire_stale(get_resources())
    metrics.FRAMES_EXPIRED.inc(expired)
    return expired


def expire_lost_frames_task(received_before: str) -> int:
    """After Redis lost its data: frames received before ``received_before`` (ISO 8601)
    whose bytes are gone → ``expired`` now, not a TTL later."""
    before = dt.datetime.fromisoformat(received_before)
    expired = process.expire_stale(get_resources(), batch=LOST_FRAMES_BATCH, received_before=before)
    metrics.FRAMES_EXPIRED.inc(expired)
    return expired


def publish_frame(ref: FrameRef) -> None:
    """Queue ``ref`` for ``process_frame``; its task id is the frame id, as ingest sends it."""
    app.send_task(
        PROCESS_FRAME_TASK,
        kwargs={"ref": ref.model_dump(mode="json")},
        task_id=str(ref.frame_id),
        queue=FRAME_QUEUE,
    )


def requeue_orphaned_frames_task() -> int:
    """Queue again the frames whose message the broker lost (see ``orphans``)."""
    older_than = dt.timedelta(seconds=worker_settings().requeue_after_seconds)
    requeued = len(process.requeue_orphans(get_resources(), publish_frame, older_than))
    metrics.FRAMES_REQUEUED.inc(requeued)
    return requeued


def purge_old_events_task() -> dict[str, Any]:
    """Drop the days of face events, rollup and frames older than the retention period
    (and delete such rows outside any day partition)."""
    purged = process.purge_old(get_resources())
    if purged.partitions:
        log.info("retention dropped %s", ", ".join(purged.partitions))
    return {"partitions": purged.partitions, "events": purged.events, "frames": purged.frames}


def create_partitions_task() -> list[str]:
    """Create the day partitions of the coming days that do not exist yet."""
    created = process.create_partitions(get_resources())
    if created:
        log.info("created partitions %s", ", ".join(created))
    return created


def send_xapi_statements_task() -> dict[str, int]:
    """Build finished lessons' xAPI statements and send the waiting ones to each LRS."""
    from services.xapi.deliver import deliver

    resources = get_resources()
    done = deliver(
        resources.engine,
        settle=resources.clock_skew,
        retention=dt.timedelta(days=resources.retention_days),
    )
    return {
        "lessons_built": done.lessons_built,
        "sent": done.sent,
        "rejected": done.rejected,
        "deferred": done.deferred,
        "purged": done.purged,
    }


# Registered by call rather than decorator: Celery ships no type hints, and the
# plain functions stay importable and typed for tests.
process_frame = app.task(name=PROCESS_FRAME_TASK, bind=True, max_retries=MAX_RETRIES)(
    process_frame_task
)
expire_frames = app.task(name=EXPIRE_FRAMES_TASK)(expire_frames_task)
expire_lost_frames = app.task(name=EXPIRE_LOST_FRAMES_TASK)(expire_lost_frames_task)
purge_old_events = app.task(name=PURGE_OLD_EVENTS_TASK)(purge_old_events_task)
create_partitions = app.task(name=CREATE_PARTITIONS_TASK)(create_partitions_task)
requeue_orphaned_frames = app.task(name=REQUEUE_ORPHANS_TASK)(requeue_orphaned_frames_task)
# A round not started within its period is dropped (the next one does its work);
# overlapping rounds are safe: batches are locked SKIP LOCKED and builds insert once.
send_xapi_statements = app.task(name=SEND_XAPI_TASK, expires=XAPI_EVERY_SECONDS)(
    send_xapi_statements_task
)

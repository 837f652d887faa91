"""Celery tasks of the inference worker.

``classpulse.process_frame`` is the contract with ingest: queue ``frames``,
keyword argument ``ref`` = ``FrameRef.model_dump(mode="json")``. Transient
store errors (PostgreSQL or Redis unreachable) are retried with exponential
backoff and full jitter, a bounded number of times, as Celery declares it
(``autoretry_for``, ``retry_backoff``, ``retry_jitter``); after the last, the
frame is marked failed (``FrameTask.on_failure``). Anything else about a frame
is recorded on the frame itself by ``process_frame``. Task names: ``shared.tasks``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery import Task
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from services.inference import process
from services.inference.celery_app import XAPI_EVERY_SECONDS, app
from services.inference.resources import get_resources
from shared import metrics, tasks, tracing
from shared.schemas import FRAME_QUEUE, FrameRef

log = logging.getLogger(__name__)

PROCESS_FRAME_TASK = tasks.PROCESS_FRAME
EXPIRE_FRAMES_TASK = tasks.EXPIRE_FRAMES
PURGE_OLD_EVENTS_TASK = tasks.PURGE_OLD_EVENTS
CREATE_PARTITIONS_TASK = tasks.CREATE_PARTITIONS
REQUEUE_ORPHANS_TASK = tasks.REQUEUE_ORPHANS
SEND_XAPI_TASK = tasks.SEND_XAPI
#: Sent by ``classpulse up`` when it restarted its embedded Redis (which keeps nothing).
EXPIRE_LOST_FRAMES_TASK = tasks.EXPIRE_LOST_FRAMES
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


class FrameTask(Task):  # type: ignore[misc]  # Celery ships no type hints
    """``process_frame``'s class: what a retry and the last failure of a frame do."""

    def on_retry(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        log.warning("frame %s: %s; retrying", task_id, type(exc).__name__)
        metrics.TASK_RETRIES.inc()

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        # The retries of a store error are spent: the frame is failed, not left queued.
        if isinstance(exc, TRANSIENT_ERRORS):
            process.give_up(FrameRef.model_validate(kwargs["ref"]), get_resources())


def process_frame_task(ref: dict[str, Any]) -> str | None:
    """Process one frame reference from the queue; returns the frame's status."""
    try:
        frame_ref = FrameRef.model_validate(ref)
    except ValidationError as exc:
        log.error("malformed frame reference dropped: %s (%s)", ref, exc)
        return None
    tracing.mark_frame(frame_ref.frame_id)
    outcome = process.process_frame(frame_ref, get_resources())
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
        tasks.PROCESS_FRAME,
        kwargs={"ref": ref.model_dump(mode="json")},
        task_id=str(ref.frame_id),
        queue=FRAME_QUEUE,
    )


def queue_length() -> int:
    """Messages waiting in the frame queue, as the broker declares it (kombu's channel API)."""
    with app.connection_for_read() as connection:
        declared = connection.default_channel.queue_declare(queue=FRAME_QUEUE, passive=False)
        return int(declared.message_count)


def requeue_orphaned_frames_task() -> int:
    """Queue again the frames whose message was lost (see ``orphans``)."""
    resources = get_resources()
    older_than = dt.timedelta(seconds=resources.settings.requeue_after_seconds)
    requeued = len(
        process.requeue_orphans(resources, publish_frame, older_than, waiting=queue_length)
    )
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
        secrets_key=resources.settings.secrets_key,
        settle=resources.clock_skew,
        retention=dt.timedelta(days=resources.settings.retention_days),
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
process_frame = app.task(
    name=PROCESS_FRAME_TASK,
    base=FrameTask,
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=MAX_RETRIES,
    retry_backoff=RETRY_BACKOFF_SECONDS,
    retry_backoff_max=RETRY_BACKOFF_MAX_SECONDS,
    retry_jitter=True,
)(process_frame_task)
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

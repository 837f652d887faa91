"""Frames whose queue message was lost, told from the frames' own state, never the broker's.

A broker can lose a message: kombu's Redis transport takes it off the queue's
list and then records it as unacknowledged, two steps, and a message taken as
Redis shuts down, or by a worker killed between the two, is in neither place.
Its frame stays ``queued`` with its bytes in Redis until they expire.

The queue is first in, first out, so once the workers have finished frames that
arrived *after* a queued frame, the queue has passed it: a frame received before
``cutoff`` (now − ``CLASSPULSE_REQUEUE_AFTER_SECONDS``) and still queued, with
its bytes still there, is published again once a frame received after the cutoff
(plus a margin for requests that insert and publish in a different order) is
``done`` or ``failed``, or once the queue is empty. During a backlog longer
than the cutoff nothing is requeued, so a long queue is never doubled.

A frame taken for lost that was only slow (still in a worker's prefetch, or
waiting for a retry) costs a repeat and nothing more: the worker's claim locks
the frame row and settles a frame already finished without touching its pixels,
and events are inserted once. A Redis key of our own (``REQUEUED_KEY_PREFIX``)
makes a frame requeued at most once per period, also with several beat processes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import redis
from sqlalchemy import Connection, exists, select

from shared.db.models import Frame, FrameStatus

#: Redis key marking a frame requeued less than one period ago (value unused).
REQUEUED_KEY_PREFIX = "classpulse:requeued:"
#: Statuses only a worker that took the frame's message sets (expiry is a periodic task).
_WORKED = (FrameStatus.DONE, FrameStatus.FAILED)
#: Frames inserted this long apart may be published in the other order.
PUBLISH_MARGIN = dt.timedelta(seconds=5)


def requeued_key(frame_id: uuid.UUID) -> str:
    return f"{REQUEUED_KEY_PREFIX}{frame_id}"


def margin(period: dt.timedelta) -> dt.timedelta:
    """``PUBLISH_MARGIN``, or a quarter of a shorter period (tests run short periods)."""
    return min(PUBLISH_MARGIN, period / 4)


def queue_passed(conn: Connection, cutoff: dt.datetime) -> bool:
    """Whether a worker finished a frame received after ``cutoff`` (one index probe per
    status on ``frames (status, received_at)``)."""
    later = exists().where(Frame.status.in_(_WORKED), Frame.received_at > cutoff)
    return bool(conn.scalar(select(later)))


def claim_requeue(
    client: redis.Redis, frame_ids: Sequence[uuid.UUID], period: dt.timedelta
) -> list[bool]:
    """For each frame, whether this sweep may requeue it: not requeued within ``period``
    (``SET NX`` with that expiry, in one round trip)."""
    seconds = max(1, int(period.total_seconds()))
    pipe = client.pipeline(transaction=False)
    for frame_id in frame_ids:
        pipe.set(requeued_key(frame_id), b"1", nx=True, ex=seconds)
    return [bool(done) for done in pipe.execute()]

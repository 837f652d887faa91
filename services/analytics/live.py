"""Live class timeline as Server-Sent Events, fed by the workers' Redis notices.

Workers publish a ``LiveNotice`` on ``live_channel(lesson)`` after each frame's
events are committed. Each stream collects the buckets those notices touch and,
at most once per ``live_interval_seconds``, recomputes just those buckets in
PostgreSQL and pushes them (a burst of notices becomes one push).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import ValidationError
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from services.analytics.deps import ClassLessonDep, ResourcesDep, SessionDep
from services.analytics.errors import json_error_responses
from services.analytics.params import BucketQuery, SmoothQuery
from services.analytics.queries.timeline import timeline_buckets
from services.analytics.schemas import TimelineBucket
from services.analytics.window import Bucket, TimeWindow, bucket_start
from shared.errors import ServiceUnavailable
from shared.schemas import LiveNotice, live_channel

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/lessons", tags=["live"])
#: How long one wait for a notice lasts before the loop checks its pending buckets.
POLL_SECONDS = 0.25
#: Pause after a failed read before trying Redis again.
RETRY_SECONDS = 1.0


def _bucket_window(buckets: set[dt.datetime], origin: dt.datetime, step: int) -> TimeWindow:
    """The smallest window covering the given bucket starts."""
    return TimeWindow(min(buckets), max(buckets) + dt.timedelta(seconds=step), origin, step)


async def lesson_channel(
    access: ClassLessonDep, session: SessionDep, resources: ResourcesDep
) -> AsyncIterator[PubSub]:
    """A subscription to the lesson's live channel; 503 if Redis does not answer.

    Subscribing here, before the stream starts, lets a Redis outage answer with a
    proper error instead of a stream that never sends anything.
    """
    # The stream may last an hour: give the access check's connection back to the pool.
    await session.close()
    pubsub = resources.redis.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(live_channel(access.lesson.id))
    except (RedisError, OSError) as exc:
        await pubsub.aclose()
        raise ServiceUnavailable(
            f"live updates unavailable: Redis does not answer ({exc})"
        ) from None
    try:
        yield pubsub
    finally:
        with contextlib.suppress(RedisError, OSError):
            await pubsub.unsubscribe()
        await pubsub.aclose()


ChannelDep = Annotated[PubSub, Depends(lesson_channel)]


@router.get(
    "/{lesson}/live",
    response_class=EventSourceResponse,
    summary="Live bucket updates (Server-Sent Events)",
    responses=json_error_responses(401, 403, 404, 422, 503),
)
async def live_timeline(
    access: ClassLessonDep,
    pubsub: ChannelDep,
    resources: ResourcesDep,
    bucket: BucketQuery = Bucket.M1,
    smooth: SmoothQuery = 0,
) -> AsyncIterator[ServerSentEvent]:
    """A ``ready`` event once subscribed, then ``buckets`` events: a JSON list of the
    class timeline buckets that changed (the same fields as ``/timeline``), at most
    once a second. Browsers pass the key as ``?access_token=``."""
    lesson_id, step = access.lesson.id, bucket.seconds
    origin = access.lesson.starts_at.astimezone(dt.UTC)
    k, interval = resources.config.min_group_size, resources.config.live_interval_seconds
    yield ServerSentEvent(event="ready", data={"lesson_id": str(lesson_id), "bucket": bucket})
    pending: set[dt.datetime] = set()
    last_push = 0.0
    while True:
        try:
            message = await pubsub.get_message(timeout=POLL_SECONDS)
        except (RedisError, OSError) as exc:
            # redis-py reconnects and resubscribes on the next read; wait a little.
            log.warning("live channel read failed: %s", exc)
            await asyncio.sleep(RETRY_SECONDS)
            message = None
        if message is not None and message.get("type") == "message":
            try:
                notice = LiveNotice.model_validate_json(message["data"])
                at = notice.captured_at
                if at.tzinfo is None:  # workers send UTC; be lenient with a naive one
                    at = at.replace(tzinfo=dt.UTC)
                pending.add(bucket_start(at, origin, step))
            except ValidationError:
                log.warning("ignored a malformed live notice")
        if pending and time.monotonic() - last_push >= interval:
            window = _bucket_window(pending, origin, step)
            pending.clear()
            async with resources.sessions() as fresh:
                rows = await timeline_buckets(
                    fresh, lesson_id, window, min_group_size=k, smooth=smooth
                )
            last_push = time.monotonic()
            changed = [
                TimelineBucket.model_validate(r).model_dump(mode="json")
                for r in rows
                if r["frames"]
            ]
            yield ServerSentEvent(event="buckets", data=changed)

"""Live class timeline as Server-Sent Events, fed by the workers' Redis notices.

Workers publish a ``LiveNotice`` on ``live_channel(lesson)`` after each frame's
events are committed. Each stream collects the buckets those notices touch and,
once such a bucket has closed (at most once per ``LIVE_INTERVAL_SECONDS``),
recomputes it in PostgreSQL and pushes it. A bucket still filling is never
pushed: each push of it would differ from the last by a frame or two, and the
difference would show those frames' labels whatever the group size.

A stream is not a licence for its lifetime: every ``live_recheck_seconds`` it
authenticates its credential again and checks the lesson access, and it ends
with a ``closed`` event once the key is revoked or the access gone. It also
ends after ``live_max_seconds`` whatever happens; the browser's EventSource
then reconnects, presenting its credential again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse, ServerSentEvent
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from services.analytics.config import LIVE_INTERVAL_SECONDS
from services.analytics.deps import (
    AnalyticsResources,
    ClassLessonDep,
    CredentialDep,
    ResourcesDep,
    SessionDep,
)
from services.analytics.errors import json_error_responses
from services.analytics.params import BucketQuery, SmoothQuery
from services.analytics.queries.timeline import timeline_buckets
from services.analytics.schemas import TimelineBucket
from services.analytics.window import Bucket, TimeWindow, bucket_start, lesson_bucket
from shared import metrics
from shared.access import authenticate, require_lesson_access
from shared.errors import AuthError, Forbidden, NotFound, ServiceUnavailable
from shared.schemas import LiveNotice

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/lessons", tags=["live"])
#: How long one wait for a notice lasts before the loop checks its pending buckets.
POLL_SECONDS = 0.25
#: Reconnection delay (ms) the ``closed`` event asks of EventSource after a
#: stream reached its maximum lifetime.
RECONNECT_MS = 1000


async def credential_problem(
    resources: AnalyticsResources, credential: str, lesson_id: uuid.UUID
) -> tuple[str, str | None] | None:
    """Why the stream's caller may no longer read the lesson, as (reason, detail); None: it may.

    A database that does not answer ends the stream too: access that cannot be
    confirmed is not assumed.
    """
    try:
        async with resources.sessions() as session:
            principal = await authenticate(
                session, credential, resources.settings.token_secret.get_secret_value()
            )
            await require_lesson_access(session, principal, lesson_id)
    except (AuthError, Forbidden, NotFound) as exc:
        return "credentials", exc.message
    except (SQLAlchemyError, OSError) as exc:
        log.warning("live stream credential re-check failed: %s", type(exc).__name__)
        return "unavailable", None
    return None


def _bucket_window(buckets: set[dt.datetime], origin: dt.datetime, step: int) -> TimeWindow:
    """The smallest window covering the given bucket starts."""
    return TimeWindow(min(buckets), max(buckets) + dt.timedelta(seconds=step), origin, step)


async def lesson_channel(
    access: ClassLessonDep, session: SessionDep, resources: ResourcesDep
) -> AsyncIterator[asyncio.Queue[LiveNotice]]:
    """The lesson's live notices through the process's hub; 503 if Redis does not answer.

    Listening here, before the stream starts, lets a Redis outage answer with a
    proper error instead of a stream that never sends anything.
    """
    # The stream may last an hour: give the access check's connection back to the pool.
    await session.close()
    async with contextlib.AsyncExitStack() as stack:
        try:
            # The hub may already follow this lesson without asking Redis: ask it now.
            await resources.redis.ping()
            notices = await stack.enter_async_context(resources.live_hub.listen(access.lesson.id))
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(
                f"live updates unavailable: Redis does not answer ({exc})"
            ) from None
        # The listener lives as long as the stream: count it as an open stream.
        with metrics.OPEN_STREAMS.labels(kind="sse").track_inprogress():
            yield notices


ChannelDep = Annotated[asyncio.Queue[LiveNotice], Depends(lesson_channel)]


@router.get(
    "/{lesson}/live",
    response_class=EventSourceResponse,
    summary="Live bucket updates (Server-Sent Events)",
    responses=json_error_responses(401, 403, 404, 422, 503),
)
async def live_timeline(
    access: ClassLessonDep,
    credential: CredentialDep,
    notices: ChannelDep,
    resources: ResourcesDep,
    bucket: BucketQuery = Bucket.M1,
    smooth: SmoothQuery = 0,
) -> AsyncIterator[ServerSentEvent]:
    """A ``ready`` event once subscribed, then ``buckets`` events: a JSON list of the
    class timeline buckets that received frames (the same fields as ``/timeline``,
    suppressed ones without figures), each sent once it has closed, at most once a
    second. The bucket still open is never sent. Browsers pass a single-use ticket
    (``POST /v1/tickets``) as ``?ticket=``.

    The stream ends with a ``closed`` event, ``{"reason", "detail"}``: ``credentials``
    when a periodic re-check finds the key revoked or the access gone (a reconnect
    gets 401/403), ``max_duration`` after ``CLASSPULSE_LIVE_MAX_SECONDS`` (with
    ``retry``: EventSource reconnects), ``unavailable`` when the re-check cannot
    reach the database."""
    lesson_id, step = access.lesson.id, bucket.seconds
    origin = access.lesson.starts_at.astimezone(dt.UTC)
    settings = resources.settings
    k, interval = settings.min_group_size, LIVE_INTERVAL_SECONDS
    yield ServerSentEvent(event="ready", data={"lesson_id": str(lesson_id), "bucket": bucket})
    # Buckets touched by notices, with the frames that touched them (for the log).
    pending: dict[dt.datetime, list[str]] = {}
    last_push = 0.0
    opened = time.monotonic()
    next_check = opened + settings.live_recheck_seconds
    while True:
        now = time.monotonic()
        if now - opened >= settings.live_max_seconds:
            yield ServerSentEvent(
                event="closed",
                data={"reason": "max_duration", "detail": None},
                retry=RECONNECT_MS,
            )
            return
        if now >= next_check:
            problem = await credential_problem(resources, credential, lesson_id)
            if problem is not None:
                reason, detail = problem
                yield ServerSentEvent(event="closed", data={"reason": reason, "detail": detail})
                return
            next_check = time.monotonic() + settings.live_recheck_seconds
        try:
            # The hub reads Redis (and rides out its outages); here only waits.
            notice: LiveNotice | None = await asyncio.wait_for(notices.get(), POLL_SECONDS)
        except TimeoutError:
            notice = None
        if notice is not None:
            at = notice.captured_at
            if at.tzinfo is None:  # workers send UTC; be lenient with a naive one
                at = at.replace(tzinfo=dt.UTC)
            start = lesson_bucket(at, access.lesson, step)
            if start is None:
                log.warning("ignored a live notice of a time outside the lesson: %s", at)
            else:
                pending.setdefault(start, []).append(str(notice.frame_id))
        open_bucket = bucket_start(dt.datetime.now(dt.UTC), origin, step)
        closed = {start for start in pending if start < open_bucket}
        if closed and time.monotonic() - last_push >= interval:
            window = _bucket_window(closed, origin, step)
            frames = [frame for start in sorted(closed) for frame in pending.pop(start)]
            async with resources.sessions() as fresh:
                rows = await timeline_buckets(
                    fresh, lesson_id, window, min_group_size=k, smooth=smooth
                )
            last_push = time.monotonic()
            changed = [
                TimelineBucket.model_validate(r).model_dump(mode="json")
                for r in rows
                if r["start"] in closed
            ]
            log.debug(
                "live: %d bucket(s) of lesson %s pushed",
                len(changed),
                lesson_id,
                extra={
                    "lesson_id": str(lesson_id),
                    "buckets": [b["start"] for b in changed],
                    "frame_ids": frames,
                },
            )
            yield ServerSentEvent(event="buckets", data=changed)

"""Live notices for the APIs' open connections: one Redis subscription per process, fanned out.

Workers publish a ``LiveNotice`` on ``live_channel(lesson)`` after committing a
frame's events. Each API process (ingest for the students' WebSockets,
analytics for the teachers' SSE streams) subscribes to the channels of the
lessons its clients follow (reference-counted) and hands every notice to the
listeners of that lesson: a hundred dashboards cost one Redis connection, not
a hundred.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from shared.schemas import LiveNotice, live_channel

log = logging.getLogger(__name__)
#: Notices a slow client may have pending before older ones are dropped.
LISTENER_BUFFER = 256


class LiveHub:
    """Fans out live notices from Redis pub/sub to in-process listeners."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listeners: dict[uuid.UUID, set[asyncio.Queue[LiveNotice]]] = defaultdict(set)
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def listen(self, lesson_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[LiveNotice]]:
        """A queue receiving the lesson's notices while the context is open."""
        queue: asyncio.Queue[LiveNotice] = asyncio.Queue(LISTENER_BUFFER)
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            if not self._listeners[lesson_id]:
                await self._pubsub.subscribe(live_channel(lesson_id))
            self._listeners[lesson_id].add(queue)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(self._pubsub))
        try:
            yield queue
        finally:
            async with self._lock:
                self._listeners[lesson_id].discard(queue)
                if not self._listeners[lesson_id]:
                    del self._listeners[lesson_id]
                    with contextlib.suppress(RedisError, OSError):
                        await self._pubsub.unsubscribe(live_channel(lesson_id))

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            if not pubsub.subscribed:  # every listener left: nothing to read yet
                await asyncio.sleep(0.5)
                continue
            try:
                message = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                log.warning("live channel read failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            try:
                notice = LiveNotice.model_validate_json(message["data"])
            except ValidationError:
                log.warning("ignored a malformed live notice")
                continue
            for queue in self._listeners.get(notice.lesson_id, ()):
                if queue.full():  # a stalled client loses its oldest notice, not others'
                    queue.get_nowait()
                queue.put_nowait(notice)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()

"""Producer side of the frame queue: Celery messages carrying a ``FrameRef``.

The contract with the inference worker is the task name, the queue and the
keyword argument; ingest never imports the worker's code. Celery's producer is
synchronous, so publishing runs in a worker thread.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from celery import Celery
from redis.asyncio import Redis

from shared.errors import ServiceUnavailable
from shared.schemas import FRAME_QUEUE, FrameRef

#: Celery task the inference worker registers for one frame.
PROCESS_FRAME_TASK = "classpulse.process_frame"
#: Seconds to wait for the broker before answering 503.
BROKER_TIMEOUT = 2.0


def make_celery_producer(redis_url: str) -> Celery:
    """A Celery app used only to publish; it fails fast instead of retrying forever."""
    app = Celery("classpulse-ingest", broker=redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        # A publish that fails must surface at once: the request answers 503.
        task_publish_retry=False,
        broker_connection_retry=False,
        broker_connection_retry_on_startup=False,
        broker_connection_max_retries=0,
        broker_transport_options={
            "socket_timeout": BROKER_TIMEOUT,
            "socket_connect_timeout": BROKER_TIMEOUT,
        },
    )
    return app


class FrameQueue:
    """Publishes frame references and reports the queue's length."""

    def __init__(self, celery: Celery, redis: Redis) -> None:
        self._celery = celery
        self._redis = redis

    def _send(self, message: dict[str, Any]) -> None:
        self._celery.send_task(
            PROCESS_FRAME_TASK, kwargs={"ref": message}, queue=FRAME_QUEUE, retry=False
        )

    async def enqueue(self, ref: FrameRef) -> None:
        """Publish ``ref``; ``ServiceUnavailable`` if the broker refuses."""
        try:
            await anyio.to_thread.run_sync(self._send, ref.model_dump(mode="json"))
        except Exception as exc:  # kombu/redis raise many types; all mean "not queued"
            raise ServiceUnavailable(
                f"frame queue unavailable ({type(exc).__name__}); retry later"
            ) from None

    async def length(self) -> int:
        """Messages waiting in the frame queue (kombu keeps them in a Redis list)."""
        return int(await self._redis.llen(FRAME_QUEUE))

    def close(self) -> None:
        self._celery.close()

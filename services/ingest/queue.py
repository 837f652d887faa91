"""Producer side of the frame queue: ``process_frame(ref=…)`` tasks through kombu's producer.

The contract with the inference worker is the task name (``shared.tasks``), the
queue and the keyword argument ``ref``; ingest never imports the worker's code.
Celery builds the task message (``app.amqp.create_task_message``, its protocol 2)
and kombu publishes it with a producer from the app's pool, in a thread of a
pool as large as the producer pool: kombu is synchronous, and a thread per
publish keeps the event loop free when Redis is slow. ``send_task`` does the same plus
routing, signals and a ``repr`` of the arguments, about twice the CPU per frame
(docs/benchmarks.md, Ingest). A publish that fails on a stale connection is
tried once more on a fresh one (kombu's ``ensure``); Redis down answers
``ServiceUnavailable`` within the socket timeouts, never after seconds of retries.
The trace context goes along in the message headers (``shared.tracing``).
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import tasks, tracing
from shared.errors import ServiceUnavailable
from shared.schemas import FRAME_QUEUE, FrameRef

#: Broker connections (and publishing threads) per ingest process.
PRODUCER_POOL_SIZE = 8
#: Seconds a publish may wait for Redis to connect or answer.
BROKER_TIMEOUT = 2.0
#: Delivery mode 2: persistent (what Celery sets by default).
PERSISTENT = 2
#: One retry at once on a fresh connection (a connection Redis dropped, e.g. after a restart).
_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}
#: What a publish can raise when the broker is unreachable.
BROKER_ERRORS = (KombuError, RedisError, OSError)


def producer_app(broker_url: str) -> Celery:
    """A Celery app that only publishes: no tasks, no result backend, JSON messages."""
    return Celery(
        "classpulse-ingest",
        broker=broker_url,
        set_as_current=False,
        config_source={
            "broker_pool_limit": PRODUCER_POOL_SIZE,
            "broker_connection_timeout": BROKER_TIMEOUT,
            "broker_transport_options": {
                "socket_timeout": BROKER_TIMEOUT,
                "socket_connect_timeout": BROKER_TIMEOUT,
            },
            "task_serializer": "json",
            "accept_content": ["json"],
            "task_default_queue": FRAME_QUEUE,
        },
    )


class FrameQueue:
    """Publishes frame references and reports the queue's length."""

    def __init__(self, redis: Redis, broker: Celery) -> None:
        self._redis = redis
        self._broker = broker
        # Made here, once: Celery makes the pool on first use and sets kombu's
        # process-wide pool limit only after handing it out, so the first burst of
        # publishing threads could resize a pool another thread holds ("Can't
        # shrink pool when in use", a 500 seen with 24 frames arriving at once).
        self._producers = broker.producer_pool
        self._threads = ThreadPoolExecutor(PRODUCER_POOL_SIZE, thread_name_prefix="frame-publish")

    async def enqueue(self, ref: FrameRef) -> None:
        """Publish ``ref``; ``ServiceUnavailable`` if the broker refuses."""
        try:
            with tracing.span("enqueue frame", frame_id=ref.frame_id, kind="producer"):
                # In a copy of this context, so that the thread sees the span.
                context = contextvars.copy_context()
                await asyncio.get_running_loop().run_in_executor(
                    self._threads, context.run, self.publish, ref
                )
        except BROKER_ERRORS as exc:
            raise ServiceUnavailable(
                f"frame queue unavailable ({type(exc).__name__}); retry later"
            ) from None

    def publish(self, ref: FrameRef) -> None:
        """Publish ``ref`` now (blocking); its task id is the frame id."""
        kwargs: dict[str, Any] = {"ref": ref.model_dump(mode="json")}
        task_id = str(ref.frame_id)
        message = self._broker.amqp.create_task_message(
            task_id,
            tasks.PROCESS_FRAME,
            (),
            kwargs,
            # Given, so that Celery does not build a safe repr of the arguments per frame.
            argsrepr="()",
            kwargsrepr=f"{{'ref': <frame {task_id}>}}",
        )
        headers = dict(message.headers)
        tracing.inject(headers)
        with self._producers.acquire(block=True) as producer:
            producer.publish(
                message.body,
                exchange="",
                routing_key=FRAME_QUEUE,
                serializer="json",
                headers=headers,
                delivery_mode=PERSISTENT,
                retry=True,
                retry_policy=_RETRY_POLICY,
                **message.properties,
            )

    async def length(self) -> int:
        """Messages waiting in the frame queue (kombu keeps them in a Redis list:
        ``LLEN`` of the queue's name is Celery's documented way to read it)."""
        return int(await self._redis.llen(FRAME_QUEUE))

    def close(self) -> None:
        """Close the broker connections and the publishing threads."""
        self._threads.shutdown(wait=True)
        self._broker.close()

"""Producer side of the frame queue: Celery task messages carrying a ``FrameRef``.

The contract with the inference worker is the task name, the queue and the
keyword argument ``ref``; ingest never imports the worker's code. The message
is written the way kombu's Redis transport writes it (Celery message protocol
2, JSON body, base64 body encoding, ``LPUSH`` onto the queue's list) with one
async Redis call: Celery's own ``send_task`` is synchronous, takes about half a
millisecond of CPU per message and retries for seconds when Redis is down, too
slow for the intake path. ``tests/ingest/test_queue.py`` proves a real Celery
worker consumes these messages and that they match what ``send_task`` writes.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.errors import ServiceUnavailable
from shared.schemas import FRAME_QUEUE, FrameRef

#: Celery task the inference worker registers for one frame.
PROCESS_FRAME_TASK = "classpulse.process_frame"
#: Delivery mode 2: persistent (what Celery sets by default).
PERSISTENT = 2
_ORIGIN = f"ingest-{os.getpid()}@{socket.gethostname()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def celery_message(ref: FrameRef) -> bytes:
    """The kombu/Redis envelope of a ``process_frame(ref=…)`` task; its id is the frame id."""
    kwargs = {"ref": ref.model_dump(mode="json")}
    task_id = str(ref.frame_id)
    body = json.dumps([[], kwargs, _EMBED]).encode()
    envelope: dict[str, Any] = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": PROCESS_FRAME_TASK,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": "()",
            "kwargsrepr": repr(kwargs),
            "origin": _ORIGIN,
            "ignore_result": False,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": PERSISTENT,
            "delivery_info": {"exchange": "", "routing_key": FRAME_QUEUE},
            "priority": 0,
            "body_encoding": "base64",
            # Unique per message as kombu needs; the frame id already is.
            "delivery_tag": task_id,
        },
    }
    return json.dumps(envelope).encode()


class FrameQueue:
    """Publishes frame references and reports the queue's length."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def enqueue(self, ref: FrameRef) -> None:
        """Publish ``ref``; ``ServiceUnavailable`` if Redis refuses."""
        try:
            await self._redis.lpush(FRAME_QUEUE, celery_message(ref))
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(
                f"frame queue unavailable ({type(exc).__name__}); retry later"
            ) from None

    async def length(self) -> int:
        """Messages waiting in the frame queue (kombu keeps them in a Redis list)."""
        return int(await self._redis.llen(FRAME_QUEUE))

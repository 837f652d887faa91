"""Frames whose queue message was lost: find them and queue them again.

kombu's Redis transport takes a message off the queue's list (``BRPOP``) and
then records it in its hash of unacknowledged messages, two steps. A message
popped as Redis shuts down, or by a worker killed between the two, is in
neither place and is never delivered; its frame would stay ``queued`` with its
bytes in Redis until they expire. The sweep looks for queued frames, older than
a grace period, whose bytes are still there and that no message refers to, and
publishes them again. A message wrongly taken for lost only costs a repeat: the
worker's writes are idempotent and the frame row lock orders the deliveries.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

import redis
from kombu.transport.redis import Channel


def queue_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps ``queue`` in: one per priority step."""
    names = [queue]
    for step in Channel.priority_steps:
        if step:
            names.append(f"{queue}{Channel.sep}{step}")
    return names


def frame_id_of(envelope: object) -> str | None:
    """The ``ref.frame_id`` of a ``process_frame`` task message (kombu envelope), else None."""
    if not isinstance(envelope, dict):
        return None
    body = envelope.get("body")
    properties = envelope.get("properties")
    if not isinstance(body, str) or not isinstance(properties, dict):
        return None
    try:
        if properties.get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = json.loads(body)
        frame_id = kwargs["ref"]["frame_id"]
    except (ValueError, TypeError, KeyError):
        return None
    return frame_id if isinstance(frame_id, str) else None


def _frame_ids(raw_messages: Iterable[bytes], *, unacked: bool) -> set[str]:
    ids: set[str] = set()
    for raw in raw_messages:
        try:
            decoded = json.loads(raw)
        except ValueError:
            continue
        # The unacknowledged hash holds [message, exchange, routing key].
        if unacked and isinstance(decoded, list) and decoded:
            decoded = decoded[0]
        frame_id = frame_id_of(decoded)
        if frame_id is not None:
            ids.add(frame_id)
    return ids


def frame_ids_in_broker(client: redis.Redis, queue: str) -> set[str]:
    """Frame ids of every task message waiting in ``queue`` or delivered and not yet acknowledged.

    One MULTI/EXEC reads the lists and the hash together, so a message moving
    from one to the other between the reads cannot be missed.
    """
    lists = queue_lists(queue)
    with client.pipeline(transaction=True) as pipe:
        for name in lists:
            pipe.lrange(name, 0, -1)
        pipe.hvals(Channel.unacked_key)
        *waiting, delivered = pipe.execute()
    ids = _frame_ids(delivered, unacked=True)
    for messages in waiting:
        ids |= _frame_ids(messages, unacked=False)
    return ids

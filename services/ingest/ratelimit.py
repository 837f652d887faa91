"""Admission of a frame into Redis: rate limit, queue limit and storing the bytes.

All three happen in one Lua script, so a frame costs one Redis round trip and
the checks hold across every ingest process (they share Redis). The per-student
rate is a GCRA (generic cell rate algorithm): one timestamp per student, a
burst of up to one second's worth of frames, Redis' own clock. A refused frame
stores nothing.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from shared.errors import RateLimited, ServiceUnavailable
from shared.schemas import FRAME_QUEUE, frame_key

RATE_KEY_PREFIX = "classpulse:rate:"
#: Seconds a client should wait when Redis is down or the queue is full.
UNAVAILABLE_RETRY_AFTER = 2.0
QUEUE_FULL_RETRY_AFTER = 5.0

# KEYS: rate key, queue list, frame key.
# ARGV: emission interval (µs), burst tolerance (µs), queue limit, frame TTL (s), bytes.
# Returns {0, 0} admitted, {1, wait µs} rate limited, {2, queue length} queue full.
_ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tau then
  return {1, tat - tau - now}
end
local queued = redis.call('LLEN', KEYS[2])
if queued >= tonumber(ARGV[3]) then
  return {2, queued}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
redis.call('SET', KEYS[3], ARGV[5], 'EX', tonumber(ARGV[4]))
return {0, 0}
"""


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    rate_per_second: float
    queue_limit: int
    frame_ttl_seconds: int


class FrameAdmission:
    """Stores a frame's bytes if the student's rate and the queue length allow it."""

    def __init__(self, redis: Redis, limits: AdmissionLimits) -> None:
        self._redis = redis
        self._limits = limits
        self._script: AsyncScript = redis.register_script(_ADMIT_LUA)
        self._interval_us = round(1_000_000 / limits.rate_per_second)
        # Burst: up to one second's worth of frames (at least one) back to back.
        burst = max(1, math.floor(limits.rate_per_second))
        self._tau_us = self._interval_us * (burst - 1)

    async def admit(self, student_id: uuid.UUID, frame_id: uuid.UUID, data: bytes) -> None:
        """Store ``data`` under ``frame_key(frame_id)`` with the TTL, or raise.

        ``RateLimited`` (429) for the student's rate or a full queue,
        ``ServiceUnavailable`` (503) when Redis cannot be reached.
        """
        keys = [f"{RATE_KEY_PREFIX}{student_id}", FRAME_QUEUE, frame_key(frame_id)]
        args: list[bytes | int] = [
            self._interval_us,
            self._tau_us,
            self._limits.queue_limit,
            self._limits.frame_ttl_seconds,
            data,
        ]
        try:
            verdict, value = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(
                f"frame store unavailable ({type(exc).__name__}); retry later",
                retry_after=UNAVAILABLE_RETRY_AFTER,
            ) from None
        if verdict == 1:
            raise RateLimited(
                f"at most {self._limits.rate_per_second:g} frames per second per student",
                retry_after=int(value) / 1_000_000,
            )
        if verdict == 2:
            raise RateLimited(
                f"the processing queue is full ({int(value)} frames waiting); retry later",
                retry_after=QUEUE_FULL_RETRY_AFTER,
            )

    async def discard(self, frame_id: uuid.UUID) -> None:
        """Remove stored bytes of a frame that will not be queued (best effort: they expire)."""
        try:
            await self._redis.delete(frame_key(frame_id))
        except (RedisError, OSError):
            pass

"""Admission of a frame into Redis: rate limit, queue limit and storing the bytes.

All three happen in one Lua script, so a frame costs one Redis round trip and
the checks hold across every ingest process (they share Redis). The per-student
rate is a GCRA (generic cell rate algorithm): one timestamp per student, a
burst of up to one second's worth of frames, Redis' own clock. A refused frame
stores nothing.

A refused body (too large, not an image, a bad header, malformed fields or a
capture time outside the lesson) costs
the student's rate as a stored frame does (``charge``), so a flood of bad
bodies is throttled like a flood of good ones. Once Redis has said "wait", the
process remembers until when (Redis' timestamp only moves forward), and answers
429 at once, before reading a body or asking PostgreSQL anything.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from shared import metrics
from shared.errors import (
    ClassPulseError,
    InvalidFrame,
    InvalidValue,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from shared.schemas import FRAME_QUEUE, frame_key

log = logging.getLogger(__name__)
RATE_KEY_PREFIX = "classpulse:rate:"
#: Seconds a client should wait when Redis is down or the queue is full.
UNAVAILABLE_RETRY_AFTER = 2.0
QUEUE_FULL_RETRY_AFTER = 5.0

# The GCRA check (KEYS[1] rate key; ARGV[1] emission interval µs, ARGV[2] burst
# tolerance µs): returns {1, wait µs} when the student must wait.
_GCRA_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tau then
  return {1, tat - tau - now}
end
"""
# Spends one emission interval of the student's rate.
_GCRA_TAKE = """
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
"""
# KEYS: rate key, queue list, frame key.
# ARGV: emission interval (µs), burst tolerance (µs), queue limit, frame TTL (s), bytes.
# Returns {0, 0} admitted, {1, wait µs} rate limited, {2, queue length} queue full.
_ADMIT_LUA = (
    _GCRA_CHECK
    + """
local queued = redis.call('LLEN', KEYS[2])
if queued >= tonumber(ARGV[3]) then
  return {2, queued}
end
"""
    + _GCRA_TAKE
    + """
redis.call('SET', KEYS[3], ARGV[5], 'EX', tonumber(ARGV[4]))
return {0, 0}
"""
)
# KEYS: rate key. ARGV: emission interval (µs), burst tolerance (µs).
# Returns {0, 0} charged, {1, wait µs} rate limited.
_CHARGE_LUA = _GCRA_CHECK + _GCRA_TAKE + "return {0, 0}\n"
#: Students remembered as waiting, per process; beyond this, expired entries are dropped.
_BLOCKED_MEMORY = 10_000
#: Refusals of a frame's body: each costs the student's rate as a stored frame does.
BODY_REFUSALS: tuple[type[ClassPulseError], ...] = (
    InvalidFrame,
    InvalidValue,
    PayloadTooLarge,
    UnsupportedMediaType,
)


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
        self._charge_script: AsyncScript = redis.register_script(_CHARGE_LUA)
        self._interval_us = round(1_000_000 / limits.rate_per_second)
        # Burst: up to one second's worth of frames (at least one) back to back.
        burst = max(1, math.floor(limits.rate_per_second))
        self._tau_us = self._interval_us * (burst - 1)
        #: Student -> monotonic time before which Redis would refuse it anyway.
        self._blocked: dict[uuid.UUID, float] = {}

    def _rate_limited(self, student_id: uuid.UUID, wait_us: int) -> RateLimited:
        """The 429 for a student Redis told to wait, remembered until the wait is over."""
        if len(self._blocked) >= _BLOCKED_MEMORY:
            now = time.monotonic()
            self._blocked = {s: t for s, t in self._blocked.items() if t > now}
            while len(self._blocked) >= _BLOCKED_MEMORY:
                self._blocked.pop(next(iter(self._blocked)))
        self._blocked[student_id] = time.monotonic() + wait_us / 1_000_000
        return RateLimited(
            f"at most {self._limits.rate_per_second:g} frames per second per student",
            retry_after=wait_us / 1_000_000,
        )

    def check_waiting(self, student_id: uuid.UUID) -> None:
        """``RateLimited`` while the student's last refusal says wait: no Redis, no database."""
        until = self._blocked.get(student_id)
        if until is None:
            return
        wait = until - time.monotonic()
        if wait <= 0:
            del self._blocked[student_id]
            return
        raise RateLimited(
            f"at most {self._limits.rate_per_second:g} frames per second per student",
            retry_after=wait,
        )

    async def charge(self, student_id: uuid.UUID) -> None:
        """Spend the student's rate on a refused body; ``RateLimited`` when it is used up.

        Best effort: with Redis down the refusal stands as it is (a 503 would
        hide why the body was refused).
        """
        keys = [f"{RATE_KEY_PREFIX}{student_id}"]
        try:
            verdict, value = await self._charge_script(
                keys=keys, args=[self._interval_us, self._tau_us]
            )
        except (RedisError, OSError) as exc:
            log.warning("could not charge a refused frame to the rate: %s", type(exc).__name__)
            return
        if verdict == 1:
            raise self._rate_limited(student_id, int(value))

    @contextlib.asynccontextmanager
    async def counting_refusals(
        self, student_id: uuid.UUID, also: tuple[type[Exception], ...] = ()
    ) -> AsyncIterator[None]:
        """Answer 429 at once to a waiting student; charge a body refused inside the block.

        ``also``: further exceptions that refuse the body (request validation).
        Every frame refusal passes here (HTTP, batch items, WebSocket): it is counted
        by code for /metrics.
        """
        try:
            self.check_waiting(student_id)
            yield
        except ClassPulseError as exc:
            metrics.FRAMES_REFUSED.labels(code=exc.code).inc()
            if isinstance(exc, BODY_REFUSALS):
                await self.charge(student_id)
            raise
        except also:
            metrics.FRAMES_REFUSED.labels(code="validation_error").inc()
            await self.charge(student_id)
            raise

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
            raise self._rate_limited(student_id, int(value))
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

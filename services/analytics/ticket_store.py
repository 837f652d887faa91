"""Where tickets live: Redis (in memory only), under a digest of the ticket, for a minute.

See ``services.analytics.tickets`` for what tickets are for.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid

from redis.asyncio import Redis
from starlette.requests import Request

from shared.errors import AuthError

#: Seconds a ticket can be used: enough to open the link it was made for.
TICKET_SECONDS = 60
#: The routes a ticket opens, by the last part of their path.
PURPOSES = ("live", "export")
_KEY_PREFIX = "classpulse:ticket:"


def _redis_key(ticket: str) -> str:
    # Only a digest is a Redis key: a KEYS or MONITOR never shows a usable ticket.
    return _KEY_PREFIX + hashlib.sha256(ticket.encode()).hexdigest()


async def issue(redis: Redis, credential: str, purpose: str, lesson: uuid.UUID) -> str:
    """A new ticket standing for ``credential`` on ``purpose`` of ``lesson``."""
    ticket = secrets.token_urlsafe(32)
    value = {"credential": credential, "purpose": purpose, "lesson": str(lesson)}
    await redis.set(_redis_key(ticket), json.dumps(value), ex=TICKET_SECONDS)
    return ticket


async def redeem(redis: Redis, ticket: str, purpose: str, lesson: str) -> str:
    """The credential behind ``ticket`` if it was made for ``purpose`` on ``lesson``;
    the ticket is used up either way (GETDEL: two requests cannot both use it)."""
    raw = await redis.getdel(_redis_key(ticket))
    if raw is None:
        raise AuthError("unknown, used or expired ticket (get a new one: POST /v1/tickets)")
    stored = json.loads(raw)
    if stored["purpose"] != purpose or stored["lesson"] != lesson:
        raise AuthError(f"this ticket is not for the {purpose} link of lesson {lesson}")
    return str(stored["credential"])


def purpose_of(request: Request) -> str | None:
    """The purpose a ticket needs on this route (by its path), None where none is accepted."""
    last = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    return last if last in PURPOSES else None

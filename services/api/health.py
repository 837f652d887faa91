"""``/healthz`` (the process is up) and ``/readyz`` (its PostgreSQL and Redis answer)."""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

router = APIRouter(tags=["health"])


class Stores(Protocol):
    """What an API's ``app.state.resources`` offers to the readiness check."""

    engine: AsyncEngine
    redis: Redis


@router.get("/healthz", summary="The process is up (no stores checked)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="PostgreSQL and Redis answer")
async def readyz(request: Request) -> JSONResponse:
    stores: Stores = request.app.state.resources
    checks: dict[str, str] = {}
    try:
        async with stores.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["postgres"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        checks["postgres"] = f"unavailable: {type(exc).__name__}"
    try:
        await stores.redis.ping()
        checks["redis"] = "ok"
    except (RedisError, OSError) as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )

"""Engine and session factories: asyncpg for the APIs, psycopg for workers and tools.

Settings give one driver-less URL (``postgresql://…``); each side picks its
driver here. Engines are created at start-up (lifespan, worker init), never
at import.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker


def with_driver(url: str, driver: str) -> str:
    """``url`` with its PostgreSQL driver replaced (``asyncpg`` or ``psycopg``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"ClassPulse needs PostgreSQL, got a {parsed.get_backend_name()} URL")
    return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


def make_async_engine(url: str, **kwargs: object) -> AsyncEngine:
    return create_async_engine(with_driver(url, "asyncpg"), pool_pre_ping=True, **kwargs)


def make_sync_engine(url: str, **kwargs: object) -> Engine:
    return create_engine(with_driver(url, "psycopg"), pool_pre_ping=True, **kwargs)


def async_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def sync_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)

"""The PostgreSQL and Redis of ``classpulse up``: configured ones or embedded ones.

Connection problems become errors that name the variable to fix; URLs are
printed without their passwords.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from classpulse.embedded import EmbeddedPostgres, EmbeddedRedis
from shared.errors import ConfigError
from shared.settings import StoreSettings, load


@dataclass
class Stores:
    """Driver-less URLs of the servers in use, and notes on the embedded ones."""

    database_url: str
    redis_url: str
    notes: list[str] = field(default_factory=list)
    #: The embedded Redis when one was started (``up`` restarts it should it die).
    redis: EmbeddedRedis | None = None


def start_stores(
    configured: StoreSettings,
    data_dir: Path,
    postgres_port: int,
    redis_port: int,
    stack: contextlib.ExitStack,
) -> Stores:
    """The servers ``configured``, or embedded ones for what is not configured.

    Embedded servers are stopped when ``stack`` closes.
    """
    notes = []
    database_url = configured.database_url
    if database_url is None:
        postgres = EmbeddedPostgres(data_dir / "postgres", postgres_port)
        database_url = postgres.start()
        stack.callback(postgres.stop)
        notes.append(f"embedded PostgreSQL, data in {postgres.root}")
    redis_url = configured.redis_url
    redis = None
    if redis_url is None:
        redis = EmbeddedRedis(data_dir / "redis", redis_port)
        redis_url = redis.start()
        stack.callback(redis.stop)
        notes.append(f"embedded Redis, in memory only: nothing on disk, log in {redis.root}")
    return Stores(database_url, redis_url, notes, redis)


def database_url() -> str:
    """The database of commands run beside ``up``: CLASSPULSE_DATABASE_URL, else the
    embedded PostgreSQL running in the data directory (CLASSPULSE_DATA_DIR); read once
    per command."""
    from classpulse.embedded import running_postgres_url

    configured = load(StoreSettings)
    if configured.database_url is not None:
        return configured.database_url
    root = configured.data_dir.resolve() / "postgres"
    found = running_postgres_url(root)
    if found is None:
        raise ConfigError(
            "CLASSPULSE_DATABASE_URL is not set and no embedded PostgreSQL is running in "
            f"{root} (start one with `classpulse up`, set CLASSPULSE_DATA_DIR to the data "
            "directory of the running `up`, or CLASSPULSE_DATABASE_URL to your server)"
        )
    return found


def redact(url: str) -> str:
    """``url`` without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def migrate_or_explain(database_url: str, revision: str = "head") -> None:
    """Migrate; an unreachable database is a clear error, not a traceback."""
    from sqlalchemy.exc import OperationalError

    from shared.db.migrate import upgrade

    try:
        upgrade(database_url, revision)
    except OperationalError as exc:
        raise ConfigError(
            f"cannot reach PostgreSQL at {redact(database_url)} (CLASSPULSE_DATABASE_URL): "
            f"{str(exc.orig).strip()}"
        ) from None


def check_redis(redis_url: str) -> None:
    """Fail clearly before starting services when Redis does not answer."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ConfigError(
            f"cannot reach Redis at {redact(redis_url)} (CLASSPULSE_REDIS_URL): {exc}"
        ) from None
    finally:
        client.close()

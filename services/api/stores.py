"""The settings every API process needs, checked once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import ConfigError
from shared.settings import auth_settings, store_settings


@dataclass(frozen=True, slots=True)
class RequiredStores:
    database_url: str
    redis_url: str
    token_secret: str


def required_stores() -> RequiredStores:
    """PostgreSQL and Redis URLs and the token secret; ``ConfigError`` names what is missing."""
    store, auth = store_settings(), auth_settings()
    if not store.database_url:
        raise ConfigError("CLASSPULSE_DATABASE_URL is not set")
    if not store.redis_url:
        raise ConfigError("CLASSPULSE_REDIS_URL is not set")
    if auth.token_secret is None:
        raise ConfigError("CLASSPULSE_TOKEN_SECRET is not set")
    return RequiredStores(store.database_url, store.redis_url, auth.token_secret.get_secret_value())

"""What the analytics process needs from the settings, gathered once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import ConfigError
from shared.settings import auth_settings, privacy_settings, store_settings


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    database_url: str
    redis_url: str
    token_secret: str
    #: Class-level buckets with fewer students than this show no shares.
    min_group_size: int = 5
    #: Shortest time between two live pushes to one client (seconds).
    live_interval_seconds: float = 1.0

    @classmethod
    def from_settings(cls) -> AnalyticsConfig:
        """Read ``CLASSPULSE_*`` settings; ``ConfigError`` names what is missing."""
        store, auth, privacy = store_settings(), auth_settings(), privacy_settings()
        if not store.database_url:
            raise ConfigError("CLASSPULSE_DATABASE_URL is not set")
        if not store.redis_url:
            raise ConfigError("CLASSPULSE_REDIS_URL is not set")
        if auth.token_secret is None:
            raise ConfigError("CLASSPULSE_TOKEN_SECRET is not set")
        return cls(
            database_url=store.database_url,
            redis_url=store.redis_url,
            token_secret=auth.token_secret.get_secret_value(),
            min_group_size=privacy.min_group_size,
        )

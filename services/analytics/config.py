"""What the analytics process needs from the settings, gathered once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from services.api.stores import required_stores
from shared.settings import live_settings, privacy_settings


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    database_url: str
    redis_url: str
    token_secret: str
    #: Class-level buckets with fewer students than this show no shares.
    min_group_size: int = 5
    #: Shortest time between two live pushes to one client (seconds).
    live_interval_seconds: float = 1.0
    #: An open live stream checks its credential again this often (seconds).
    live_recheck_seconds: float = 15.0
    #: A live stream ends after this long; the browser reconnects (seconds).
    live_max_seconds: float = 3600.0

    @classmethod
    def from_settings(cls) -> AnalyticsConfig:
        """Read ``CLASSPULSE_*`` settings; ``ConfigError`` names what is missing."""
        privacy = privacy_settings()
        live = live_settings()
        stores = required_stores()
        return cls(
            database_url=stores.database_url,
            redis_url=stores.redis_url,
            token_secret=stores.token_secret,
            min_group_size=privacy.min_group_size,
            live_recheck_seconds=live.live_recheck_seconds,
            live_max_seconds=live.live_max_seconds,
        )

"""What the ingest process needs from the settings, gathered once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import ConfigError
from shared.settings import auth_settings, frame_settings, store_settings


@dataclass(frozen=True, slots=True)
class IngestConfig:
    database_url: str
    redis_url: str
    token_secret: str
    token_ttl_seconds: int = 3 * 3600
    max_frame_bytes: int = 2_000_000
    max_frame_pixels: int = 4096 * 4096
    frame_ttl_seconds: int = 600
    queue_limit: int = 10_000
    student_rate_per_second: float = 2.0
    #: Frames one batch request may carry.
    max_batch_frames: int = 16
    #: Frame interval the classroom page is told to use (seconds).
    suggested_interval_seconds: float = 5.0

    @classmethod
    def from_settings(cls) -> IngestConfig:
        """Read ``CLASSPULSE_*`` settings; ``ConfigError`` names what is missing."""
        store, frames, auth = store_settings(), frame_settings(), auth_settings()
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
            token_ttl_seconds=auth.token_ttl_seconds,
            max_frame_bytes=frames.max_frame_bytes,
            max_frame_pixels=frames.max_frame_pixels,
            frame_ttl_seconds=frames.frame_ttl_seconds,
            queue_limit=frames.queue_limit,
            student_rate_per_second=frames.student_rate_per_second,
            suggested_interval_seconds=max(5.0, 1.0 / frames.student_rate_per_second),
        )

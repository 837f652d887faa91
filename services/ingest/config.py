"""What the ingest process needs from the settings, gathered once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from services.api.stores import required_stores
from shared.client_detection import PageDetector, page_detector
from shared.settings import (
    DEFAULT_DETECTOR,
    DEFAULT_MIN_FACE_FRACTION,
    auth_settings,
    frame_settings,
    lti_settings,
    secrets_settings,
    worker_settings,
)


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
    #: Seconds a capture time may lie outside its lesson or ahead of the server's clock.
    clock_skew_seconds: int = 300
    #: Frames one batch request may carry.
    max_batch_frames: int = 16
    #: Frame interval the classroom page is told to use (seconds).
    suggested_interval_seconds: float = 5.0
    #: The classroom page sends face crops instead of frames (``CLASSPULSE_CLIENT_DETECTION``).
    client_detection: bool = True
    #: The workers' detector and smallest face, which the page's detection follows.
    detector: str = DEFAULT_DETECTOR
    min_face_fraction: float = DEFAULT_MIN_FACE_FRACTION
    #: Encrypts the LRS passwords set through ``PUT /v1/lrs`` (``CLASSPULSE_SECRETS_KEY``).
    secrets_key: SecretStr | None = None
    #: The LTI tool's public URLs and new lessons' length (``CLASSPULSE_LTI_*``).
    lti_tool_url: str | None = None
    lti_dashboard_url: str | None = None
    lti_lesson_minutes: int = 60

    @property
    def page_detector(self) -> PageDetector:
        return page_detector(self.detector)

    @classmethod
    def from_settings(cls) -> IngestConfig:
        """Read ``CLASSPULSE_*`` settings; ``ConfigError`` names what is missing."""
        frames, auth, worker = frame_settings(), auth_settings(), worker_settings()
        lti = lti_settings()
        stores = required_stores()
        return cls(
            database_url=stores.database_url,
            redis_url=stores.redis_url,
            token_secret=stores.token_secret,
            token_ttl_seconds=auth.token_ttl_seconds,
            max_frame_bytes=frames.max_frame_bytes,
            max_frame_pixels=frames.max_frame_pixels,
            frame_ttl_seconds=frames.frame_ttl_seconds,
            queue_limit=frames.queue_limit,
            student_rate_per_second=frames.student_rate_per_second,
            clock_skew_seconds=frames.clock_skew_seconds,
            suggested_interval_seconds=max(5.0, 1.0 / frames.student_rate_per_second),
            client_detection=frames.client_detection,
            detector=worker.detector,
            min_face_fraction=worker.min_face_fraction,
            secrets_key=secrets_settings().secrets_key,
            lti_tool_url=lti.lti_tool_url,
            lti_dashboard_url=lti.lti_dashboard_url,
            lti_lesson_minutes=lti.lti_lesson_minutes,
        )

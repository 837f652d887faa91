"""The ingest process's settings: one object, read at start-up and passed on."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.api.stores import ApiStoreSettings
from shared.client_detection import PageDetector, page_detector
from shared.settings import (
    ApiSettings,
    DetectionSettings,
    FrameSettings,
    LogSettings,
    LtiSettings,
    SecretsSettings,
)

#: The classroom page sends a frame this often (seconds) unless the rate limit
#: (``CLASSPULSE_STUDENT_RATE_PER_SECOND``) asks for fewer.
FRAME_INTERVAL_SECONDS = 5.0


class IngestSettings(
    ApiStoreSettings,
    FrameSettings,
    SecretsSettings,
    LtiSettings,
    DetectionSettings,
    ApiSettings,
    LogSettings,
):
    """All the ingest API reads from ``CLASSPULSE_*``; built with ``shared.settings.load``.

    The pieces declare each variable and its default; this class only gathers
    them. The detection fields are the workers', which the page's detection
    follows; ``analytics_port`` places the dashboard of LTI instructor launches.
    Tests change fields with ``model_copy(update=…)``.
    """

    model_config = SettingsConfigDict(frozen=True)

    @property
    def suggested_interval_seconds(self) -> float:
        """Frame interval the classroom page is told to use, within the rate limit."""
        return max(FRAME_INTERVAL_SECONDS, 1.0 / self.student_rate_per_second)

    @property
    def page_detector(self) -> PageDetector:
        return page_detector(self.detector)

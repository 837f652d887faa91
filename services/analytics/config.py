"""The analytics process's settings: one object, read at start-up and passed on."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.api.stores import ApiStoreSettings
from shared.settings import LiveSettings, LogSettings, PrivacySettings

#: Shortest time between two live pushes to one client (seconds): the dashboard
#: redraws no faster than this, whatever the bucket size.
LIVE_INTERVAL_SECONDS = 1.0


class AnalyticsSettings(ApiStoreSettings, PrivacySettings, LiveSettings, LogSettings):
    """All the analytics API reads from ``CLASSPULSE_*``; built with ``shared.settings.load``.

    The pieces declare each variable and its default; this class only gathers
    them (``min_group_size`` from the privacy piece, the live streams' bounds
    from the live piece). Tests change fields with ``model_copy(update=…)``.
    """

    model_config = SettingsConfigDict(frozen=True)

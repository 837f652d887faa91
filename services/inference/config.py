"""The inference worker's settings: one object, read at start-up and passed on.

Any process of the Celery app (a worker, beat, ``up`` sending a task) configures
Celery from ``CelerySettings``: the broker and the worker's knobs, so beat needs
Redis only. A worker builds its ``WorkerProcessSettings`` once at start-up
(``celery_app``) and hands it to its resources, which every task reads.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import (
    FrameSettings,
    LogSettings,
    PrivacySettings,
    SecretsSettings,
    StoreSettings,
    WorkerSettings,
)


class CelerySettings(StoreSettings, WorkerSettings, LogSettings):
    """What any process of the Celery app reads: the broker (required), the worker's
    knobs and the log format."""

    redis_url: str = Field(min_length=1)


class WorkerProcessSettings(CelerySettings, FrameSettings, PrivacySettings, SecretsSettings):
    """All an inference worker reads from ``CLASSPULSE_*``; built with ``shared.settings.load``.

    The pieces declare each variable and its default; this class only gathers
    them, with both store URLs required. Tests build it by keyword and change
    fields with ``model_copy(update=…)``.
    """

    model_config = SettingsConfigDict(frozen=True)
    database_url: str = Field(min_length=1)

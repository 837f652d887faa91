"""Settings: bad environment values stop start-up with an error naming the variable."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from services.analytics.config import AnalyticsSettings
from services.inference.config import CelerySettings, WorkerProcessSettings
from services.ingest.config import IngestSettings
from shared import settings
from shared.errors import ConfigError


@pytest.mark.parametrize(
    ("variable", "value", "piece"),
    [
        ("CLASSPULSE_MIN_GROUP_SIZE", "abc", settings.PrivacySettings),
        ("CLASSPULSE_MIN_GROUP_SIZE", "0", settings.PrivacySettings),
        ("CLASSPULSE_RETENTION_DAYS", "-3", settings.PrivacySettings),
        ("CLASSPULSE_INFERENCE_ENABLED", "perhaps", settings.PrivacySettings),
        ("CLASSPULSE_MAX_FRAME_BYTES", "-1", settings.FrameSettings),
        ("CLASSPULSE_FRAME_TTL_SECONDS", "ten", settings.FrameSettings),
        ("CLASSPULSE_STUDENT_RATE_PER_SECOND", "0", settings.FrameSettings),
        ("CLASSPULSE_WORKER_CONCURRENCY", "0", settings.WorkerSettings),
        ("CLASSPULSE_MIN_FACE_FRACTION", "0", settings.WorkerSettings),
        ("CLASSPULSE_MIN_FACE_FRACTION", "1.5", settings.WorkerSettings),
        ("CLASSPULSE_INGEST_PORT", "70000", settings.ApiSettings),
        ("CLASSPULSE_TOKEN_TTL_SECONDS", "1.5h", settings.AuthSettings),
    ],
)
def test_bad_value_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    piece: type[BaseSettings],
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable) as info:
        settings.load(piece)
    assert info.value.code == "config_error"


def test_error_names_every_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSPULSE_MAX_FRAME_BYTES", "-1")
    monkeypatch.setenv("CLASSPULSE_QUEUE_LIMIT", "many")
    with pytest.raises(ConfigError) as info:
        settings.load(settings.FrameSettings)
    assert "CLASSPULSE_MAX_FRAME_BYTES" in str(info.value)
    assert "CLASSPULSE_QUEUE_LIMIT" in str(info.value)


def test_good_values_are_read_and_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSPULSE_MIN_GROUP_SIZE", "3")
    monkeypatch.setenv("CLASSPULSE_INFERENCE_ENABLED", "false")
    monkeypatch.setenv("CLASSPULSE_MAX_FRAME_BYTES", "500000")
    privacy = settings.load(settings.PrivacySettings)
    assert privacy.min_group_size == 3
    assert privacy.inference_enabled is False
    assert settings.load(settings.FrameSettings).max_frame_bytes == 500_000


def test_an_object_keeps_what_it_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSPULSE_RETENTION_DAYS", "7")
    privacy = settings.load(settings.PrivacySettings)
    monkeypatch.setenv("CLASSPULSE_RETENTION_DAYS", "-1")
    assert privacy.retention_days == 7  # read once, when built
    with pytest.raises(ConfigError, match="CLASSPULSE_RETENTION_DAYS"):
        settings.load(settings.PrivacySettings)


#: What an API process cannot start without.
API_STORES = ("CLASSPULSE_DATABASE_URL", "CLASSPULSE_REDIS_URL", "CLASSPULSE_TOKEN_SECRET")


def _set_api_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in zip(
        API_STORES, ("postgresql://db/x", "redis://r/0", "s" * 32), strict=True
    ):
        monkeypatch.setenv(variable, value)


def test_ingest_reads_one_object_from_the_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_api_stores(monkeypatch)
    monkeypatch.setenv("CLASSPULSE_MAX_FRAME_BYTES", "500000")
    monkeypatch.setenv("CLASSPULSE_DETECTOR", "retinaface")
    monkeypatch.setenv("CLASSPULSE_ANALYTICS_PORT", "9001")
    ingest = settings.load(IngestSettings)
    assert (ingest.database_url, ingest.token_secret.get_secret_value()) == (
        "postgresql://db/x",
        "s" * 32,
    )
    assert (ingest.max_frame_bytes, ingest.detector, ingest.analytics_port) == (
        500_000,
        "retinaface",
        9001,
    )
    # Defaults are the pieces' own: nothing repeats them.
    assert (
        ingest.token_ttl_seconds == settings.AuthSettings.model_fields["token_ttl_seconds"].default
    )
    assert ingest.suggested_interval_seconds == 5.0
    with pytest.raises(ValueError, match="frozen"):
        ingest.queue_limit = 1  # type: ignore[misc]


def test_an_api_names_every_store_setting_it_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in API_STORES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CLASSPULSE_QUEUE_LIMIT", "many")
    with pytest.raises(ConfigError) as info:
        settings.load(IngestSettings)
    for variable in API_STORES:
        assert f"{variable} is not set" in str(info.value)
    assert "invalid setting: CLASSPULSE_QUEUE_LIMIT" in str(info.value)


def test_analytics_reads_one_object_from_the_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_api_stores(monkeypatch)
    monkeypatch.setenv("CLASSPULSE_MIN_GROUP_SIZE", "3")
    monkeypatch.setenv("CLASSPULSE_LIVE_MAX_SECONDS", "60")
    analytics = settings.load(AnalyticsSettings)
    assert (analytics.redis_url, analytics.min_group_size, analytics.live_max_seconds) == (
        "redis://r/0",
        3,
        60.0,
    )
    recheck = settings.LiveSettings.model_fields["live_recheck_seconds"].default
    assert analytics.live_recheck_seconds == recheck
    for variable in API_STORES:
        monkeypatch.delenv(variable)
    with pytest.raises(ConfigError, match="CLASSPULSE_TOKEN_SECRET is not set"):
        settings.load(AnalyticsSettings)


def test_a_worker_reads_one_object_and_beat_needs_redis_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in API_STORES:
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigError) as info:
        settings.load(WorkerProcessSettings)
    assert "CLASSPULSE_DATABASE_URL is not set" in str(info.value)
    assert "CLASSPULSE_REDIS_URL is not set" in str(info.value)
    monkeypatch.setenv("CLASSPULSE_REDIS_URL", "redis://r/0")
    assert settings.load(CelerySettings).redis_url == "redis://r/0"
    monkeypatch.setenv("CLASSPULSE_DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("CLASSPULSE_MAX_FRAME_PIXELS", "1000")
    monkeypatch.setenv("CLASSPULSE_RETENTION_DAYS", "7")
    worker = settings.load(WorkerProcessSettings)
    assert (worker.max_frame_pixels, worker.retention_days, worker.detector) == (
        1000,
        7,
        settings.DEFAULT_DETECTOR,
    )
    assert worker.requeue_after_seconds == (
        settings.WorkerSettings.model_fields["requeue_after_seconds"].default
    )

"""CLASSPULSE_DETECTOR chooses the workers' face detector; a wrong name stops start-up."""

from __future__ import annotations

import pytest

from services.inference.config import WorkerProcessSettings
from services.inference.resources import build_pipeline
from shared import settings
from shared.errors import ConfigError
from shared.vision.blazeface import BlazeFace
from shared.vision.detect import DETECTORS, HaarDetector
from shared.vision.retinaface import RetinaFace


def test_the_default_is_the_measured_choice() -> None:
    assert (
        settings.load(settings.WorkerSettings).detector
        == settings.DEFAULT_DETECTOR
        == "blazeface-full"
    )
    assert settings.DEFAULT_DETECTOR in DETECTORS


@pytest.mark.parametrize(
    ("name", "kind"),
    [("haar", HaarDetector), ("retinaface", RetinaFace), ("blazeface-short", BlazeFace)],
)
def test_the_setting_picks_the_detector(
    monkeypatch: pytest.MonkeyPatch, name: str, kind: type
) -> None:
    monkeypatch.setenv("CLASSPULSE_DATABASE_URL", "postgresql://unused/x")
    monkeypatch.setenv("CLASSPULSE_REDIS_URL", "redis://unused/0")
    monkeypatch.setenv("CLASSPULSE_DETECTOR", name)
    monkeypatch.setenv("CLASSPULSE_INFERENCE_ENABLED", "false")
    assert isinstance(build_pipeline(settings.load(WorkerProcessSettings)).detector, kind)


def test_an_unknown_detector_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSPULSE_DETECTOR", "yolo")
    with pytest.raises(ConfigError, match="CLASSPULSE_DETECTOR"):
        settings.load(settings.WorkerSettings)

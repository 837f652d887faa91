"""What a worker process holds: the pipeline (model), a database engine, a Redis client.

Created once per process at worker start-up (``init_resources``), never at
import. Tests build their own ``Resources`` on the session's stores.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import redis
from sqlalchemy import Engine

from shared import tracing
from shared.db.engine import make_sync_engine
from shared.errors import ConfigError
from shared.settings import (
    DEFAULT_MIN_FACE_FRACTION,
    frame_settings,
    privacy_settings,
    store_settings,
    worker_settings,
)
from shared.vision.detect import Detection, FaceDetector, make_detector
from shared.vision.pipeline import Classifier, Pipeline
from shared.vision.preprocess import GrayImage


@dataclass
class Resources:
    engine: Engine
    redis: redis.Redis
    pipeline: Pipeline
    max_pixels: int
    frame_ttl_seconds: int
    retention_days: int
    #: Smallest face wanted (fraction of the shorter side): large JPEGs are
    #: decoded at reduced size down to where such a face keeps 48 px.
    min_face_fraction: float = DEFAULT_MIN_FACE_FRACTION
    #: How far capture times may lie outside their lesson (ingest's limit too).
    clock_skew_seconds: int = 300

    @property
    def clock_skew(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.clock_skew_seconds)

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()


class TracedDetector:
    """A detector whose every call is a ``detect`` span (the vision code knows no tracing)."""

    def __init__(self, detector: FaceDetector) -> None:
        self.detector = detector

    def detect(self, image: npt.NDArray[np.uint8]) -> list[Detection]:
        with tracing.span("detect"):
            return self.detector.detect(image)


class TracedClassifier:
    """A classifier whose every call is a ``classify`` span."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier

    @property
    def version(self) -> str:
        return self.classifier.version

    def predict(self, faces: list[GrayImage]) -> npt.NDArray[np.float32]:
        with tracing.span("classify"):
            return self.classifier.predict(faces)


def build_pipeline() -> Pipeline:
    """The pipeline of the settings: no model is loaded when inference is off. With
    tracing on (``shared.tracing``), detector and classifier calls are spans."""
    worker = worker_settings()
    detector = make_detector(
        worker.detector,
        min_face_fraction=worker.min_face_fraction,
        threads=worker.inference_threads,
    )
    if tracing.enabled():
        detector = TracedDetector(detector)
    if not privacy_settings().inference_enabled:
        return Pipeline(None, detector, inference_enabled=False)
    from shared.vision.classify import ExpressionClassifier

    classifier = ExpressionClassifier(worker.model_dir, threads=worker.inference_threads)
    uncertain_below = classifier.metadata.uncertain_below
    traced: Classifier = TracedClassifier(classifier) if tracing.enabled() else classifier
    return Pipeline(traced, detector, uncertain_below=uncertain_below)


def build_resources() -> Resources:
    """Stores and pipeline from the settings (environment)."""
    store = store_settings()
    if not store.database_url:
        raise ConfigError("CLASSPULSE_DATABASE_URL is not set; the worker needs PostgreSQL")
    if not store.redis_url:
        raise ConfigError("CLASSPULSE_REDIS_URL is not set; the worker needs Redis")
    frames, privacy = frame_settings(), privacy_settings()
    return Resources(
        # A worker process runs one task at a time: a small pool is enough.
        engine=make_sync_engine(store.database_url, pool_size=2, max_overflow=2),
        redis=redis.Redis.from_url(store.redis_url, socket_timeout=5, socket_connect_timeout=5),
        pipeline=build_pipeline(),
        max_pixels=frames.max_frame_pixels,
        frame_ttl_seconds=frames.frame_ttl_seconds,
        retention_days=privacy.retention_days,
        min_face_fraction=worker_settings().min_face_fraction,
        clock_skew_seconds=frames.clock_skew_seconds,
    )


_resources: Resources | None = None
_owner_pid: int | None = None


def init_resources() -> Resources:
    """Create this process's resources (again after a fork: connections are not shared)."""
    global _resources, _owner_pid
    _resources = build_resources()
    _owner_pid = os.getpid()
    return _resources


def get_resources() -> Resources:
    """This process's resources, created on first use if start-up did not."""
    if _resources is None or _owner_pid != os.getpid():
        return init_resources()
    return _resources

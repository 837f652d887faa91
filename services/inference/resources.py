"""What a worker process holds: its settings, the pipeline (model), a database engine,
a Redis client.

Created once per process at worker start-up (``init_resources``, given the
settings the worker read), never at import. Tests build their own ``WorkerResources``
on the session's stores.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import redis
from sqlalchemy import Engine

from services.inference.config import WorkerProcessSettings
from shared import tracing
from shared.db.engine import make_sync_engine
from shared.settings import load
from shared.vision.detect import Detection, FaceDetector, make_detector
from shared.vision.pipeline import Classifier, Pipeline
from shared.vision.preprocess import GrayImage


@dataclass
class WorkerResources:
    settings: WorkerProcessSettings
    engine: Engine
    redis: redis.Redis
    pipeline: Pipeline

    @property
    def clock_skew(self) -> dt.timedelta:
        """How far capture times may lie outside their lesson (ingest's limit too)."""
        return dt.timedelta(seconds=self.settings.clock_skew_seconds)

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


def build_pipeline(settings: WorkerProcessSettings) -> Pipeline:
    """The pipeline of the settings: no model is loaded when inference is off. With
    tracing on (``shared.tracing``), detector and classifier calls are spans."""
    detector = make_detector(
        settings.detector,
        min_face_fraction=settings.min_face_fraction,
        threads=settings.inference_threads,
    )
    if tracing.enabled():
        detector = TracedDetector(detector)
    if not settings.inference_enabled:
        return Pipeline(None, detector, inference_enabled=False)
    from shared.vision.classify import ExpressionClassifier

    classifier = ExpressionClassifier(settings.model_dir, threads=settings.inference_threads)
    uncertain_below = classifier.metadata.uncertain_below
    traced: Classifier = TracedClassifier(classifier) if tracing.enabled() else classifier
    return Pipeline(traced, detector, uncertain_below=uncertain_below)


def build_resources(settings: WorkerProcessSettings) -> WorkerResources:
    """Stores and pipeline of the worker's settings."""
    return WorkerResources(
        settings=settings,
        # A worker process runs one task at a time: a small pool is enough.
        engine=make_sync_engine(settings.database_url, pool_size=2, max_overflow=2),
        redis=redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5),
        pipeline=build_pipeline(settings),
    )


_resources: WorkerResources | None = None
_owner_pid: int | None = None


def init_resources(settings: WorkerProcessSettings) -> WorkerResources:
    """Create this process's resources (again after a fork: connections are not shared)."""
    global _resources, _owner_pid
    _resources = build_resources(settings)
    _owner_pid = os.getpid()
    return _resources


def get_resources() -> WorkerResources:
    """This process's resources, created on first use if start-up did not (after a fork,
    on the same settings)."""
    if _resources is None or _owner_pid != os.getpid():
        return init_resources(
            load(WorkerProcessSettings) if _resources is None else _resources.settings
        )
    return _resources

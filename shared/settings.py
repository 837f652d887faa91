"""Settings from the environment (``CLASSPULSE_*``), validated at start-up.

Small pieces per concern: each variable, its type and its default are declared
once, here. A process composes the pieces it needs into one settings class
(``services.ingest.config.IngestSettings``,
``services.analytics.config.AnalyticsSettings``,
``services.inference.config.WorkerProcessSettings``), builds it once with
``load`` at start-up and passes it on; a command of the ``classpulse`` CLI
builds the pieces it needs once per command. A bad value fails at start-up with
pydantic's message, which names the variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigError

ENV_PREFIX = "CLASSPULSE_"
#: The shipped default model artifact (committed in the repository).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "default"
#: A smaller shipped model for CPUs short of time: faster, less accurate
#: (docs/model-card.md); ``CLASSPULSE_MODEL_DIR`` selects it.
FAST_MODEL_DIR = DEFAULT_MODEL_DIR.parent / "fast"
#: The face detectors' ONNX weights (committed, with their provenance and licences).
DETECTOR_MODELS_DIR = Path(__file__).resolve().parents[1] / "models" / "detectors"
#: Face detectors (``shared.vision.detect``): the thesis's Haar cascade and
#: the CNN detectors whose weights are in ``models/detectors``.
DetectorName = Literal["haar", "blazeface-short", "blazeface-full", "retinaface"]
#: The detector used unless ``CLASSPULSE_DETECTOR`` says otherwise; chosen by
#: the measured recall, false faces and speed in docs/benchmarks.md.
DEFAULT_DETECTOR: DetectorName = "blazeface-full"
#: Smallest face the Haar detector reports, as a fraction of the frame's
#: shorter side (why 0.1: ``shared.vision.detect.HaarSettings``).
DEFAULT_MIN_FACE_FRACTION = 0.1


def _config() -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_file=None)


class StoreSettings(BaseSettings):
    """Where PostgreSQL and Redis are; unset means the embedded servers."""

    model_config = _config()
    #: SQLAlchemy URL, e.g. ``postgresql://user@host:5432/db``; the driver is
    #: chosen per engine (asyncpg for the APIs, psycopg for workers).
    database_url: str | None = None
    redis_url: str | None = None
    #: Data directory of the embedded PostgreSQL and Redis.
    data_dir: Path = Path(".classpulse")


#: The most clock skew a deployment may allow: a process without the ingest
#: settings bounds a lesson's capture times with it (``shared.db.partitions``).
MAX_CLOCK_SKEW_SECONDS = 3600


class FrameSettings(BaseSettings):
    """Limits on incoming frames and their life in the queue."""

    model_config = _config()
    max_frame_bytes: int = Field(2_000_000, gt=0)
    #: Largest width x height accepted; guards against decompression bombs.
    max_frame_pixels: int = Field(4096 * 4096, gt=0)
    #: Frame bytes wait this long in Redis for a worker, then the frame expires.
    frame_ttl_seconds: int = Field(600, gt=0)
    #: Queue length above which ingest answers 429 instead of accepting.
    queue_limit: int = Field(10_000, gt=0)
    #: Frames per second one student may send.
    student_rate_per_second: float = Field(2.0, gt=0)
    #: How far a frame's capture time may lie outside its lesson or ahead of the
    #: server's clock. Student devices' clocks are often off by seconds, some by
    #: minutes; times further out are refused (422), because a time far from the
    #: lesson would escape retention and break the lesson's time buckets.
    clock_skew_seconds: int = Field(300, ge=0, le=MAX_CLOCK_SKEW_SECONDS)
    #: The classroom page finds, aligns and crops faces itself and sends only
    #: the crops (``shared.face_crops``); off, it sends whole frames. A browser
    #: that cannot run the detector sends whole frames either way.
    client_detection: bool = True


class PrivacySettings(BaseSettings):
    model_config = _config()
    #: Face events older than this many days are purged.
    retention_days: int = Field(30, gt=0)
    #: Class-level views hide expression shares of buckets with fewer students.
    min_group_size: int = Field(5, ge=1)
    #: Off: only face presence is recorded, never an expression (e.g. where
    #: emotion recognition in education is prohibited).
    inference_enabled: bool = True


class AuthSettings(BaseSettings):
    model_config = _config()
    #: Secret that signs student tokens; ``classpulse up`` refuses to start
    #: without it outside demo mode.
    token_secret: SecretStr | None = None
    token_ttl_seconds: int = Field(3 * 3600, gt=0)


class SecretsSettings(BaseSettings):
    """The key that encrypts secrets ClassPulse must send on (``shared.secret_box``)."""

    model_config = _config()
    #: Any long random string (``openssl rand -hex 32``); needed to set and use an
    #: organisation's LRS. Changing it makes stored LRS passwords unreadable.
    secrets_key: SecretStr | None = None


class LtiSettings(BaseSettings):
    """The LTI 1.3 tool (``services.lti``): where platforms and browsers reach ClassPulse."""

    model_config = _config()
    #: The ingest API's public base URL as the LMS and browsers see it (https in
    #: production); unset: the URL a request arrived at.
    lti_tool_url: str | None = None
    #: The analytics API's public base URL, where instructor launches open the dashboard;
    #: unset: the tool URL's host on ``CLASSPULSE_ANALYTICS_PORT``.
    lti_dashboard_url: str | None = None
    #: Length of the lesson a launch creates when its placement has none running.
    lti_lesson_minutes: int = Field(60, gt=0, le=24 * 60)


class LiveSettings(BaseSettings):
    """Bounds on the analytics API's live streams (Server-Sent Events)."""

    model_config = _config()
    #: An open stream checks its credential again this often and ends when the
    #: key was revoked (or a token expired) meanwhile.
    live_recheck_seconds: float = Field(15.0, gt=0)
    #: A stream ends after this long whatever happens; the browser's
    #: EventSource reconnects, presenting its credential again.
    live_max_seconds: float = Field(3600.0, gt=0)


class DetectionSettings(BaseSettings):
    """How the workers find faces; the classroom page's own detection follows them."""

    model_config = _config()
    #: Face detector of the worker (``CLASSPULSE_DETECTOR``).
    detector: DetectorName = DEFAULT_DETECTOR
    #: Smallest face detected, as a fraction of the frame's shorter side. The
    #: default keeps students sitting back and group shots; one student per
    #: webcam (faces a sixth of the frame or more) can raise it to 0.15 and
    #: detect about 1.6x faster (docs/benchmarks.md).
    min_face_fraction: float = Field(DEFAULT_MIN_FACE_FRACTION, gt=0, le=1)


class WorkerSettings(DetectionSettings):
    model_config = _config()
    model_dir: Path = DEFAULT_MODEL_DIR
    worker_concurrency: int = Field(1, ge=1)
    worker_prefetch: int = Field(4, ge=1)
    #: ONNX Runtime intra-op threads per worker process (0: library default).
    inference_threads: int = Field(1, ge=0)
    #: Hard limit of one frame task; a stuck task is killed after this.
    task_time_limit_seconds: int = Field(60, gt=0)
    #: A message taken but not acknowledged (worker killed) is redelivered
    #: after this long; it must stay above the longest task and retry delay.
    visibility_timeout_seconds: int = Field(600, gt=0)
    #: A frame still queued this long after it arrived, its bytes present and
    #: no message for it in the broker, is queued again (a lost message).
    requeue_after_seconds: int = Field(120, gt=0)
    #: Port of the worker's Prometheus ``/metrics`` (0: none). With a prefork pool,
    #: PROMETHEUS_MULTIPROC_DIR must name an empty directory, so children's samples add up.
    worker_metrics_port: int = Field(0, ge=0, lt=65536)


class LogSettings(BaseSettings):
    model_config = _config()
    #: ``text`` lines for people, or ``json``: one object per line for a log pipeline.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ApiSettings(BaseSettings):
    model_config = _config()
    host: str = "127.0.0.1"
    ingest_port: int = Field(8000, gt=0, lt=65536)
    analytics_port: int = Field(8001, gt=0, lt=65536)


T = TypeVar("T", bound=BaseSettings)


def load(cls: type[T]) -> T:
    """``cls`` read from the environment; ``ConfigError`` names each variable missing or bad."""
    try:
        return cls()
    except ValidationError as exc:
        missing, bad = [], []
        for err in exc.errors():
            name = ENV_PREFIX + "_".join(str(p) for p in err["loc"]).upper()
            if err["type"] == "missing":
                missing.append(f"{name} is not set")
            else:
                bad.append(f"{name}: {err['msg']}")
        problems = missing + ([f"invalid setting: {'; '.join(bad)}"] if bad else [])
        raise ConfigError("; ".join(problems)) from None

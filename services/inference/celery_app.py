"""The inference worker's Celery app (Redis broker, no result backend).

Run a worker with::

    celery -A services.inference.celery_app:app worker -Q frames

and the periodic tasks (expire frames, queue again frames whose message was
lost, create the coming days' partitions, purge old events, send xAPI statements) with ``celery -A
services.inference.celery_app:app beat``. The configuration is read from
the settings when Celery first needs it, not at import. A worker reads its
``WorkerProcessSettings`` once at start-up and creates from them, once per
worker process, the model, the database engine and the Redis client (see
``services.inference.resources``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool

from services.inference.config import CelerySettings, WorkerProcessSettings
from shared import tasks, tracing
from shared.errors import ConfigError
from shared.schemas import FRAME_QUEUE
from shared.settings import load

#: Periodic tasks and how often they run (seconds).
EXPIRE_EVERY_SECONDS = 60.0
PURGE_EVERY_SECONDS = 3600.0
#: Day partitions are made a week ahead (``shared.db.partitions``): hourly runs make
#: each day's long before it starts, and a missed run costs nothing.
PARTITIONS_EVERY_SECONDS = 3600.0
REQUEUE_EVERY_SECONDS = 60.0
#: xAPI statements: finished lessons built and waiting statements sent this often.
XAPI_EVERY_SECONDS = 30.0


def celery_config(worker: CelerySettings) -> dict[str, Any]:
    """Celery's configuration from ClassPulse's settings."""
    if worker.visibility_timeout_seconds <= worker.task_time_limit_seconds:
        raise ConfigError(
            "CLASSPULSE_VISIBILITY_TIMEOUT_SECONDS must be above "
            "CLASSPULSE_TASK_TIME_LIMIT_SECONDS, or running tasks get redelivered"
        )
    visibility = worker.visibility_timeout_seconds
    return {
        "broker_url": worker.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            # Look for abandoned messages (worker killed) a few times per
            # visibility period, so they come back soon after it ends.
            "unacked_restore_interval": max(1, min(10, visibility // 4)),
            "unacked_restore_throttle": 1,
            # A worker killed while it held the restore lock would block every
            # restore for kombu's default 5 minutes; a restore takes milliseconds.
            "unacked_mutex_expire": 10,
        },
        "task_default_queue": FRAME_QUEUE,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # Acknowledge after the task ran, and give a task back to the queue when
        # its worker dies: the writes are idempotent, so a repeat is harmless.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_time_limit": worker.task_time_limit_seconds,
        "worker_prefetch_multiplier": worker.worker_prefetch,
        "worker_concurrency": worker.worker_concurrency,
        "worker_hijack_root_logger": False,
        "beat_schedule": {
            "expire-frames": {"task": tasks.EXPIRE_FRAMES, "schedule": EXPIRE_EVERY_SECONDS},
            "requeue-orphaned-frames": {
                "task": tasks.REQUEUE_ORPHANS,
                "schedule": REQUEUE_EVERY_SECONDS,
            },
            "purge-old-events": {
                "task": tasks.PURGE_OLD_EVENTS,
                "schedule": PURGE_EVERY_SECONDS,
            },
            "create-partitions": {
                "task": tasks.CREATE_PARTITIONS,
                "schedule": PARTITIONS_EVERY_SECONDS,
            },
            "send-xapi-statements": {
                "task": tasks.SEND_XAPI,
                "schedule": XAPI_EVERY_SECONDS,
            },
        },
    }


app = Celery("classpulse", include=["services.inference.tasks"])
#: The worker's settings, read once at its start-up (``worker_init``); prefork
#: children inherit them. None in other processes of the app (beat, senders).
_settings: WorkerProcessSettings | None = None
#: What every process of the app reads (the broker, the worker's knobs, the log
#: format), read once, when Celery first reads its configuration.
_app_settings: CelerySettings | None = None


def _celery_settings() -> CelerySettings:
    global _app_settings
    if _app_settings is None:
        _app_settings = load(CelerySettings)
    return _app_settings


def _configure(sender: Celery, **_: object) -> None:
    # Runs once, the first time Celery reads its configuration: in any process of
    # the app (beat too), which needs the broker only.
    sender.config_from_object(celery_config(_celery_settings()))


def _start_tracing() -> None:
    """Spans of this process's tasks, if an OTLP endpoint is configured (``shared.tracing``)."""
    if tracing.init_tracing("worker") is not None:
        tracing.instrument_celery()


def _start_worker(sender: Any, **_: object) -> None:
    """The worker's start-up: its settings, read once (``ConfigError`` names each
    variable missing or bad); solo and thread pools run tasks in this process, so
    the model is loaded now; then /metrics."""
    global _settings
    _settings = load(WorkerProcessSettings)
    pool = get_implementation(sender.pool_cls)
    if not (isinstance(pool, type) and issubclass(pool, PreforkPool)):
        from services.inference.resources import init_resources

        _start_tracing()
        init_resources(_settings)
    _serve_metrics(_settings.worker_metrics_port)


def _load_in_child_process(**_: object) -> None:
    """Each prefork child loads its own model, engine and Redis client (and exporter)."""
    from services.inference.resources import init_resources

    _start_tracing()
    init_resources(_settings or load(WorkerProcessSettings))


def _stop_tracing(**_: object) -> None:
    """Send the spans still waiting before the process exits."""
    tracing.shutdown()


def _serve_metrics(port: int) -> None:
    """The main process serves /metrics on ``port`` (0: none): the samples of every pool
    child (multiprocess)."""
    if port:
        from prometheus_client import start_http_server

        from shared import metrics

        if not metrics.multiprocess():
            # Prefork children count in their own memory: without the folder this
            # process would serve zeros for every frame counter.
            logging.getLogger(__name__).error(
                "CLASSPULSE_WORKER_METRICS_PORT is set but PROMETHEUS_MULTIPROC_DIR is not: "
                "/metrics shows this process only, not its pool's"
            )
        start_http_server(port, registry=metrics.registry())


def _log_format(logger: Any, **_: object) -> None:
    """Celery's handlers in the configured format (CLASSPULSE_LOG_FORMAT), with the
    credential filter."""
    from shared.logs import reformat_handlers

    reformat_handlers(logger, "worker", _celery_settings())


def _forget_dead_child(pid: int, **_: object) -> None:
    """A child that exits takes its live gauges with it (multiprocess mode)."""
    from shared import metrics

    if metrics.multiprocess():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


app.on_configure.connect(_configure, weak=False)
signals.worker_init.connect(_start_worker, weak=False)
signals.worker_process_init.connect(_load_in_child_process, weak=False)
signals.after_setup_logger.connect(_log_format, weak=False)
signals.after_setup_task_logger.connect(_log_format, weak=False)
signals.worker_process_shutdown.connect(_forget_dead_child, weak=False)
signals.worker_process_shutdown.connect(_stop_tracing, weak=False)
signals.worker_shutdown.connect(_stop_tracing, weak=False)

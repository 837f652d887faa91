"""Prometheus metrics of ClassPulse's own work, shared by the APIs and the workers.

HTTP request counts and latencies come from prometheus-fastapi-instrumentator
(``services.api.metrics``); these are the domain's figures. Where processes
fork (Celery's pool, several uvicorn workers) ``PROMETHEUS_MULTIPROC_DIR`` must
name an empty directory before this module is imported: each process then
writes its samples there and ``/metrics`` adds them up (``registry()``).
Labels never carry ids of organisations, lessons or students, nor credentials.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

#: Latency buckets of one frame's stages, in seconds (a stage takes 0.1 to 50 ms).
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

API_ERRORS = Counter(
    "classpulse_api_errors",
    "Requests answered with an error, by route template, status and error code",
    ["handler", "status", "code"],
)
FRAMES_ACCEPTED = Counter(
    "classpulse_frames_accepted", "Frames ingest stored and queued (a repeated seq not again)"
)
FRAMES_REFUSED = Counter(
    "classpulse_frames_refused",
    "Frames refused after the student's token was read (HTTP, batch items, WebSocket), "
    "by error code",
    ["code"],
)
QUEUE_LENGTH = Gauge(
    "classpulse_queue_length",
    "Frame messages waiting in the broker's queue (read when /metrics is scraped)",
    multiprocess_mode="mostrecent",
)
OLDEST_QUEUED_SECONDS = Gauge(
    "classpulse_oldest_queued_frame_age_seconds",
    "Age of the oldest frame still queued (0: none; read when /metrics is scraped)",
    multiprocess_mode="mostrecent",
)
OPEN_STREAMS = Gauge(
    "classpulse_open_connections",
    "Open live connections: dashboard SSE streams and classroom WebSockets",
    ["kind"],
    multiprocess_mode="livesum",
)
FRAMES_FINISHED = Counter(
    "classpulse_frames_finished",
    "Frames a worker finished, by status (done, failed, expired) and reason",
    ["status", "reason"],
)
STAGE_SECONDS = Histogram(
    "classpulse_inference_stage_seconds",
    "Time of each stage of a frame in the worker: decode, analyze (detect, align, "
    "classify), store (events and status in PostgreSQL)",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
FACES_PER_FRAME = Histogram(
    "classpulse_faces_per_frame",
    "Faces found in each processed frame",
    buckets=(0, 1, 2, 3, 5, 10, 30),
)
TASK_RETRIES = Counter(
    "classpulse_task_retries", "Frame tasks retried after a store was unreachable"
)
FRAMES_REQUEUED = Counter(
    "classpulse_frames_requeued",
    "Frames queued again: still queued, with their bytes, after the queue had passed them "
    "(their message lost)",
)
FRAMES_EXPIRED = Counter(
    "classpulse_frames_expired", "Queued frames marked expired because their bytes were gone"
)


def multiprocess() -> bool:
    """Whether samples go through ``PROMETHEUS_MULTIPROC_DIR`` (forked processes)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def registry() -> CollectorRegistry:
    """What ``/metrics`` shows: every process's samples in multiprocess mode, else this one's."""
    if not multiprocess():
        return REGISTRY
    combined = CollectorRegistry()
    MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    return combined

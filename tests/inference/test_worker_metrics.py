"""A prefork worker's /metrics adds up what its pool processes did (multiprocess mode),
and its log lines come out as JSON when asked."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from classpulse.harness.ports import free_port
from classpulse.harness.processes import start_worker, stop
from shared.db.models import FrameStatus
from tests.inference.conftest import World
from tests.inference.test_worker import send, status_of, wait_for, worker_env

pytestmark = pytest.mark.slow


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_prefork_workers_metrics_count_what_its_child_processed(
    world: World, pg_url: str, redis_url: str, tmp_path: Path, one_face: bytes
) -> None:
    folder, port, log = tmp_path / "metrics", free_port(), tmp_path / "worker.log"
    folder.mkdir()
    env = worker_env(
        pg_url,
        redis_url,
        PROMETHEUS_MULTIPROC_DIR=str(folder),
        CLASSPULSE_WORKER_METRICS_PORT=str(port),
        CLASSPULSE_LOG_FORMAT="json",
        # Over the command line's -l INFO: the frame trail's DEBUG lines show.
        CLASSPULSE_LOG_LEVEL="DEBUG",
    )
    worker = start_worker("metrics", env, log, pool="prefork", concurrency=1)
    try:
        ref = world.add_frame(one_face)
        send(redis_url, ref)
        wait_for(
            lambda: status_of(world, ref.frame_id) is FrameStatus.DONE,
            60,
            "frame not processed",
            worker,
            log,
        )
        url = f"http://127.0.0.1:{port}/metrics"
        found = samples(url)
    finally:
        stop(worker)
    # Counted in the pool's child, served by the main process.
    done = frozenset({("status", "done"), ("reason", "")})
    assert found[("classpulse_frames_finished_total", done)] == 1
    for stage in ("decode", "analyze", "store"):
        assert (
            found[("classpulse_inference_stage_seconds_count", frozenset({("stage", stage)}))] == 1
        )
    assert found[("classpulse_faces_per_frame_sum", frozenset())] == 1
    # Celery's own lines in JSON too (its banner is printed, not logged), the task's
    # arguments (the frame reference) among their fields.
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    (done,) = [
        r for r in records if "succeeded" in r["message"] and str(ref.frame_id) in json.dumps(r)
    ]
    assert done["service"] == "worker"
    (finished,) = [r for r in records if r.get("frame_id") == str(ref.frame_id)]
    assert (finished["level"], finished["status"]) == ("DEBUG", "done")

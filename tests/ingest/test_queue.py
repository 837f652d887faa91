"""The queue contract: what ingest publishes is what Celery's ``send_task`` writes, and a
real Celery worker consumes it."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
from celery import Celery

from classpulse.harness.processes import start_worker, stop
from services.ingest.queue import FrameQueue, producer_app
from shared.schemas import FRAME_QUEUE, FrameRef, frame_key
from shared.tasks import PROCESS_FRAME
from tests.ingest.conftest import World
from tests.ingest.test_frames import post_jpeg

ROOT = Path(__file__).resolve().parents[2]


def _ref() -> FrameRef:
    now = dt.datetime.now(dt.UTC)
    frame_id = uuid.uuid4()
    return FrameRef(
        frame_id=frame_id,
        lesson_id=uuid.uuid4(),
        student_id=uuid.uuid4(),
        captured_at=now,
        enqueued_at=now,
        redis_key=frame_key(frame_id),
    )


async def test_message_matches_what_celery_send_task_writes(
    redis_url: str, redis_client: redis_lib.Redis
) -> None:
    ref = _ref()
    celery = Celery("reference", broker=redis_url, set_as_current=False)
    celery.send_task(
        PROCESS_FRAME,
        kwargs={"ref": ref.model_dump(mode="json")},
        task_id=str(ref.frame_id),
        queue=FRAME_QUEUE,
    )
    celery.close()
    theirs = json.loads(redis_client.rpop(FRAME_QUEUE))
    queue = FrameQueue(redis_lib.asyncio.Redis.from_url(redis_url), producer_app(redis_url))
    try:
        await queue.enqueue(ref)
        assert await queue.length() == 1
    finally:
        queue.close()
    ours = json.loads(redis_client.rpop(FRAME_QUEUE))

    assert set(ours) == set(theirs)
    assert set(ours["headers"]) == set(theirs["headers"])
    assert set(ours["properties"]) == set(theirs["properties"])
    assert ours["headers"]["task"] == theirs["headers"]["task"] == PROCESS_FRAME
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == str(ref.frame_id)
    assert ours["properties"]["delivery_info"] == theirs["properties"]["delivery_info"]
    assert ours["properties"]["delivery_mode"] == theirs["properties"]["delivery_mode"]
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(
        base64.b64decode(theirs["body"])
    )


@pytest.mark.slow
async def test_a_real_celery_worker_consumes_ingested_frames(
    base_url: str,
    world: World,
    photo: bytes,
    redis_url: str,
    redis_client: redis_lib.Redis,
    tmp_path: Path,
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        accepted = [
            (await post_jpeg(client, world, photo, seq=s)).json()["frame_id"] for s in range(3)
        ]
    log = tmp_path / "worker.log"
    # The echo app is imported from the checkout (tests/ is not installed).
    worker = start_worker(
        "echo",
        {**os.environ, "ECHO_BROKER_URL": redis_url},
        log,
        app="tests.ingest.echo_worker:app",
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while redis_client.llen("echo:received") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop(worker)
    received = [json.loads(r) for r in redis_client.lrange("echo:received", 0, -1)]
    # The worker's log says why, when it received fewer or other frames.
    assert sorted(r["frame_id"] for r in received) == sorted(accepted), log.read_text()[-3000:]
    assert all(r["lesson_id"] == str(world.lesson_id) for r in received), log.read_text()[-3000:]
    assert redis_client.llen(FRAME_QUEUE) == 0

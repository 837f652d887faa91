"""Backing stores failing under ingest: answer 503 with Retry-After, keep nothing half-done."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
import redis as redis_lib
from redis.asyncio import Redis
from sqlalchemy import Engine

from classpulse.harness.ports import free_port
from classpulse.harness.servers import OwnRedis
from services.ingest.app import _open
from services.ingest.config import IngestSettings
from services.ingest.intake import IncomingFrame, accept_frame
from services.ingest.queue import FrameQueue, producer_app
from shared.errors import ServiceUnavailable
from tests.ingest.conftest import Servers, World, replace
from tests.ingest.test_frames import frames_of, post_jpeg

pytestmark = pytest.mark.asyncio


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    """A throwaway Redis server this test may stop (never the machine's)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis()
    server.start()
    yield server
    server.kill()


async def test_redis_stopped_mid_test_answers_503_and_records_nothing(
    servers: Servers,
    config: IngestSettings,
    world: World,
    photo: bytes,
    clean_db: Engine,
    own_redis: OwnRedis,
) -> None:
    url = own_redis.url
    base = servers.start(replace(config, redis_url=url))
    async with httpx.AsyncClient(base_url=base) as client:
        before = await post_jpeg(client, world, photo, seq=1)
        assert before.status_code == 202
        own_redis.stop()
        after = await post_jpeg(client, world, photo, seq=2)
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
    assert after.status_code == 503, after.text
    assert after.json()["error"]["code"] == "service_unavailable"
    assert int(after.headers["Retry-After"]) >= 1
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("unavailable")
    assert health.status_code == 200
    assert [f.seq for f in frames_of(clean_db, world)] == [1]


async def test_enqueue_failure_after_insert_removes_row_and_bytes(
    config: IngestSettings,
    world: World,
    photo: bytes,
    clean_db: Engine,
    redis_client: redis_lib.Redis,
) -> None:
    """Bytes stored and row inserted, then the broker refuses: nothing may stay 'queued'."""
    import datetime as dt

    resources = await _open(config)
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    dead = Redis.from_url(dead_broker)
    broken = replace_queue(resources, FrameQueue(dead, producer_app(dead_broker)))
    try:
        with pytest.raises(ServiceUnavailable):
            await accept_frame(
                broken,
                _principal(world),
                world.lesson_id,
                IncomingFrame(1, dt.datetime.now(dt.UTC), photo, len(photo), "image/jpeg"),
            )
    finally:
        await dead.aclose()
        await resources.redis.aclose()
        await resources.engine.dispose()
    assert frames_of(clean_db, world) == []
    assert redis_client.keys("classpulse:frame:*") == []


def replace_queue(resources, queue):
    import dataclasses

    return dataclasses.replace(resources, queue=queue)


def _principal(world: World):
    from classpulse.harness.factories import TOKEN_SECRET
    from shared.auth import verify_student_token

    return verify_student_token(TOKEN_SECRET, world.token())


async def test_database_unreachable_answers_503_and_stores_no_bytes(
    servers: Servers,
    config: IngestSettings,
    world: World,
    photo: bytes,
    redis_client: redis_lib.Redis,
) -> None:
    dead_db = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    base = servers.start(replace(config, database_url=dead_db))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await post_jpeg(client, world, photo, seq=1)
        ready = await client.get("/readyz")
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"].startswith("unavailable")
    assert redis_client.keys("classpulse:frame:*") == []
    assert redis_client.llen("frames") == 0


async def test_stream_with_redis_down_says_so_and_closes(
    servers: Servers,
    config: IngestSettings,
    world: World,
    own_redis: OwnRedis,
) -> None:
    import json

    import websockets

    url = own_redis.url
    base = servers.start(replace(config, redis_url=url))
    own_redis.stop()
    ws_url = (
        base.replace("http://", "ws://")
        + f"/v1/lessons/{world.lesson_id}/stream?token={world.token()}"
    )
    async with websockets.connect(ws_url) as ws:
        message = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert message["error"]["code"] == "service_unavailable"
    assert message["retry_after"] >= 1
    assert closed.value.rcvd.code == 1013

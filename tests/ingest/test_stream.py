"""The WebSocket path: header + image per frame, an ack or an error each, results pushed back."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import uuid
from pathlib import Path

import pytest
import redis as redis_lib
import websockets
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from classpulse.harness.processes import start_worker, stop
from shared.db.models import Frame, FrameStatus
from shared.schemas import LiveNotice, live_channel
from tests.ingest.conftest import World
from tests.ingest.test_frames import frames_of

pytestmark = pytest.mark.asyncio


def ws_url(base_url: str, world: World, token: str) -> str:
    return (
        base_url.replace("http://", "ws://") + f"/v1/lessons/{world.lesson_id}/stream?token={token}"
    )


async def send_frame(ws: websockets.ClientConnection, seq: int, data: bytes) -> dict[str, object]:
    await ws.send(json.dumps({"seq": seq, "captured_at": dt.datetime.now(dt.UTC).isoformat()}))
    await ws.send(data)
    return await next_of(ws, {"ack", "error"})


async def next_of(
    ws: websockets.ClientConnection, types: set[str], timeout: float = 10
) -> dict[str, object]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message["type"] in types:
            return message


async def test_each_frame_gets_an_ack_or_its_error(
    base_url: str, world: World, photo: bytes, clean_db: Engine
) -> None:
    async with websockets.connect(ws_url(base_url, world, world.token())) as ws:
        acks = [await send_frame(ws, seq, photo) for seq in range(3)]
        repeat = await send_frame(ws, 1, photo)
        bad = await send_frame(ws, 9, b"not an image")
        await ws.send(json.dumps({"seq": -4}))
        header_error = await next_of(ws, {"error"})
    assert [a["type"] for a in acks] == ["ack", "ack", "ack"]
    assert [a["seq"] for a in acks] == [0, 1, 2]
    assert repeat["frame_id"] == acks[1]["frame_id"]
    assert [a["status"] for a in acks] == ["queued"] * 3
    assert repeat["status"] == "repeated"
    assert bad["type"] == "error"
    assert bad["seq"] == 9
    assert bad["error"]["code"] == "unsupported_media_type"
    assert header_error["error"]["code"] == "validation_error"
    rows = frames_of(clean_db, world)
    assert sorted(str(r.id) for r in rows) == sorted(str(a["frame_id"]) for a in acks)


async def test_bad_token_is_told_then_closed(base_url: str, world: World) -> None:
    async with websockets.connect(
        ws_url(base_url, world, world.token(lesson_id=uuid.uuid4()))
    ) as ws:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert message["error"]["code"] == "forbidden"
    assert closed.value.rcvd.code == 1008


async def test_results_of_own_frames_are_forwarded(
    base_url: str, world: World, photo: bytes, redis_client: redis_lib.Redis
) -> None:
    async with websockets.connect(ws_url(base_url, world, world.token())) as ws:
        ack = await send_frame(ws, 5, photo)
        for student, frame_id in (
            (world.students["s2"], uuid.uuid4()),
            (world.students["s1"], ack["frame_id"]),
        ):
            notice = LiveNotice(
                frame_id=frame_id,
                lesson_id=world.lesson_id,
                student_id=student,
                captured_at=dt.datetime.now(dt.UTC),
                status="done",
                faces=1,
                labels=["happy"],
            )
            redis_client.publish(live_channel(world.lesson_id), notice.model_dump_json())
        result = await next_of(ws, {"result"})
    # Only this student's frame comes back, labelled with its seq.
    assert result["frame_id"] == ack["frame_id"]
    assert result["seq"] == 5
    assert result["faces"] == 1
    assert result["labels"] == ["happy"]


@pytest.mark.slow
async def test_end_to_end_with_the_inference_worker(
    base_url: str,
    world: World,
    photo: bytes,
    clean_db: Engine,
    pg_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    env = {**os.environ, "CLASSPULSE_DATABASE_URL": pg_url, "CLASSPULSE_REDIS_URL": redis_url}
    log = tmp_path / "worker.log"
    worker = start_worker("stream", env, log)
    try:
        async with websockets.connect(ws_url(base_url, world, world.token())) as ws:
            ack = await send_frame(ws, 1, photo)
            assert ack["type"] == "ack", ack
            try:
                result = await next_of(ws, {"result"}, timeout=90)
            except TimeoutError as no_result:
                raise AssertionError(
                    f"no result from the worker:\n{log.read_text()[-3000:]}"
                ) from no_result
        assert result["frame_id"] == ack["frame_id"], log.read_text()[-3000:]
        with Session(clean_db) as session:
            status = session.scalar(
                select(Frame.status).where(Frame.id == uuid.UUID(ack["frame_id"]))
            )
        assert status == FrameStatus.DONE, log.read_text()[-3000:]
        # obama.jpg shows one face
        assert result["faces"] >= 1, log.read_text()[-3000:]
    finally:
        stop(worker)

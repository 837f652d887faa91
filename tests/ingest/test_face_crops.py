"""Face-crops bodies through ingest (HTTP and WebSocket), on the real PostgreSQL and Redis."""

from __future__ import annotations

import datetime as dt
import json

import cv2
import httpx
import numpy as np
import pytest
import redis as redis_lib
import websockets
from sqlalchemy import Engine

from services.ingest.config import IngestConfig
from services.ingest.crop_check import MEDIA_TYPE
from shared import face_crops
from shared.schemas import frame_key
from shared.vision.blazeface import FULL_RANGE, BlazeFace
from tests import face_crops_body
from tests.conftest import MEDIA, ROOT
from tests.ingest.conftest import Servers, World, frame_params, replace
from tests.ingest.test_frames import frames_of
from tests.ingest.test_stream import next_of, ws_url

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    image = cv2.imread(str(MEDIA / "two_people.jpg"))
    assert image is not None
    return image


async def post(base_url: str, world: World, data: bytes, seq: int = 1) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.post(
            f"/v1/lessons/{world.lesson_id}/frames",
            params=frame_params(seq),
            content=data,
            headers={"Authorization": f"Bearer {world.token()}", "Content-Type": MEDIA_TYPE},
        )


async def test_crops_are_stored_for_the_worker_and_counted_as_a_frame(
    base_url: str, world: World, clean_db: Engine, redis_client: redis_lib.Redis, photo: np.ndarray
) -> None:
    data = face_crops_body.body(photo, BlazeFace(FULL_RANGE).detect(photo))
    response = await post(base_url, world, data)
    assert response.status_code == 202, response.text
    frame_id = response.json()["frame_id"]
    (row,) = frames_of(clean_db, world)
    assert str(row.id) == frame_id
    assert row.media_type == "crops.v1/png"
    assert (row.width, row.height) == (photo.shape[1], photo.shape[0])
    stored = redis_client.get(frame_key(row.id))
    assert stored is not None
    meta, strip = face_crops.unpack(stored)
    assert len(meta.faces) == 2
    assert strip == face_crops.unpack(data)[1]


async def test_no_face_is_a_tiny_body_and_still_a_frame(
    base_url: str, world: World, clean_db: Engine
) -> None:
    data = face_crops_body.no_face_body()
    assert len(data) < 200
    response = await post(base_url, world, data)
    assert response.status_code == 202, response.text
    (row,) = frames_of(clean_db, world)
    assert row.media_type == "crops.v1/none"
    assert row.size_bytes == len(data)


def _bad_bodies(photo: np.ndarray) -> dict[str, tuple[bytes, int, str]]:
    detections = BlazeFace(FULL_RANGE).detect(photo)
    one_crop = cv2.imencode(".png", np.zeros((96, 96), np.uint8))[1].tobytes()
    noisy = np.random.default_rng(1).integers(0, 256, (96 * 2, 96), dtype=np.uint8)
    huge = cv2.imencode(".png", np.vstack([noisy] * 4))[1].tobytes()
    good = face_crops_body.body(photo, detections)
    meta, strip = face_crops.unpack(good)
    raw = meta.model_dump()
    raw["faces"][0]["score"] = 3.0
    broken = json.dumps(raw).encode()
    return {
        "wrong_size": (face_crops_body.body(photo, detections, strip=one_crop), 400, "96x192"),
        "bad_metadata": (
            face_crops.MAGIC + len(broken).to_bytes(4, "big") + broken + strip,
            422,
            "faces.0.score",
        ),
        "image_without_faces": (face_crops_body.no_face_body() + one_crop, 422, "no image"),
        "not_an_image": (face_crops_body.body(photo, detections, strip=b"GIF89a" * 10), 415, ""),
        "too_large": (face_crops_body.body(photo, detections, strip=huge), 413, "crops are"),
        "truncated": (face_crops.MAGIC + b"\x00\x00", 422, "ends before"),
    }


@pytest.mark.parametrize(
    "case",
    ["wrong_size", "bad_metadata", "image_without_faces", "not_an_image", "too_large", "truncated"],
)
async def test_bad_crops_are_refused_with_what_is_wrong(
    base_url: str, world: World, clean_db: Engine, photo: np.ndarray, case: str
) -> None:
    data, status, words = _bad_bodies(photo)[case]
    response = await post(base_url, world, data)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
    assert frames_of(clean_db, world) == []


async def test_crops_need_consent_as_frames_do(base_url: str, world: World) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post(
            f"/v1/lessons/{world.lesson_id}/frames",
            params=frame_params(1),
            content=face_crops_body.no_face_body(),
            headers={"Authorization": f"Bearer {world.token('nocon')}"},
        )
    assert response.status_code == 451


async def test_crops_over_the_websocket_are_acknowledged(
    base_url: str, world: World, clean_db: Engine, photo: np.ndarray
) -> None:
    data = face_crops_body.body(photo, BlazeFace(FULL_RANGE).detect(photo))
    async with websockets.connect(ws_url(base_url, world, world.token())) as ws:
        await ws.send(json.dumps({"seq": 5, "captured_at": dt.datetime.now(dt.UTC).isoformat()}))
        await ws.send(data)
        ack = await next_of(ws, {"ack", "error"})
    assert ack["type"] == "ack", ack
    (row,) = frames_of(clean_db, world)
    assert row.media_type == "crops.v1/png"


@pytest.mark.parametrize("on", [True, False])
async def test_the_page_is_told_to_send_crops_only_when_the_setting_says_so(
    servers: Servers, config: IngestConfig, world: World, redis_client: redis_lib.Redis, on: bool
) -> None:
    base_url = servers.start(replace(config, client_detection=on, detector="blazeface-short"))
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        me = await client.get(
            f"/v1/lessons/{world.lesson_id}/me",
            headers={"Authorization": f"Bearer {world.token()}"},
        )
        detection = me.json()["client_detection"]
        if not on:
            assert detection is None
            return
        # The workers' BlazeFace variant, and its weights are served to the page.
        assert detection["detector"] == "blazeface-short"
        assert detection["input_size"] == 128
        model = await client.get(detection["model_url"])
        missing = await client.get("/detector-models/retinaface_mnet025.onnx")
    assert model.status_code == 200
    assert model.content == (ROOT / "models/detectors/blazeface_short_range.onnx").read_bytes()
    assert missing.status_code == 404


async def test_crops_are_refused_where_the_server_finds_faces_itself(
    servers: Servers, config: IngestConfig, world: World, clean_db: Engine, photo: np.ndarray
) -> None:
    base_url = servers.start(replace(config, client_detection=False))
    data = face_crops_body.body(photo, BlazeFace(FULL_RANGE).detect(photo))
    response = await post(base_url, world, data)
    assert response.status_code == 415
    assert "CLASSPULSE_CLIENT_DETECTION" in response.json()["error"]["message"]
    assert frames_of(clean_db, world) == []

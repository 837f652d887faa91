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

from services.ingest.config import IngestSettings
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


async def post(
    base_url: str, world: World, data: bytes, seq: int = 1, content_type: str = MEDIA_TYPE
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.post(
            f"/v1/lessons/{world.lesson_id}/frames",
            params=frame_params(seq),
            content=data,
            headers={"Authorization": f"Bearer {world.token()}", "Content-Type": content_type},
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
    servers: Servers, config: IngestSettings, world: World, redis_client: redis_lib.Redis, on: bool
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
    servers: Servers, config: IngestSettings, world: World, clean_db: Engine, photo: np.ndarray
) -> None:
    base_url = servers.start(replace(config, client_detection=False))
    data = face_crops_body.body(photo, BlazeFace(FULL_RANGE).detect(photo))
    response = await post(base_url, world, data)
    assert response.status_code == 415
    assert "CLASSPULSE_CLIENT_DETECTION is false" in response.json()["error"]["message"]
    assert frames_of(clean_db, world) == []


async def set_class_mode(base_url: str, world: World, on: bool | None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.patch(
            f"/v1/classes/{world.class_id}",
            json={"client_detection": on},
            headers=world.lms_headers(),
        )


async def page_detection(base_url: str, world: World) -> object:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        me = await client.get(
            f"/v1/lessons/{world.lesson_id}/me",
            headers={"Authorization": f"Bearer {world.token()}"},
        )
    assert me.status_code == 200, me.text
    return me.json()["client_detection"]


@pytest.mark.parametrize("deployment", [True, False])
async def test_an_lms_sets_a_class_s_mode_over_the_deployment_s(
    servers: Servers,
    config: IngestSettings,
    world: World,
    clean_db: Engine,
    photo: np.ndarray,
    deployment: bool,
) -> None:
    """The class's own setting decides the page's mode and what ingest accepts; null
    hands the decision back to ``CLASSPULSE_CLIENT_DETECTION``."""
    base_url = servers.start(replace(config, client_detection=deployment))
    crops = face_crops_body.body(photo, BlazeFace(FULL_RANGE).detect(photo))
    ok, encoded = cv2.imencode(".jpg", photo)
    assert ok
    jpeg = encoded.tobytes()

    changed = await set_class_mode(base_url, world, not deployment)
    assert changed.status_code == 200, changed.text
    assert changed.json()["client_detection"] is (not deployment)
    assert changed.json()["title"] == "Maths 7B"
    assert (await page_detection(base_url, world) is not None) is (not deployment)
    first = (crops, MEDIA_TYPE) if deployment else (jpeg, "image/jpeg")
    refused = await post(base_url, world, first[0], seq=1, content_type=first[1])
    if deployment:
        assert refused.status_code == 415
        assert "this class's client_detection is false" in refused.json()["error"]["message"]
        assert frames_of(clean_db, world) == []
    else:
        # Whole frames stay accepted in crop mode (LMS plug-ins, replays).
        assert refused.status_code == 202, refused.text
    second = (jpeg, "image/jpeg") if deployment else (crops, MEDIA_TYPE)
    accepted = await post(base_url, world, second[0], seq=2, content_type=second[1])
    assert accepted.status_code == 202, accepted.text

    reset = await set_class_mode(base_url, world, None)
    assert reset.json()["client_detection"] is None
    assert (await page_detection(base_url, world) is not None) is deployment


async def test_only_the_class_s_lms_changes_it(
    base_url: str, world: World, clean_db: Engine
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        made = await client.post(
            f"/v1/classes/{world.class_id}/teacher-keys", headers=world.lms_headers()
        )
        teacher = {"Authorization": f"Bearer {made.json()['key']}"}
        url = f"/v1/classes/{world.class_id}"
        by_teacher = await client.patch(url, json={"client_detection": False}, headers=teacher)
        unknown = await client.patch(url, json={"detector": "haar"}, headers=world.lms_headers())
        no_title = await client.patch(url, json={"title": None}, headers=world.lms_headers())
        renamed = await client.patch(url, json={"title": "Algebra"}, headers=world.lms_headers())
        listed = await client.get("/v1/classes", headers=world.lms_headers())
    assert by_teacher.status_code == 403
    assert unknown.status_code == 422
    assert no_title.status_code == 422
    # A field left out keeps its value.
    assert renamed.json() | {"created_at": None} == listed.json()[0] | {"created_at": None}
    assert (renamed.json()["title"], renamed.json()["client_detection"]) == ("Algebra", None)

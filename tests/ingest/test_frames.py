"""Frame intake over HTTP against the real PostgreSQL and Redis."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import struct
import uuid
import zlib

import httpx
import pytest
import redis as redis_lib
from PIL import Image
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared.db.models import Frame, FrameStatus
from shared.schemas import FRAME_QUEUE, frame_key
from shared.tasks import PROCESS_FRAME
from tests.ingest.conftest import World, frame_params

pytestmark = pytest.mark.asyncio


def png_header(width: int, height: int) -> bytes:
    """A PNG with a valid IHDR claiming ``width`` x ``height`` and no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def frames_of(engine: Engine, world: World) -> list[Frame]:
    with Session(engine) as session:
        return list(session.scalars(select(Frame).where(Frame.lesson_id == world.lesson_id)))


def queued_refs(redis_client: redis_lib.Redis) -> list[dict[str, object]]:
    """The FrameRef kwargs of the Celery messages waiting in the frames queue."""
    refs = []
    for raw in redis_client.lrange(FRAME_QUEUE, 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == PROCESS_FRAME
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        refs.append(kwargs["ref"])
    return refs


async def post_jpeg(
    client: httpx.AsyncClient,
    world: World,
    data: bytes,
    seq: int,
    token: str | None = None,
    content_type: str = "image/jpeg",
) -> httpx.Response:
    return await client.post(
        f"/v1/lessons/{world.lesson_id}/frames",
        params=frame_params(seq),
        content=data,
        headers={"Authorization": f"Bearer {token or world.token()}", "Content-Type": content_type},
    )


async def test_raw_jpeg_is_stored_recorded_and_queued(
    base_url: str, world: World, photo: bytes, clean_db: Engine, redis_client: redis_lib.Redis
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await post_jpeg(client, world, photo, seq=7)

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["seq"] == 7
    frame_id = uuid.UUID(body["frame_id"])

    [row] = frames_of(clean_db, world)
    assert row.id == frame_id
    assert row.status == FrameStatus.QUEUED
    assert (row.media_type, row.width, row.height, row.size_bytes) == (
        "image/jpeg",
        640,
        480,
        len(photo),
    )
    assert row.student_id == world.students["s1"]
    assert redis_client.get(frame_key(frame_id)) == photo
    assert 0 < redis_client.ttl(frame_key(frame_id)) <= 600
    [ref] = queued_refs(redis_client)
    assert ref["frame_id"] == str(frame_id)
    assert ref["lesson_id"] == str(world.lesson_id)
    assert ref["redis_key"] == frame_key(frame_id)


async def test_declared_type_aliases_and_octet_stream_defer_to_magic_bytes(
    base_url: str, world: World, photo: bytes
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        answers = [
            await post_jpeg(client, world, photo, seq=n, content_type=declared)
            for n, declared in enumerate(("image/jpg", "application/octet-stream", "image/webp"))
        ]
    assert [a.status_code for a in answers] == [202, 202, 415]


async def test_multipart_png_and_webp_are_accepted(
    base_url: str, world: World, photo: bytes, clean_db: Engine
) -> None:
    results = {}
    async with httpx.AsyncClient(base_url=base_url) as client:
        for seq, fmt in enumerate(("PNG", "WEBP")):
            out = io.BytesIO()
            Image.open(io.BytesIO(photo)).save(out, fmt)
            response = await client.post(
                f"/v1/lessons/{world.lesson_id}/frames",
                data=frame_params(seq),
                files={"image": ("frame.bin", out.getvalue(), "application/octet-stream")},
                headers={"Authorization": f"Bearer {world.token()}"},
            )
            assert response.status_code == 202, response.text
            results[fmt] = response.json()["frame_id"]
    rows = {str(r.id): r for r in frames_of(clean_db, world)}
    assert rows[results["PNG"]].media_type == "image/png"
    assert rows[results["WEBP"]].media_type == "image/webp"
    assert rows[results["WEBP"]].width == 640


async def test_retry_with_same_seq_returns_first_answer_and_queues_nothing(
    base_url: str, world: World, photo: bytes, clean_db: Engine, redis_client: redis_lib.Redis
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        first = await post_jpeg(client, world, photo, seq=1)
        again = await post_jpeg(client, world, photo, seq=1)
    assert first.status_code == again.status_code == 202
    # The same frame id, and the answer says the retry queued nothing.
    assert again.json() == {**first.json(), "status": "repeated"}
    assert first.json()["status"] == "queued"
    assert len(frames_of(clean_db, world)) == 1
    assert len(queued_refs(redis_client)) == 1
    assert len(redis_client.keys("classpulse:frame:*")) == 1


async def test_concurrent_retries_race_to_one_frame(
    base_url: str, world: World, photo: bytes, clean_db: Engine, redis_client: redis_lib.Redis
) -> None:
    import asyncio

    async with httpx.AsyncClient(base_url=base_url) as client:
        answers = await asyncio.gather(*(post_jpeg(client, world, photo, seq=3) for _ in range(6)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["frame_id"] for a in answers}) == 1
    # One request queued the frame; the others were told theirs repeated it.
    assert sorted(a.json()["status"] for a in answers) == ["queued"] + ["repeated"] * 5
    assert len(frames_of(clean_db, world)) == 1
    assert len(queued_refs(redis_client)) == 1
    assert len(redis_client.keys("classpulse:frame:*")) == 1


def _error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    shape = {"code", "message", "field"}
    assert set(body["error"]) == (shape | {"errors"} if response.status_code == 422 else shape)
    return body["error"]


async def test_bad_inputs_get_their_status_and_store_nothing(
    base_url: str, world: World, photo: bytes, clean_db: Engine, redis_client: redis_lib.Redis
) -> None:
    lesson = world.lesson_id
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=5)
    async with httpx.AsyncClient(base_url=base_url) as client:

        async def with_params(seq: str, captured_at: str) -> httpx.Response:
            """The photo, well signed, with query parameters as given."""
            return await client.post(
                f"/v1/lessons/{lesson}/frames",
                params={"seq": seq, "captured_at": captured_at},
                content=photo,
                headers={"Authorization": f"Bearer {world.token()}", "Content-Type": "image/jpeg"},
            )

        cases = {
            "text as jpeg": (await post_jpeg(client, world, b"hello, I am a text file\n", 1), 415),
            "png sent as jpeg": (await post_jpeg(client, world, png_header(64, 64), 2), 415),
            "huge png": (
                await post_jpeg(
                    client, world, png_header(100_000, 100_000), 3, content_type="image/png"
                ),
                400,
            ),
            "jpeg header only garbage": (
                await post_jpeg(client, world, b"\xff\xd8\xff\xe0" + b"\0" * 40, 4),
                400,
            ),
            "empty body": (await post_jpeg(client, world, b"", 5), 422),
            "too large": (await post_jpeg(client, world, photo + b"\0" * 2_000_000, 6), 413),
            "no token": (
                await client.post(
                    f"/v1/lessons/{lesson}/frames", params=frame_params(7), content=photo
                ),
                401,
            ),
            "expired token": (
                await post_jpeg(client, world, photo, 8, token=world.token(ttl=60, now=past)),
                401,
            ),
            "forged token": (
                await post_jpeg(client, world, photo, 9, token=world.token() + "x"),
                401,
            ),
            "token of another lesson": (
                await post_jpeg(
                    client, world, photo, 10, token=world.token(lesson_id=uuid.uuid4())
                ),
                403,
            ),
            "no consent": (
                await post_jpeg(client, world, photo, 11, token=world.token("nocon")),
                451,
            ),
            "bad seq": (await with_params("-1", "2026-01-01T00:00:00Z"), 422),
            "naive captured_at": (await with_params("12", "2026-01-01T00:00:00"), 422),
        }
    for name, (response, expected) in cases.items():
        assert response.status_code == expected, (name, response.text)
        _error(response)
    assert _error(cases["huge png"][0])["code"] == "invalid_image"
    assert _error(cases["text as jpeg"][0])["code"] == "unsupported_media_type"
    assert _error(cases["no consent"][0])["code"] == "consent_required"
    assert _error(cases["bad seq"][0])["field"] == "seq"
    assert frames_of(clean_db, world) == []
    assert redis_client.llen(FRAME_QUEUE) == 0
    assert redis_client.keys("classpulse:frame:*") == []


async def test_truncated_jpeg_with_valid_header_is_accepted_for_the_worker_to_fail(
    base_url: str, world: World, photo: bytes, clean_db: Engine
) -> None:
    """Ingest reads headers only (documented): the pixel data is the worker's to judge."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await post_jpeg(client, world, photo[: len(photo) // 3], seq=1)
    assert response.status_code == 202, response.text
    [row] = frames_of(clean_db, world)
    assert (row.width, row.height) == (640, 480)


async def test_unknown_lesson_404_and_lesson_not_live_409(
    base_url: str, world: World, photo: bytes, clean_db: Engine
) -> None:
    from shared.db.models import Lesson

    unknown = uuid.uuid4()
    async with httpx.AsyncClient(base_url=base_url) as client:
        missing = await client.post(
            f"/v1/lessons/{unknown}/frames",
            params=frame_params(1),
            content=photo,
            headers={
                "Authorization": f"Bearer {world.token(lesson_id=unknown)}",
                "Content-Type": "image/jpeg",
            },
        )
        with Session(clean_db) as session:
            lesson = session.get(Lesson, world.lesson_id)
            lesson.starts_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
            lesson.ends_at = lesson.starts_at + dt.timedelta(hours=1)
            session.commit()
        not_live = await post_jpeg(client, world, photo, seq=2)
    assert missing.status_code == 404
    assert _error(missing)["code"] == "not_found"
    assert not_live.status_code == 409
    assert _error(not_live)["code"] == "conflict"


async def test_withdrawn_consent_stops_intake_at_once(
    base_url: str, world: World, photo: bytes
) -> None:
    headers = {"Authorization": f"Bearer {world.token()}"}
    async with httpx.AsyncClient(base_url=base_url) as client:
        assert (await post_jpeg(client, world, photo, seq=1)).status_code == 202
        withdrawn = await client.delete(f"/v1/lessons/{world.lesson_id}/consent", headers=headers)
        assert withdrawn.status_code == 200
        assert withdrawn.json()["active"] is False
        refused = await post_jpeg(client, world, photo, seq=2)
        assert refused.status_code == 451
        me = (await client.get(f"/v1/lessons/{world.lesson_id}/me", headers=headers)).json()
        assert me["consent_active"] is False
        assert me["lesson_live"] is True
        # The class-level consent must not override the student's lesson refusal.
        assert (
            await client.put(f"/v1/lessons/{world.lesson_id}/consent", headers=headers)
        ).status_code == 200
        assert (await post_jpeg(client, world, photo, seq=3)).status_code == 202


async def test_student_rate_limit_answers_429_with_retry_after(
    servers, config, world: World, photo: bytes, redis_client: redis_lib.Redis
) -> None:
    from tests.ingest.conftest import replace

    base = servers.start(replace(config, student_rate_per_second=1.0))
    async with httpx.AsyncClient(base_url=base) as client:
        first = await post_jpeg(client, world, photo, seq=1)
        second = await post_jpeg(client, world, photo, seq=2)
        other_student = await post_jpeg(client, world, photo, seq=1, token=world.token("s2"))
    assert first.status_code == 202
    assert second.status_code == 429
    assert _error(second)["code"] == "rate_limited"
    assert 1 <= int(second.headers["Retry-After"]) <= 2
    assert other_student.status_code == 202
    assert redis_client.llen(FRAME_QUEUE) == 2


async def test_queue_over_limit_answers_429_and_stores_nothing(
    servers, config, world: World, photo: bytes, clean_db: Engine, redis_client: redis_lib.Redis
) -> None:
    from tests.ingest.conftest import replace

    base = servers.start(replace(config, queue_limit=3))
    async with httpx.AsyncClient(base_url=base) as client:
        answers = [await post_jpeg(client, world, photo, seq=s) for s in range(5)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    assert "queue is full" in _error(answers[3])["message"]
    assert int(answers[3].headers["Retry-After"]) >= 1
    assert redis_client.llen(FRAME_QUEUE) == 3
    assert len(frames_of(clean_db, world)) == 3
    assert len(redis_client.keys("classpulse:frame:*")) == 3


async def test_batch_gives_one_result_per_frame_in_order(
    base_url: str, world: World, photo: bytes, clean_db: Engine, redis_client: redis_lib.Redis
) -> None:
    now = dt.datetime.now(dt.UTC).isoformat()
    files = [
        ("image", ("a.jpg", photo, "image/jpeg")),
        ("image", ("b.txt", b"plain text", "image/jpeg")),
        ("image", ("c.jpg", photo, "image/jpeg")),
    ]
    data = {"seq": ["1", "2", "3"], "captured_at": [now, now, now]}
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.post(
            f"/v1/lessons/{world.lesson_id}/frames:batch",
            files=files,
            data=data,
            headers={"Authorization": f"Bearer {world.token()}"},
        )
        mismatched = await client.post(
            f"/v1/lessons/{world.lesson_id}/frames:batch",
            files=files,
            data={"seq": ["1"], "captured_at": [now]},
            headers={"Authorization": f"Bearer {world.token()}"},
        )
        again = await client.post(
            f"/v1/lessons/{world.lesson_id}/frames:batch",
            files=files[:1],
            data={"seq": ["1"], "captured_at": [now]},
            headers={"Authorization": f"Bearer {world.token()}"},
        )
    assert response.status_code == 207, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 415, 202]
    assert [r["repeated"] for r in results] == [False, False, False]
    # The batch's seq 1 sent again: the same frame, said to be a repeat.
    [retried] = again.json()["results"]
    assert (retried["status"], retried["repeated"]) == (202, True)
    assert retried["frame_id"] == results[0]["frame_id"]
    assert [r["seq"] for r in results] == [1, 2, 3]
    assert results[1]["error"]["code"] == "unsupported_media_type"
    assert mismatched.status_code == 422
    assert sorted(r.seq for r in frames_of(clean_db, world)) == [1, 3]
    assert len(queued_refs(redis_client)) == 2

"""Frame bodies are capped while they stream, and invalid bodies count against the rate.

The oversized bodies go over a raw socket: the request is left unfinished (a
client still sending its 1 GiB), so a server that waits for the whole body
before its size check never answers, and one that caps the stream answers 413
as soon as the limit passes.
"""

from __future__ import annotations

import socket
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import redis as redis_lib
import websockets
from sqlalchemy import Engine

from services.ingest.config import IngestSettings
from tests.ingest.conftest import Servers, World, frame_params, replace
from tests.ingest.test_frames import frames_of, post_jpeg
from tests.ingest.test_stream import send_frame, ws_url

pytestmark = pytest.mark.asyncio

LIMIT = 200_000
BOUNDARY = "cp-test-boundary"
#: Seconds a capped server needs at most to answer; an uncapped one never does.
ANSWER_WITHIN = 5


def _status_of_unfinished_request(
    base_url: str, head: str, body_parts: list[bytes], chunked: bool
) -> int:
    """Send ``head`` and ``body_parts`` but never the end of the body; the status answered."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=ANSWER_WITHIN) as sock:
        sock.sendall(head.encode())
        for part in body_parts:
            sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
        status_line = sock.makefile("rb").readline()  # socket.timeout: no answer
    return int(status_line.split()[1])


def _head(world: World, path: str, content_type: str, length: str | None) -> str:
    framing = f"Content-Length: {length}" if length else "Transfer-Encoding: chunked"
    return (
        f"POST /v1/lessons/{world.lesson_id}/{path} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        f"Authorization: Bearer {world.token()}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"{framing}\r\n\r\n"
    )


def _multipart_opening(seq: int) -> bytes:
    fields = "".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in frame_params(seq).items()
    )
    return (
        f"{fields}--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="image"; filename="f.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()


@pytest.fixture
def small(servers: Servers, config: IngestSettings, redis_client: redis_lib.Redis) -> str:
    """An ingest whose frame limit is ``LIMIT`` bytes."""
    return servers.start(replace(config, max_frame_bytes=LIMIT))


@pytest.mark.parametrize("path", ["frames", "frames:batch"])
async def test_chunked_multipart_is_refused_once_the_limit_passes(
    small: str, world: World, path: str
) -> None:
    parts = [_multipart_opening(1)] + [b"\xff" * 65_536] * (2 + 16 * LIMIT // 65_536)
    status = _status_of_unfinished_request(
        small,
        _head(world, path, f"multipart/form-data; boundary={BOUNDARY}", None),
        parts,
        chunked=True,
    )
    assert status == 413


async def test_chunked_raw_body_is_refused_once_the_limit_passes(small: str, world: World) -> None:
    query = urlencode(frame_params(1))
    status = _status_of_unfinished_request(
        small,
        _head(world, f"frames?{query}", "image/jpeg", None),
        [b"\xff\xd8\xff\xe0" + b"\0" * 65_532] + [b"\0" * 65_536] * 4,
        chunked=True,
    )
    assert status == 413


@pytest.mark.parametrize("path", ["frames", "frames:batch"])
async def test_a_declared_gibibyte_is_refused_before_a_byte_is_read(
    small: str, world: World, path: str
) -> None:
    status = _status_of_unfinished_request(
        small,
        _head(world, path, f"multipart/form-data; boundary={BOUNDARY}", str(2**30)),
        [],
        chunked=False,
    )
    assert status == 413


async def test_the_413_message_does_not_guess_the_size_of_a_chunked_body(
    small: str, world: World, photo: bytes
) -> None:
    async def body() -> object:
        yield photo
        yield b"\0" * (LIMIT + 1)

    async with httpx.AsyncClient(base_url=small) as client:
        answer = await client.post(
            f"/v1/lessons/{world.lesson_id}/frames",
            params=frame_params(1),
            content=body(),
            headers={"Authorization": f"Bearer {world.token()}", "Content-Type": "image/jpeg"},
        )
    assert answer.status_code == 413
    assert answer.json()["error"]["message"] == f"the frame is over the limit of {LIMIT} bytes"


async def test_invalid_bodies_count_against_the_students_rate(
    servers: Servers,
    config: IngestSettings,
    world: World,
    photo: bytes,
    clean_db: Engine,
    redis_client: redis_lib.Redis,
) -> None:
    """One frame in five seconds: a refused body uses them as a stored one would."""
    base = servers.start(replace(config, student_rate_per_second=0.2))
    text = b"hello, I am a text file\n"
    async with httpx.AsyncClient(base_url=base) as client:
        first = await post_jpeg(client, world, text, seq=1)
        flood = [await post_jpeg(client, world, text, seq=2 + n) for n in range(5)]
        valid = await post_jpeg(client, world, photo, seq=10)
        other = await post_jpeg(client, world, photo, seq=1, token=world.token("s2"))
        multipart = await client.post(
            f"/v1/lessons/{world.lesson_id}/frames",
            data={"seq": "x", "captured_at": "now"},
            files={"image": ("f.jpg", photo, "image/jpeg")},
            headers={"Authorization": f"Bearer {world.token()}"},
        )
    assert first.status_code == 415
    assert [r.status_code for r in flood] == [429] * 5
    assert all(1 <= int(r.headers["Retry-After"]) <= 5 for r in flood)
    assert valid.status_code == 429  # the student's second was used by refused bodies
    assert other.status_code == 202  # another student's rate is its own
    assert multipart.status_code == 429
    assert [f.student_id for f in frames_of(clean_db, world)] == [world.students["s2"]]


async def test_a_refused_capture_time_counts_against_the_rate(
    servers: Servers, config: IngestSettings, world: World, photo: bytes
) -> None:
    base = servers.start(replace(config, student_rate_per_second=0.2))
    async with httpx.AsyncClient(base_url=base) as client:
        refused = await client.post(
            f"/v1/lessons/{world.lesson_id}/frames",
            params={"seq": "1", "captured_at": "2000-01-01T00:00:00Z"},
            content=photo,
            headers={"Authorization": f"Bearer {world.token()}", "Content-Type": "image/jpeg"},
        )
        valid = await post_jpeg(client, world, photo, seq=2)
    assert refused.status_code == 422
    assert valid.status_code == 429


async def test_invalid_websocket_frames_count_against_the_students_rate(
    servers: Servers, config: IngestSettings, world: World, photo: bytes
) -> None:
    base = servers.start(replace(config, student_rate_per_second=0.2))
    async with websockets.connect(ws_url(base, world, world.token())) as ws:
        answers = [await send_frame(ws, seq, b"hello, I am a text file\n") for seq in range(3)]
        answers.append(await send_frame(ws, 3, photo))
    codes = [a["error"]["code"] for a in answers]  # type: ignore[index]
    assert codes == ["unsupported_media_type", "rate_limited", "rate_limited", "rate_limited"]

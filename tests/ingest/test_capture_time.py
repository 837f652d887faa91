"""Capture times: only within the lesson so far, give or take the allowed clock skew.

Other times are refused with 422 on every path (raw body, multipart, batch,
WebSocket), before anything is stored: PostgreSQL would keep years 1 and 9999
as ±infinity, which no worker could load, and a year 2999 would outlive
retention.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
import redis as redis_lib
from sqlalchemy import Engine
from websockets.sync.client import connect

from services.ingest.config import IngestSettings
from tests.ingest.conftest import World
from tests.ingest.test_frames import frames_of

#: The skew the test ingest allows (the setting's default).
SKEW = dt.timedelta(seconds=IngestSettings.model_fields["clock_skew_seconds"].default)
#: The lesson of ``world`` started 10 minutes ago and ends in 50.
LESSON_START = dt.timedelta(minutes=-10)

ABSURD = {
    "year 1: PostgreSQL's -infinity": "0001-01-01T00:00:00Z",
    "year 1 and a second: no bucket before it": "0001-01-01T00:00:01Z",
    "year 1 east of UTC: before Python's range": "0001-01-01T00:00:00+05:00",
    "the last microsecond: PostgreSQL's infinity": "9999-12-31T23:59:59.999999Z",
    "year 9999 west of UTC: after Python's range": "9999-12-31T23:00:00-05:00",
    "year 2999: never purged": "2999-01-01T00:00:00Z",
}


def relative(offset: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) + offset).isoformat()


OUTSIDE = {
    **ABSURD,
    "before the lesson, beyond the skew": lambda: relative(
        LESSON_START - SKEW - dt.timedelta(minutes=1)
    ),
    "ahead of the server's clock, within the lesson": lambda: relative(
        SKEW + dt.timedelta(minutes=5)
    ),
}


def time_of(case: str) -> str:
    value = OUTSIDE[case]
    return value() if callable(value) else value


def post_raw(
    base_url: str, world: World, photo: bytes, seq: int, captured_at: str
) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/lessons/{world.lesson_id}/frames",
        params={"seq": str(seq), "captured_at": captured_at},
        content=photo,
        headers={"Authorization": f"Bearer {world.token()}", "Content-Type": "image/jpeg"},
        timeout=10,
    )


def assert_refused(error: dict[str, Any]) -> None:
    assert error["code"] == "validation_error"
    assert error["field"] == "captured_at"
    assert "clock skew" in error["message"]


def assert_nothing_kept(engine: Engine, world: World, redis_client: redis_lib.Redis) -> None:
    assert frames_of(engine, world) == []
    assert redis_client.keys("classpulse:frame:*") == []


@pytest.mark.parametrize("case", OUTSIDE)
def test_a_time_outside_the_lesson_is_422_and_nothing_is_kept(
    case: str,
    base_url: str,
    world: World,
    photo: bytes,
    clean_db: Engine,
    redis_client: redis_lib.Redis,
) -> None:
    answer = post_raw(base_url, world, photo, 1, time_of(case))
    assert answer.status_code == 422, answer.text
    assert_refused(answer.json()["error"])
    assert_nothing_kept(clean_db, world, redis_client)


def test_times_within_the_skew_of_the_lesson_and_the_clock_are_accepted(
    base_url: str, world: World, photo: bytes, clean_db: Engine
) -> None:
    margin = dt.timedelta(seconds=30)
    times = [
        relative(LESSON_START - SKEW + margin),  # a device a few minutes behind, at the start
        relative(SKEW - margin),  # a device a few minutes ahead
        relative(dt.timedelta(0)),
    ]
    answers = [post_raw(base_url, world, photo, seq, t) for seq, t in enumerate(times)]
    assert [a.status_code for a in answers] == [202, 202, 202], [a.text for a in answers]
    assert len(frames_of(clean_db, world)) == 3


def test_multipart_and_batch_refuse_a_time_outside_the_lesson(
    base_url: str,
    world: World,
    photo: bytes,
    clean_db: Engine,
    redis_client: redis_lib.Redis,
) -> None:
    auth = {"Authorization": f"Bearer {world.token()}"}
    url = f"{base_url}/v1/lessons/{world.lesson_id}"
    bad = ABSURD["the last microsecond: PostgreSQL's infinity"]
    single = httpx.post(
        f"{url}/frames",
        files={"image": ("frame.jpg", photo, "image/jpeg")},
        data={"seq": "1", "captured_at": bad},
        headers=auth,
    )
    assert single.status_code == 422, single.text
    assert_refused(single.json()["error"])
    batch = httpx.post(
        f"{url}/frames:batch",
        files=[
            ("image", ("a.jpg", photo, "image/jpeg")),
            ("image", ("b.jpg", photo, "image/jpeg")),
        ],
        data={"seq": ["2", "3"], "captured_at": [bad, relative(dt.timedelta(0))]},
        headers=auth,
    )
    assert batch.status_code == 207, batch.text
    first, second = batch.json()["results"]
    assert first["status"] == 422
    assert_refused(first["error"])
    assert second["status"] == 202
    assert [frame.seq for frame in frames_of(clean_db, world)] == [3]
    assert len(redis_client.keys("classpulse:frame:*")) == 1


def test_the_websocket_refuses_a_time_outside_the_lesson(
    base_url: str,
    world: World,
    photo: bytes,
    clean_db: Engine,
    redis_client: redis_lib.Redis,
) -> None:
    url = base_url.replace("http://", "ws://")
    url += f"/v1/lessons/{world.lesson_id}/stream?token={world.token()}"
    answers = []
    with connect(url) as ws:
        for seq, case in enumerate(OUTSIDE):
            ws.send(json.dumps({"seq": seq, "captured_at": time_of(case)}))
            ws.send(photo)
            while (message := json.loads(ws.recv(timeout=10)))["type"] not in {"ack", "error"}:
                pass
            answers.append(message)
    assert [a["type"] for a in answers] == ["error"] * len(OUTSIDE), answers
    for answer in answers:
        assert_refused(answer["error"])
    assert_nothing_kept(clean_db, world, redis_client)

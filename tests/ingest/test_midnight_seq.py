"""One frame per seq when a lesson runs over midnight UTC.

Frames are partitioned by the UTC day of their capture time, and a partitioned
table can only hold one seq per day partition; a lesson across midnight (a
morning lesson in East Asia) has frames in two. Two requests of one seq whose
capture times lie on either side of midnight must still come to one frame.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
import redis as redis_lib
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from shared.db.models import Frame
from tests.ingest.conftest import World, seed_world
from tests.ingest.test_frames import queued_refs

pytestmark = pytest.mark.asyncio

MIDNIGHT = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
BEFORE, AFTER = MIDNIGHT - dt.timedelta(seconds=1), MIDNIGHT + dt.timedelta(seconds=1)


@pytest.fixture
def overnight(clean_db: Engine) -> World:
    """A live lesson that began half an hour before today's midnight UTC."""
    started = MIDNIGHT - dt.timedelta(minutes=30)
    minutes = int((dt.datetime.now(dt.UTC) - started) / dt.timedelta(minutes=1)) + 60
    return seed_world(clean_db, starts_at=started, minutes=minutes)


async def post(
    client: httpx.AsyncClient, world: World, photo: bytes, seq: int, captured_at: dt.datetime
) -> httpx.Response:
    return await client.post(
        f"/v1/lessons/{world.lesson_id}/frames",
        params={"seq": str(seq), "captured_at": captured_at.isoformat()},
        content=photo,
        headers={"Authorization": f"Bearer {world.token()}", "Content-Type": "image/jpeg"},
    )


async def test_one_seq_on_either_side_of_midnight_is_one_frame(
    base_url: str,
    overnight: World,
    photo: bytes,
    clean_db: Engine,
    redis_client: redis_lib.Redis,
) -> None:
    seqs = range(1, 13)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        answers = await asyncio.gather(
            *(post(client, overnight, photo, seq, at) for seq in seqs for at in (BEFORE, AFTER))
        )
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    for seq in seqs:
        pair = [a.json() for a in answers if a.json()["seq"] == seq]
        assert len({a["frame_id"] for a in pair}) == 1, pair
        assert sorted(a["status"] for a in pair) == ["queued", "repeated"]
    with Session(clean_db) as session:
        per_seq = session.execute(
            select(Frame.seq, func.count())
            .where(Frame.lesson_id == overnight.lesson_id)
            .group_by(Frame.seq)
        ).all()
    assert dict(per_seq) == dict.fromkeys(seqs, 1)
    assert len(queued_refs(redis_client)) == len(seqs)
    assert len(redis_client.keys("classpulse:frame:*")) == len(seqs)


async def test_a_later_retry_across_midnight_repeats_the_first_frame(
    base_url: str, overnight: World, photo: bytes, clean_db: Engine
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        first = await post(client, overnight, photo, 7, BEFORE)
        again = await post(client, overnight, photo, 7, AFTER)
    assert first.status_code == again.status_code == 202
    assert again.json() == {**first.json(), "status": "repeated"}

"""Faults while a lesson runs through real processes: Redis restarted, ingest restarted,
a worker SIGKILLed. Clients retry as the classroom page does (same ``seq``);
afterwards every acknowledged frame is ``done`` exactly once, or ``expired`` if
it was still waiting when Redis stopped, and the frame statistics balance.

Redis here is a server of the test's own with persistence off (as production
runs it: it holds frame bytes, which never reach a disk), never the machine's.
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from classpulse.harness.processes import stop
from classpulse.harness.servers import OwnRedis
from tests.reliability.conftest import Realm, bearer, frame_stats, jpeg, wait_for_queue_to_drain
from tests.reliability.processes import Scratch, scratch_worker, service_process

pytestmark = pytest.mark.slow


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    (tmp_path / "redis").mkdir()
    server = OwnRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


class Student:
    """One student's frames, each retried with its seq until acknowledged."""

    def __init__(self, realm: Realm, photo: bytes) -> None:
        self.realm, self.photo = realm, photo
        self.seq = 0
        self.acknowledged: set[str] = set()
        self.refusals: list[int] = []

    def attempt(self, url: str, seq: int) -> httpx.Response | None:
        try:
            return httpx.post(
                f"{url}/v1/lessons/{self.realm.a.lesson_id}/frames",
                params={"seq": str(seq), "captured_at": dt.datetime.now(dt.UTC).isoformat()},
                content=self.photo,
                headers={**bearer(self.realm.token("s1")), "Content-Type": "image/jpeg"},
                timeout=10,
            )
        except httpx.TransportError:
            return None

    def send(self, url: str) -> httpx.Response | None:
        """A new frame; the answer (None: no answer) is returned, 202s remembered."""
        self.seq += 1
        return self.retry(url, self.seq)

    def retry(self, url: str, seq: int) -> httpx.Response | None:
        answer = self.attempt(url, seq)
        if answer is not None and answer.status_code == 202:
            self.acknowledged.add(answer.json()["frame_id"])
        elif answer is not None:
            self.refusals.append(answer.status_code)
        return answer


def test_acknowledged_frames_survive_redis_and_ingest_restarts_and_a_killed_worker(
    realm: Realm,
    analytics: httpx.Client,
    clean_db: Engine,
    own_redis: OwnRedis,
    pg_url: str,
    tmp_path: Path,
) -> None:
    scratch = Scratch(tmp_path / "scratch", tmp_path)
    env = scratch.env(
        pg_url,
        own_redis.url,
        CLASSPULSE_VISIBILITY_TIMEOUT_SECONDS="6",
        CLASSPULSE_TASK_TIME_LIMIT_SECONDS="5",
        # A message popped as Redis stops is lost to kombu; the sweep requeues its frame.
        CLASSPULSE_REQUEUE_AFTER_SECONDS="8",
        # Frames Redis lost in its restart expire after this (and the expiry task).
        CLASSPULSE_FRAME_TTL_SECONDS="45",
    )
    student = Student(realm, jpeg("obama.jpg"))
    worker = scratch_worker(scratch, env, "first")
    second = None
    try:
        with service_process("ingest", scratch, env) as url:
            for _ in range(4):
                assert student.send(url) is not None
            before_restart = set(student.acknowledged)
            # Redis goes away: ingest says 503 with Retry-After and is not ready.
            own_redis.stop()
            down = student.send(url)
            assert down is not None
            assert down.status_code == 503
            assert int(down.headers["Retry-After"]) >= 1
            assert httpx.get(f"{url}/readyz").status_code == 503
            own_redis.start()
            # The client's retry of the same seq is accepted once Redis is back.
            deadline = time.monotonic() + 30
            while (answer := student.retry(url, student.seq)) is None or answer.status_code != 202:
                assert time.monotonic() < deadline, answer and answer.text
                time.sleep(0.5)
            for _ in range(3):
                student.send(url)
        # Ingest restarted: frames acknowledged by the old process are kept.
        with service_process("ingest", scratch, env) as url:
            repeat = student.retry(url, 1)
            assert repeat is not None
            assert repeat.status_code == 202  # the first answer stands, nothing queued twice
            for _ in range(3):
                student.send(url)
            # The worker dies with SIGKILL while frames wait; another takes them over
            # (started first, so that no frame waits longer than its bytes' TTL).
            second = scratch_worker(scratch, env, "second")
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            for _ in range(2):
                student.send(url)
        wait_for_queue_to_drain(
            analytics, realm, second, scratch.logs / "second.log", 120, own_redis.url
        )
    finally:
        stop(worker)
        if second is not None:
            stop(second)

    assert len(student.acknowledged) == student.seq == 13
    assert set(student.refusals) == {503}
    with clean_db.connect() as conn:
        frames = conn.execute(text("SELECT id::text, status, failure_reason FROM frames")).all()
        # One event per frame here (one face each, or no face): written once.
        events = conn.execute(
            text(
                "SELECT frame_id, count(*) FILTER (WHERE face_index = 0) FROM face_events "
                "GROUP BY frame_id"
            )
        ).all()
    assert {frame_id for frame_id, _, _ in frames} == student.acknowledged
    # Redis keeps nothing on disk: frames still waiting when it stopped were lost
    # with it and end expired; every other frame is done.
    expired = {frame_id for frame_id, status, _ in frames if status == "expired"}
    assert expired <= before_restart
    assert {reason for _, status, reason in frames if status == "expired"} <= {"bytes_expired"}
    done = 13 - len(expired)
    stats = frame_stats(analytics, realm)
    assert stats["accepted"] == len(student.acknowledged)
    assert stats["by_status"] == {"done": done, "failed": 0, "expired": len(expired), "queued": 0}
    assert len(events) == done
    assert all(first == 1 for _, first in events)

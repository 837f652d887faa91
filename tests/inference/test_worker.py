"""Real Celery worker processes on the session's Redis and PostgreSQL.

Messages are sent the way ingest sends them (task name, queue ``frames``,
keyword ``ref``) from a plain Celery client, not from the worker's own app.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from classpulse.harness.processes import start_worker, stop
from shared.db.models import Frame, FrameStatus
from shared.schemas import FrameRef
from tests.conftest import send_task
from tests.inference.conftest import World

pytestmark = pytest.mark.slow


def wait_for(
    check: Callable[[], bool],
    timeout: float,
    message: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    details = log.read_text(errors="replace")[-3000:] if log else ""
    raise AssertionError(f"{message}\n{details}")


def worker_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CLASSPULSE_DATABASE_URL": database_url,
        "CLASSPULSE_REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def send(redis_url: str, ref: FrameRef) -> None:
    send_task(redis_url, "classpulse.process_frame", ref=ref.model_dump(mode="json"))


def status_of(world: World, frame_id: uuid.UUID) -> FrameStatus:
    with Session(world.engine) as session:
        status = session.scalar(select(Frame.status).where(Frame.id == frame_id))
        assert status is not None
        return status


class TcpProxy:
    """A forwarder to PostgreSQL that can be switched on while a worker runs."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: socket.socket | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        server.settimeout(0.2)
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.close()


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    url = make_url(pg_url)
    forwarder = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    yield forwarder
    forwarder.close()


def test_worker_retries_while_the_database_is_down_then_stores_and_keeps_serving(
    world: World, proxy: TcpProxy, pg_url: str, redis_url: str, tmp_path: Path, one_face: bytes
) -> None:
    # The worker's database is behind a proxy that is not listening yet.
    url = make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
    log = tmp_path / "worker.log"
    worker = start_worker("retry", worker_env(url, redis_url), log)
    try:
        first = world.add_frame(one_face)
        send(redis_url, first)
        wait_for(lambda: b"retrying" in log.read_bytes(), 30, "no retry logged", worker, log)
        assert status_of(world, first.frame_id) is FrameStatus.QUEUED
        proxy.start()  # the database comes back
        wait_for(
            lambda: status_of(world, first.frame_id) is FrameStatus.DONE,
            # Backoff with full jitter: the next retry may be up to 30 s away.
            90,
            "frame not stored after the database came back",
            worker,
            log,
        )
        assert len(world.events(first.frame_id)) == 1
        # And the worker keeps serving the queue as usual.
        second = world.add_frame(one_face)
        send(redis_url, second)
        wait_for(
            lambda: status_of(world, second.frame_id) is FrameStatus.DONE,
            30,
            "second frame not processed",
            worker,
            log,
        )
        (event,) = world.events(second.frame_id)
        assert event.probabilities is not None  # the real model labelled it
        # The worker process posed the face from the default detector's keypoints.
        assert event.yaw is not None
        assert event.facing is True
        assert world.redis.exists(first.redis_key) == 0
    finally:
        stop(worker)


def test_worker_killed_mid_task_leaves_the_frame_to_be_redelivered_once(
    world: World, pg_url: str, redis_url: str, tmp_path: Path, one_face: bytes
) -> None:
    # A short visibility timeout so that the abandoned message comes back fast.
    env = worker_env(
        pg_url,
        redis_url,
        CLASSPULSE_VISIBILITY_TIMEOUT_SECONDS="3",
        CLASSPULSE_TASK_TIME_LIMIT_SECONDS="2",
    )
    ref = world.add_frame(one_face)
    database = make_url(pg_url).database
    log = tmp_path / "worker.log"
    with world.engine.connect() as blocker:
        # Hold the frame row: the first worker's task blocks on it, mid-task.
        blocker.execute(select(Frame.id).where(Frame.id == ref.frame_id).with_for_update())
        first = start_worker("first", env, log)
        try:
            send(redis_url, ref)

            def waiting_on_the_lock() -> bool:
                with world.engine.connect() as conn:
                    waiting = conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE datname = :db AND wait_event_type = 'Lock'"
                        ),
                        {"db": database},
                    )
                return bool(waiting)

            wait_for(waiting_on_the_lock, 30, "the task never reached the frame", first, log)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        finally:
            stop(first)
        blocker.rollback()
    assert status_of(world, ref.frame_id) is FrameStatus.QUEUED

    second = start_worker("second", env, log)
    try:
        wait_for(
            lambda: status_of(world, ref.frame_id) is FrameStatus.DONE,
            60,
            "the abandoned frame was not redelivered",
            second,
            log,
        )
        assert len(world.events(ref.frame_id)) == 1
        time.sleep(1)
        assert len(world.events(ref.frame_id)) == 1
    finally:
        stop(second)


def test_worker_queues_again_a_frame_whose_message_was_lost(
    world: World, pg_url: str, redis_url: str, tmp_path: Path, one_face: bytes
) -> None:
    # A row and bytes, but no message: what a message lost as Redis went down leaves.
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    lost = world.add_frame(one_face, received_at=old)
    log = tmp_path / "worker.log"
    worker = start_worker("sweeper", worker_env(pg_url, redis_url), log)
    try:
        send_task(redis_url, "classpulse.requeue_orphaned_frames")
        wait_for(
            lambda: status_of(world, lost.frame_id) is FrameStatus.DONE,
            30,
            "the frame without a message was not processed",
            worker,
            log,
        )
        assert len(world.events(lost.frame_id)) == 1
        assert world.redis.exists(lost.redis_key) == 0
    finally:
        stop(worker)

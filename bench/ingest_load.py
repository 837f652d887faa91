"""Load test of the ingest API: N simulated students posting real 640x480 JPEGs.

Starts its own throwaway PostgreSQL database (on the local server) and Redis
server unless given URLs, seeds one live lesson with N consenting students,
starts uvicorn (``--workers`` processes, uvloop + httptools), and drives it
with async aiohttp clients in ``--client-procs`` processes for ``--duration``
seconds after a warm-up. Prints accepted frames/s, p50/p99 latency and answers
by status, then checks that every accepted frame is accounted for: a
``queued`` row, its bytes in Redis and its message in the queue (workers off),
or - with ``--drain`` and the inference worker present - a final status after
a worker drains the queue (lost = 0).

    .venv/bin/python -m bench.ingest_load --students 1000 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import io
import multiprocessing as mp
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis
from PIL import Image
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from classpulse.harness.factories import seed_lesson
from classpulse.harness.processes import (
    INGEST_APP,
    RunningApi,
    api_process,
    start_worker,
    stop,
)
from classpulse.harness.servers import OwnRedis
from shared.auth import issue_student_token
from shared.db import partitions
from shared.db.base import Base
from shared.db.engine import make_sync_engine
from shared.db.models import Frame, FrameStatus
from shared.schemas import FRAME_KEY_PREFIX, FRAME_QUEUE

ROOT = Path(__file__).resolve().parents[1]

MEDIA = ROOT / "media"
PHOTOS = ("obama.jpg", "biden.jpg", "two_people.jpg", "meds-aa-S001-01.jpg")
SECRET = "bench-secret-of-at-least-thirty-two-bytes"
#: Status recorded for a request that got no HTTP answer (connection reset, …).
TRANSPORT_ERROR = 0


def photos() -> list[bytes]:
    """Real photos as the 640x480 JPEGs a webcam client sends."""
    out = []
    for name in PHOTOS:
        with Image.open(MEDIA / name) as image:
            buffer = io.BytesIO()
            image.convert("RGB").resize((640, 480)).save(buffer, "JPEG", quality=80)
            out.append(buffer.getvalue())
    return out


@dataclass
class Stores:
    database_url: str
    redis_url: str
    #: What this run created and must remove: a database (admin engine, name), a Redis server.
    own_database: tuple[Engine, str] | None = None
    own_redis: OwnRedis | None = None


def open_stores(args: argparse.Namespace) -> Stores:
    """Given URLs, or a throwaway database and Redis server of this run's own."""
    stores = Stores(args.database_url, args.redis_url)
    database_url = args.database_url
    if database_url is None:
        server = os.environ.get(
            "CLASSPULSE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        )
        name = f"classpulse_bench_{os.getpid()}"
        admin = make_sync_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        database_url = server.rsplit("/", 1)[0] + f"/{name}"
        try:
            from shared.db.migrate import upgrade

            upgrade(database_url)
        except ImportError:
            engine = make_sync_engine(database_url)
            Base.metadata.create_all(engine)
            engine.dispose()
        stores.database_url, stores.own_database = database_url, (admin, name)
    if stores.redis_url is None:
        if shutil.which("redis-server") is None:
            raise SystemExit("redis-server not found: pass --redis-url")
        own_redis = OwnRedis()
        own_redis.start()
        stores.redis_url, stores.own_redis = own_redis.url, own_redis
    return stores


def close_stores(stores: Stores) -> None:
    if stores.own_redis is not None:
        stores.own_redis.kill()
    if stores.own_database is not None:
        admin, name = stores.own_database
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(
    database_url: str, students: int, over_midnight: bool = False
) -> tuple[uuid.UUID, list[str]]:
    """A live lesson with ``students`` enrolled, consenting students; their tokens.

    ``over_midnight``: the lesson began five minutes before the last midnight UTC,
    so its frames take ingest's path for lessons over two day partitions.
    """
    now = dt.datetime.now(dt.UTC)
    starts_at = (partitions.day_start(now) if over_midnight else now) - dt.timedelta(minutes=5)
    minutes = (now - starts_at) // dt.timedelta(minutes=1) + 120
    engine = make_sync_engine(database_url)
    try:
        seeded = seed_lesson(
            engine,
            students=[f"b{n}" for n in range(students)],
            starts_at=starts_at,
            minutes=minutes,
            title="Load",
            consenting=True,
            enrolled=True,
        )
    finally:
        engine.dispose()
    crosses = partitions.over_midnight(starts_at, starts_at + dt.timedelta(minutes=minutes))
    print(f"lesson over midnight UTC (ingest's locked INSERT): {'yes' if crosses else 'no'}")
    tokens = [
        issue_student_token(SECRET, student_id=i, lesson_id=seeded.lesson_id, ttl_seconds=7200)
        for i in seeded.students.values()
    ]
    return seeded.lesson_id, tokens


def serve_ingest(
    stores: Stores, workers: int, rate: float, log: Path
) -> contextlib.AbstractContextManager[RunningApi]:
    """Ingest as deployed for load: ``workers`` uvicorn processes on uvloop and httptools,
    a deep listen backlog and keep-alive that outlasts the clients' pauses."""
    env = {
        **os.environ,
        "CLASSPULSE_DATABASE_URL": stores.database_url,
        "CLASSPULSE_REDIS_URL": stores.redis_url,
        "CLASSPULSE_TOKEN_SECRET": SECRET,
        "CLASSPULSE_STUDENT_RATE_PER_SECOND": str(rate),
        "CLASSPULSE_QUEUE_LIMIT": "1000000",
    }
    options = ["--workers", str(workers), "--loop", "uvloop", "--http", "httptools"]
    options += ["--timeout-keep-alive", "30", "--backlog", "4096"]
    return api_process(INGEST_APP, env, log, log_level="warning", extra=options)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (uvicorn workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        own_pid = int(stat.parent.name)
        if own_pid == pid or int(fields[1]) == pid:  # fields[1] is the parent pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


@dataclass
class ClientResult:
    latencies: list[float]
    statuses: Counter[int]
    accepted: list[str]
    measured_seconds: float


async def _drive(
    url: str,
    lesson_id: uuid.UUID,
    tokens: list[str],
    first_seq: int,
    concurrency: int,
    warmup: float,
    duration: float,
    images: list[bytes],
) -> ClientResult:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    next_student = 0
    seqs = [first_seq] * len(tokens)
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + duration
    # aiohttp, not httpx: at 64 connections httpx spent about 6.5 ms of CPU per
    # request, so the load generator, not ingest, set the pace.
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:

        async def student_loop() -> None:
            nonlocal next_student
            while (now := time.perf_counter()) < stop_at:
                index = next_student % len(tokens)
                next_student += 1
                seqs[index] += 1
                sent = time.perf_counter()
                try:
                    async with client.post(
                        f"/v1/lessons/{lesson_id}/frames",
                        params={
                            "seq": seqs[index],
                            "captured_at": dt.datetime.now(dt.UTC).isoformat(),
                        },
                        data=images[index % len(images)],
                        headers={
                            "Authorization": f"Bearer {tokens[index]}",
                            "Content-Type": "image/jpeg",
                        },
                    ) as response:
                        status = response.status
                        body = await response.json() if status == 202 else None
                except (aiohttp.ClientError, TimeoutError):
                    statuses[TRANSPORT_ERROR] += 1  # counted, never retried: a retry reuses the seq
                    continue
                done = time.perf_counter()
                if body is not None:
                    accepted.append(body["frame_id"])
                if now >= measure_from:
                    latencies.append(done - sent)
                    statuses[status] += 1

        await asyncio.gather(*(student_loop() for _ in range(concurrency)))
    return ClientResult(latencies, statuses, accepted, duration)


def _client_process(args: tuple[Any, ...]) -> ClientResult:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_drive(*args))


def drain_with_worker(stores: Stores, lesson_id: uuid.UUID, timeout: float, logs: Path) -> None:
    if not (ROOT / "services" / "inference" / "celery_app.py").exists():
        print("drain: services/inference is not present; skipped")
        return
    env = {
        **os.environ,
        "CLASSPULSE_DATABASE_URL": stores.database_url,
        "CLASSPULSE_REDIS_URL": stores.redis_url,
    }
    # Celery's default pool: one process per core, as a deployment's worker.
    worker = start_worker("drain", env, logs / "worker.log", pool=None)
    engine = make_sync_engine(stores.database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with Session(engine) as session:
                queued = session.scalar(
                    select(func.count()).where(
                        Frame.lesson_id == lesson_id, Frame.status == FrameStatus.QUEUED
                    )
                )
            print(f"drain: {queued} frames still queued")
            if queued == 0:
                break
            time.sleep(5)
    finally:
        stop(worker)
        engine.dispose()


def account(stores: Stores, lesson_id: uuid.UUID, accepted: list[str], drained: bool) -> int:
    """Accepted frames with no row, or (workers off) without bytes or a message. Returns lost."""
    engine = make_sync_engine(stores.database_url)
    with Session(engine) as session:
        rows = dict(
            session.execute(
                select(Frame.id, Frame.status).where(Frame.lesson_id == lesson_id)
            ).all()
        )
    engine.dispose()
    by_status = Counter(str(s) for s in rows.values())
    missing = [f for f in accepted if uuid.UUID(f) not in rows]
    client = redis.Redis.from_url(stores.redis_url)
    queued_messages = client.llen(FRAME_QUEUE)
    stored = sum(1 for _ in client.scan_iter(f"{FRAME_KEY_PREFIX}*", count=1000))
    print(
        f"accounting: accepted={len(accepted)} rows={len(rows)} statuses={dict(by_status)} "
        f"queue={queued_messages} stored_bytes={stored}"
    )
    lost = len(missing)
    if not drained:
        lost += max(0, len(accepted) - queued_messages) + max(0, len(accepted) - stored)
    else:
        lost += by_status.get(FrameStatus.QUEUED.value, 0)
    client.delete(FRAME_QUEUE)  # flush the queue we filled
    client.close()
    return lost


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument(
        "--concurrency", type=int, default=64, help="requests in flight per client process"
    )
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=2.0, help="per-student frames/s limit")
    parser.add_argument(
        "--url", help="an already running ingest (seeded with this script's secret)"
    )
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument(
        "--drain", action="store_true", help="then drain with a real inference worker"
    )
    parser.add_argument("--drain-timeout", type=float, default=900)
    parser.add_argument(
        "--over-midnight",
        action="store_true",
        help="a lesson that began before midnight UTC (frames inserted under a per-seq lock)",
    )
    args = parser.parse_args()

    stores = open_stores(args)
    logs = Path(tempfile.mkdtemp(prefix="classpulse-ingest-load-"))
    # Our ingest stops once the load is measured, before any drain.
    ingest = contextlib.ExitStack()
    try:
        lesson_id, tokens = seed(stores.database_url, args.students, args.over_midnight)
        url, server_pid = args.url, None
        if url is None:
            served = ingest.enter_context(
                serve_ingest(stores, args.workers, args.rate, logs / "ingest.log")
            )
            url, server_pid = served.url, served.process.pid
        images = photos()
        share = [tokens[i :: args.client_procs] for i in range(args.client_procs)]
        jobs = [
            (url, lesson_id, share[i], 0, args.concurrency, args.warmup, args.duration, images)
            for i in range(args.client_procs)
        ]
        with mp.get_context("spawn").Pool(args.client_procs) as pool:
            pending = pool.map_async(_client_process, jobs)
            # Server CPU over the measured window: ingest's own cost per frame,
            # whatever share of the cores other work leaves it.
            time.sleep(args.warmup + 1.0)  # + process start-up of the clients
            cpu_start = cpu_seconds(server_pid) if server_pid is not None else None
            time.sleep(args.duration - 1.0)
            cpu_used = (
                cpu_seconds(server_pid) - cpu_start
                if server_pid is not None and cpu_start is not None
                else None
            )
            results = pending.get()
        latencies = sorted(x for r in results for x in r.latencies)
        statuses = sum((r.statuses for r in results), Counter())
        accepted = [f for r in results for f in r.accepted]
        ok = statuses.get(202, 0)
        print(
            f"ingest load: {args.students} students, "
            f"{args.client_procs}x{args.concurrency} in flight, "
            f"{args.workers} uvicorn worker(s), {args.duration:.0f} s measured, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(f"accepted: {ok / args.duration:.0f} frames/s ({ok} frames)")
        if latencies:
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
            print(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        print(f"answers by status: {dict(sorted(statuses.items()))}")
        if cpu_used is not None and ok:
            per_frame = cpu_used / (ok * (args.duration - 1.0) / args.duration)
            print(
                f"ingest CPU: {per_frame * 1000:.2f} ms per accepted frame "
                f"(= {1 / per_frame:.0f} frames/s per fully available core)"
            )
        ingest.close()
        if args.drain:
            drain_with_worker(stores, lesson_id, args.drain_timeout, logs)
        print(f"lost: {account(stores, lesson_id, accepted, args.drain)}")
        print(f"logs in {logs}")
    finally:
        ingest.close()
        close_stores(stores)


if __name__ == "__main__":
    main()

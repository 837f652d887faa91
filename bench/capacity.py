"""Worker capacity: frames/s of 1 and 2 inference worker processes, PostgreSQL writes,
Redis memory per queued frame.

On a throwaway database (local PostgreSQL) and Redis server, for each worker
count in ``--workers``: that many real inference workers (Celery, solo pool,
one process each) start on an empty queue; then ``--frames`` real 640x480
JPEGs are queued as ingest queues them (bytes with a TTL, a ``queued`` row, the
task message through ``services.ingest.queue.FrameQueue``), as fast as this
script can, and the run ends when every frame is finished. Printed per run:
frames/s from the first publish to the last frame finished, the workers' CPU
per frame, PostgreSQL's commits and rows written per second over that window
(``pg_stat_database`` of the throwaway database), and, from the first run,
Redis memory per queued frame (``used_memory`` before and after queueing with
no worker running; the frame's bytes and its message apart).

    python -m bench.capacity --frames 600 --workers 1 2
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import redis
from sqlalchemy import Engine, func, select, text

from bench.ingest_load import close_stores, open_stores, photos, seed
from bench.soak import service_env
from classpulse.harness.factories import store_frame
from classpulse.harness.processes import start_worker, stop
from services.ingest.queue import FrameQueue, producer_app
from shared.db.engine import make_sync_engine
from shared.db.models import Frame, FrameStatus, Student
from shared.schemas import FRAME_QUEUE, FrameRef, frame_key

FRAME_TTL_SECONDS = 3600


def store_frames(
    engine: Engine,
    client: redis.Redis,
    lesson_id: uuid.UUID,
    students: list[uuid.UUID],
    count: int,
    first_seq: int,
) -> list[FrameRef]:
    """``count`` frames stored as ingest stores them (a ``queued`` row, the bytes with a
    TTL), not yet queued; their queue messages."""
    images = photos()
    return [
        store_frame(
            engine,
            client,
            lesson_id,
            students[n % len(students)],
            images[n % len(images)],
            seq=first_seq + n,
            ttl_seconds=FRAME_TTL_SECONDS,
        )
        for n in range(count)
    ]


def pg_counters(engine: Engine) -> tuple[int, int]:
    """(commits, rows inserted + updated) of this database so far."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT xact_commit, tup_inserted + tup_updated FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
        ).one()
    return int(row[0]), int(row[1])


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def redis_memory_per_frame(client: redis.Redis, ids: list[uuid.UUID], before: int) -> str:
    used = int(client.info("memory")["used_memory"])
    message = int(client.memory_usage(FRAME_QUEUE) or 0)
    sample = [int(client.memory_usage(frame_key(i)) or 0) for i in ids[:50]]
    return (
        f"Redis used_memory +{(used - before) / len(ids) / 1024:.1f} KiB per queued frame "
        f"(its bytes {sum(sample) / len(sample) / 1024:.1f} KiB, its message "
        f"{message / len(ids):.0f} B)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    stores = open_stores(argparse.Namespace(database_url=None, redis_url=None))
    logs = Path(tempfile.mkdtemp(prefix="classpulse-capacity-"))
    client = redis.Redis.from_url(stores.redis_url)
    queue = FrameQueue(
        redis.asyncio.Redis.from_url(stores.redis_url), producer_app(stores.redis_url)
    )
    engine = make_sync_engine(stores.database_url)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        lesson_id, _ = seed(stores.database_url, students=100)
        with engine.connect() as conn:
            students = list(conn.scalars(select(Student.id)))
        env = service_env(stores.database_url, stores.redis_url, FRAME_TTL_SECONDS)
        # Redis memory of queued frames, no worker running.
        before = int(client.info("memory")["used_memory"])
        sample = store_frames(engine, client, lesson_id, students, 200, 10**6)
        for ref in sample:
            queue.publish(ref)
        print(redis_memory_per_frame(client, [r.frame_id for r in sample], before), flush=True)
        client.delete(FRAME_QUEUE, *(r.redis_key for r in sample))
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM frames"))
        seq = 0
        for count in args.workers:
            refs = store_frames(engine, client, lesson_id, students, args.frames, seq)
            ids = [ref.frame_id for ref in refs]
            seq += args.frames
            names = [f"cap{count}-{i}" for i in range(count)]
            workers = [start_worker(name, env, logs / f"worker-{name}.log") for name in names]
            procs = [psutil.Process(w.pid) for w in workers]
            cpu0, (commits0, rows0) = cpu_seconds(procs), pg_counters(engine)
            started = time.perf_counter()
            for ref in refs:
                queue.publish(ref)
            queued_in = time.perf_counter() - started
            deadline = started + args.timeout
            while time.perf_counter() < deadline:
                with engine.connect() as conn:
                    left = conn.scalar(
                        select(func.count())
                        .select_from(Frame)
                        .where(Frame.id.in_(ids), Frame.status == FrameStatus.QUEUED)
                    )
                if not left:
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(procs) - cpu0
            commits1, rows1 = pg_counters(engine)
            print(
                f"{count} worker process(es): {args.frames} frames in {elapsed:.1f} s "
                f"(queued in {queued_in:.1f} s): {args.frames / elapsed:.1f} frames/s; "
                f"worker CPU {cpu / args.frames * 1000:.1f} ms per frame; PostgreSQL "
                f"{(commits1 - commits0) / elapsed:.0f} commits/s, "
                f"{(rows1 - rows0) / elapsed:.0f} rows written/s"
                + (f"; {left} frames still queued" if left else ""),
                flush=True,
            )
            for worker in workers:
                stop(worker)
            workers = []
    finally:
        for worker in workers:
            stop(worker)
        queue.close()
        client.close()
        engine.dispose()
        close_stores(stores)


if __name__ == "__main__":
    main()

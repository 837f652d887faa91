"""Soak run of the whole system with faults injected on a schedule.

Ingest, analytics and two inference workers run as processes on a throwaway
PostgreSQL database (on the local server) and a Redis server of this run's own,
run as production runs it: persistence off, since it holds frame bytes (a
restart loses the frames waiting, which end ``expired``; the machine's Redis is
never touched). Simulated students send real 640x480 JPEGs at a steady
total rate for ``--duration`` seconds. Meanwhile one worker is SIGKILLed and
restarted every ``--kill-every`` seconds, and Redis is shut down once for
``--redis-down`` seconds halfway through. Clients retry 429/503 and transport
errors with the same ``seq``, as the classroom page does.

Worker "a" runs the periodic tasks (beat). Afterwards the queue is drained
(the requeue and expiry tasks are sent while waiting) and
every acknowledged frame is looked up: printed are frames accepted, done,
failed by reason, expired, still queued and lost (acknowledged but not in a
final state), answers by status, p50/p99 ingest latency of acknowledged
frames, and the RSS of the worker that is never killed, sampled through the run.

    .venv/bin/python -m bench.soak --rate 50 --duration 600
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.ingest_load import SECRET, close_stores, open_stores, photos, seed
from classpulse.harness.factories import add_key
from classpulse.harness.processes import (
    ANALYTICS_APP,
    INGEST_APP,
    api_process,
    rss_mib,
    start_worker,
    stop,
)
from classpulse.harness.servers import OwnRedis
from services.inference.process import REQUEUED_LOG
from shared.db.engine import make_sync_engine
from shared.db.models import Frame, KeyRole, Lesson, SchoolClass
from shared.schemas import FRAME_QUEUE

#: Status recorded for an attempt that got no HTTP answer.
TRANSPORT_ERROR = 0
RETRYABLE = {TRANSPORT_ERROR, 429, 503}


def service_env(database_url: str, redis_url: str, frame_ttl: int) -> dict[str, str]:
    """The services' settings in a benchmark: no client limit gets in the way of the load."""
    return {
        **os.environ,
        "CLASSPULSE_DATABASE_URL": database_url,
        "CLASSPULSE_REDIS_URL": redis_url,
        "CLASSPULSE_TOKEN_SECRET": SECRET,
        "CLASSPULSE_STUDENT_RATE_PER_SECOND": "100",
        "CLASSPULSE_QUEUE_LIMIT": "1000000",
        "CLASSPULSE_FRAME_TTL_SECONDS": str(frame_ttl),
        # A killed worker's message comes back after this long.
        "CLASSPULSE_VISIBILITY_TIMEOUT_SECONDS": "30",
        "CLASSPULSE_TASK_TIME_LIMIT_SECONDS": "20",
        "PYTHONUNBUFFERED": "1",
    }


def start_soak_worker(
    name: str, env: dict[str, str], logs: Path, *, beat: bool = False
) -> subprocess.Popen[bytes]:
    """Worker ``name``; with ``beat`` also the periodic tasks (expiry, lost-message
    requeue), as `classpulse up`'s first worker runs them."""
    schedule = logs / "celerybeat-schedule" if beat else None
    # Longer than the harness default: worker b restarts under full load.
    return start_worker(
        f"soak-{name}", env, logs / f"worker-{name}.log", beat_schedule=schedule, timeout=120
    )


@dataclass
class Load:
    """What the simulated students saw."""

    attempts: Counter[int] = field(default_factory=Counter)
    acknowledged: dict[str, float] = field(default_factory=dict)
    gave_up: int = 0
    #: Answers with a 5xx other than 503 (never expected).
    server_errors: int = 0


#: Requests the load generator has open at once (classroom clients send one at a time).
MAX_IN_FLIGHT = 64


async def send_frame(
    client: aiohttp.ClientSession,
    in_flight: asyncio.Semaphore,
    load: Load,
    lesson_id: uuid.UUID,
    token: str,
    seq: int,
    image: bytes,
    give_up_at: float,
) -> None:
    """One frame, retried with its seq until acknowledged, refused for good, or too late."""
    captured_at = dt.datetime.now(dt.UTC).isoformat()
    while True:
        retry_after, body, elapsed = 1.0, None, 0.0
        try:
            async with in_flight:
                started = time.perf_counter()
                async with client.post(
                    f"/v1/lessons/{lesson_id}/frames",
                    params={"seq": seq, "captured_at": captured_at},
                    data=image,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"},
                ) as answer:
                    status = answer.status
                    retry_after = float(answer.headers.get("Retry-After", "1"))
                    body = await answer.json() if status == 202 else None
                    elapsed = time.perf_counter() - started
        except (aiohttp.ClientError, TimeoutError):
            status = TRANSPORT_ERROR
        load.attempts[status] += 1
        if body is not None:
            load.acknowledged[body["frame_id"]] = elapsed
            return
        if status >= 500 and status != 503:
            load.server_errors += 1
        if status not in RETRYABLE or time.monotonic() + retry_after > give_up_at:
            load.gave_up += 1
            return
        await asyncio.sleep(retry_after)


async def drive(
    url: str, lesson_id: uuid.UUID, tokens: list[str], rate: float, duration: float
) -> Load:
    """``rate`` frames per second in total, students in turn, for ``duration`` seconds."""
    load, images = Load(), photos()
    total = int(rate * duration)
    seqs = [0] * len(tokens)
    # Requests beyond the connections wait here, not in the client's pool.
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
    # aiohttp rather than httpx: httpx took several ms of CPU per request,
    # CPU that ingest and the workers needed.
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:
        start = time.monotonic()
        give_up_at = start + duration + 120
        tasks = []
        for n in range(total):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            student = n % len(tokens)
            seqs[student] += 1
            tasks.append(
                asyncio.create_task(
                    send_frame(
                        client,
                        in_flight,
                        load,
                        lesson_id,
                        tokens[student],
                        seqs[student],
                        images[n % len(images)],
                        give_up_at,
                    )
                )
            )
        await asyncio.gather(*tasks)
    return load


@dataclass
class Faults:
    worker_kills: int = 0
    redis_restarts: int = 0


async def inject_faults(
    args: argparse.Namespace,
    own_redis: OwnRedis,
    workers: dict[str, subprocess.Popen[bytes]],
    env: dict[str, str],
    logs: Path,
    faults: Faults,
) -> None:
    """Kill worker "b" every ``--kill-every`` s; stop Redis once, halfway through."""
    start = time.monotonic()
    redis_at = start + args.duration / 2
    next_kill = start + args.kill_every
    redis_done = args.redis_down <= 0
    while time.monotonic() < start + args.duration:
        now = time.monotonic()
        if now >= next_kill:
            workers["b"].send_signal(signal.SIGKILL)
            workers["b"].wait()
            faults.worker_kills += 1
            print(f"[{now - start:6.1f}s] worker b killed; restarting", flush=True)
            workers["b"] = await asyncio.to_thread(start_soak_worker, "b", env, logs)
            next_kill += args.kill_every
        if not redis_done and now >= redis_at:
            print(f"[{now - start:6.1f}s] redis stopped for {args.redis_down:g}s", flush=True)
            await asyncio.to_thread(own_redis.stop)
            await asyncio.sleep(args.redis_down)
            await asyncio.to_thread(own_redis.start)
            faults.redis_restarts += 1
            redis_done = True
            print(f"[{time.monotonic() - start:6.1f}s] redis back", flush=True)
        await asyncio.sleep(0.5)


def lesson_stats(analytics_url: str, lesson_id: uuid.UUID, key: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{analytics_url}/v1/lessons/{lesson_id}/frames/stats",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    answer.raise_for_status()
    stats: dict[str, Any] = answer.json()
    return stats


def drain(
    analytics_url: str, lesson_id: uuid.UUID, key: str, redis_url: str, timeout: float
) -> dict[str, Any]:
    """Wait until no frame is queued, sending the requeue and expiry tasks now and then."""
    celery = Celery("soak", broker=redis_url)
    deadline = time.monotonic() + timeout
    next_expiry = 0.0
    try:
        while True:
            stats = lesson_stats(analytics_url, lesson_id, key)
            queued = stats["by_status"]["queued"]
            if queued == 0 or time.monotonic() > deadline:
                return stats
            if time.monotonic() >= next_expiry:
                celery.send_task("classpulse.requeue_orphaned_frames", queue=FRAME_QUEUE)
                celery.send_task("classpulse.expire_frames", queue=FRAME_QUEUE)
                next_expiry = time.monotonic() + 15
            time.sleep(2)
    finally:
        celery.close()


def lms_key(database_url: str, lesson_id: uuid.UUID) -> str:
    engine = make_sync_engine(database_url)
    with Session(engine) as session:
        organisation_id = session.scalar(
            select(SchoolClass.organisation_id)
            .join(Lesson, Lesson.class_id == SchoolClass.id)
            .where(Lesson.id == lesson_id)
        )
        assert organisation_id is not None
        key = add_key(session, organisation_id, KeyRole.LMS)
        session.commit()
    engine.dispose()
    return key


def final_states(database_url: str, acknowledged: dict[str, float]) -> Counter[str]:
    """Status of every acknowledged frame ("missing" when it has no row)."""
    engine = make_sync_engine(database_url)
    with Session(engine) as session:
        rows = dict(session.execute(select(Frame.id, Frame.status)).all())
    engine.dispose()
    return Counter(
        str(rows[uuid.UUID(f)]) if uuid.UUID(f) in rows else "missing" for f in acknowledged
    )


async def sample_rss(pid: int, every: float, into: list[float]) -> None:
    """Append the RSS of process ``pid`` every ``every`` seconds until cancelled: a
    steady rise after warm-up is a leak, a plateau is caches and allocator arenas."""
    while True:
        into.append(rss_mib(pid))
        await asyncio.sleep(every)


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def run(args: argparse.Namespace, work: Path) -> None:
    logs = work / "logs"
    logs.mkdir()
    (work / "redis").mkdir()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server not found")
    own_redis = OwnRedis(work / "redis")
    own_redis.start()
    stores = open_stores(argparse.Namespace(database_url=None, redis_url=own_redis.url))
    workers: dict[str, subprocess.Popen[bytes]] = {}
    apis = contextlib.ExitStack()
    try:
        lesson_id, tokens = seed(stores.database_url, args.students)
        key = lms_key(stores.database_url, lesson_id)
        env = service_env(stores.database_url, own_redis.url, args.frame_ttl)
        ingest_url = apis.enter_context(
            api_process(INGEST_APP, env, logs / "ingest.log", log_level="warning")
        ).url
        analytics_url = apis.enter_context(
            api_process(ANALYTICS_APP, env, logs / "analytics.log", log_level="warning")
        ).url
        workers["a"] = start_soak_worker("a", env, logs, beat=True)
        workers["b"] = start_soak_worker("b", env, logs)
        print(
            f"soak: {args.rate:g} frames/s from {args.students} students for "
            f"{args.duration:g}s; logs in {logs}",
            flush=True,
        )
        started = time.monotonic()
        faults = Faults()
        load_task = asyncio.create_task(
            drive(ingest_url, lesson_id, tokens, args.rate, args.duration)
        )
        await asyncio.sleep(min(10.0, args.duration / 4))
        rss: list[float] = []
        sampler = asyncio.create_task(sample_rss(workers["a"].pid, args.rss_every, rss))
        await inject_faults(args, own_redis, workers, env, logs, faults)
        load = await load_task
        load_seconds = time.monotonic() - started
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        stats = drain(analytics_url, lesson_id, key, own_redis.url, args.drain_timeout)
        rss.append(rss_mib(workers["a"].pid))
        states = final_states(stores.database_url, load.acknowledged)
        requeued = sum(
            log.read_text(errors="replace").count(REQUEUED_LOG) for log in logs.glob("worker-*.log")
        )
    finally:
        for worker in workers.values():
            stop(worker)
        apis.close()
        own_redis.stop()
        close_stores(stores)

    by_status = stats["by_status"]
    lost = states["missing"] + states["queued"]
    latencies = sorted(load.acknowledged.values())
    print(f"\nload: {load_seconds:.0f}s, attempts by status {dict(sorted(load.attempts.items()))}")
    print(f"faults: {faults.worker_kills} worker kills, {faults.redis_restarts} Redis restarts")
    print(
        f"frames: accepted={len(load.acknowledged)} done={by_status['done']} "
        f"failed={by_status['failed']} {stats['failed_by_reason']} "
        f"expired={by_status['expired']} queued={by_status['queued']} "
        f"lost={lost} gave_up={load.gave_up}"
    )
    print(f"5xx other than 503: {load.server_errors}")
    print(
        f"ingest latency of acknowledged frames: p50={percentile(latencies, 50) * 1000:.0f} ms "
        f"p99={percentile(latencies, 99) * 1000:.0f} ms"
    )
    print(f"frames whose message was lost, queued again: {requeued}")
    growth = (rss[-1] - rss[0]) / rss[0] * 100
    print(f"worker a RSS: start={rss[0]:.0f} MiB end={rss[-1]:.0f} MiB ({growth:+.1f} %)")
    series = " ".join(f"{value:.0f}" for value in rss)
    print(f"worker a RSS every {args.rss_every:g} s under load, then after the drain: {series} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=50.0, help="frames per second in total")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--kill-every", type=float, default=60.0, help="seconds between kills")
    parser.add_argument("--redis-down", type=float, default=5.0, help="0: no Redis restart")
    parser.add_argument("--frame-ttl", type=int, default=120, help="CLASSPULSE_FRAME_TTL_SECONDS")
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument(
        "--rss-every", type=float, default=60.0, help="seconds between RSS samples of worker a"
    )
    args = parser.parse_args()
    if args.rss_every <= 0:
        parser.error("--rss-every must be more than 0")
    with tempfile.TemporaryDirectory(prefix="classpulse-soak-") as work:
        asyncio.run(run(args, Path(work)))


if __name__ == "__main__":
    main()

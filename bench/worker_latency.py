"""Worker end to end: a frame in Redis → its events committed and announced.

Starts one real inference worker (Celery, solo pool) on a throwaway database
and Redis server, then enqueues real 640x480 webcam-sized JPEGs exactly as
ingest does (bytes with a TTL, a ``queued`` row, the Celery message) at a
steady rate, and times each frame from its enqueue to the live notice the
worker publishes after its commit. With ``--crops`` it enqueues what the
classroom page sends instead: each photo's face-crops body
(``bench.face_crops``). The worker process's CPU time over the run, per frame
done, says what one frame costs it with the database and queue work included.
Usage:

    python -m bench.worker_latency [--rate 20] [--duration 30] [--crops]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import redis

from bench.face_crops import crops_body
from bench.ingest_load import close_stores, open_stores, photos, seed
from bench.soak import service_env
from classpulse.harness.factories import store_frame
from classpulse.harness.processes import start_worker, stop
from services.ingest.queue import FrameQueue, producer_app
from shared.db.engine import make_sync_engine
from shared.db.models import Student
from shared.face_crops import media_type
from shared.schemas import live_channel
from shared.vision.detect import make_detector

FRAME_TTL_SECONDS = 600


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def decoded(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image, dtype=np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=20.0, help="frames per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--crops", action="store_true", help="face-crops bodies, not frames")
    args = parser.parse_args()

    stores = open_stores(argparse.Namespace(database_url=None, redis_url=None))
    worker = None
    try:
        lesson_id, _ = seed(stores.database_url, students=20)
        engine = make_sync_engine(stores.database_url)
        with engine.connect() as conn:
            students = list(conn.scalars(Student.__table__.select().with_only_columns(Student.id)))
        worker = start_worker(
            "latency",
            service_env(stores.database_url, stores.redis_url, FRAME_TTL_SECONDS),
            Path(tempfile.mkdtemp(prefix="classpulse-latency-")) / "worker.log",
        )
        client = redis.Redis.from_url(stores.redis_url)
        # Published as ingest publishes (its blocking half: no event loop here).
        queue = FrameQueue(
            redis.asyncio.Redis.from_url(stores.redis_url), producer_app(stores.redis_url)
        )
        sent: dict[str, float] = {}
        done: dict[str, float] = {}
        listener = client.pubsub()
        listener.subscribe(live_channel(lesson_id))

        listening = threading.Event()
        listening.set()

        def listen() -> None:
            while listening.is_set():
                message = listener.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if message is not None:
                    done[json.loads(message["data"])["frame_id"]] = time.perf_counter()

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        images, kind = photos(), "image/jpeg"
        if args.crops:
            detector = make_detector("blazeface-full")
            images = [crops_body(decoded(jpeg), detector) for jpeg in images]
            kind = media_type("image/png")
        cpu = psutil.Process(worker.pid)
        cpu_before = sum(cpu.cpu_times()[:2])
        total = int(args.rate * args.duration)
        start = time.perf_counter()
        for n in range(total):
            # A steady rate: wait for this frame's slot rather than sleeping a fixed time.
            time.sleep(max(0.0, start + n / args.rate - time.perf_counter()))
            ref = store_frame(
                engine,
                client,
                lesson_id,
                students[n % len(students)],
                images[n % len(images)],
                seq=n,
                media_type=kind,
                ttl_seconds=FRAME_TTL_SECONDS,
            )
            sent[str(ref.frame_id)] = time.perf_counter()
            queue.publish(ref)
        deadline = time.perf_counter() + 60
        while len(done) < total and time.perf_counter() < deadline:
            time.sleep(0.1)
        cpu_seconds = sum(cpu.cpu_times()[:2]) - cpu_before
        latencies = [(done[f] - t) * 1000 for f, t in sent.items() if f in done]
        print(f"worker end to end at {args.rate:g} frames/s for {args.duration:g} s "
              f"({'face crops' if args.crops else 'whole frames'}, median body "
              f"{sorted(map(len, images))[len(images) // 2]} bytes): "
              f"{len(latencies)} of {total} frames done")  # fmt: skip
        if done:
            print(f"  worker CPU {cpu_seconds / len(done) * 1000:.2f} ms per frame done")
        if latencies:
            figures = {q: percentile(latencies, q) for q in (50, 95, 99)}
            print(
                "  ".join(f"p{q} {v:.1f} ms" for q, v in figures.items())
                + f"  max {max(latencies):.1f} ms"
            )
        listening.clear()
        thread.join()
        listener.close()
        client.close()
        queue.close()
        engine.dispose()
    finally:
        if worker is not None:
            stop(worker)
        close_stores(stores)


if __name__ == "__main__":
    main()

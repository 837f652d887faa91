"""A minimal real Celery worker app for queue-contract tests.

It registers the inference task's name and records each ``ref`` it receives in
a Redis list, so a test can prove that ingest's messages are consumed by Celery.
"""

from __future__ import annotations

import json
import os

import redis
from celery import Celery

BROKER = os.environ.get("ECHO_BROKER_URL", "redis://127.0.0.1:6379/0")
RECEIVED = "echo:received"

app = Celery("echo", broker=BROKER)
app.conf.update(task_acks_late=True, worker_hijack_root_logger=False)


@app.task(name="classpulse.process_frame")
def process_frame(ref: dict[str, object]) -> None:
    client = redis.Redis.from_url(BROKER)
    client.rpush(RECEIVED, json.dumps(ref))
    client.close()

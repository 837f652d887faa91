"""A lesson through real ingest and worker processes: every acknowledged frame is
accounted for, hostile images end as documented, and no pixel stays anywhere.

Frames are made to end every possible way: processed (real photos, a large
multipart PNG that the server spools to a temporary file, unusual but valid
images), failed (truncated, consent withdrawn while queued), expired (bytes
gone before a worker took them; a message lost, found by the periodic expiry
task) and still queued (sent while no worker runs). The frame statistics of the
analytics API must add up to what ingest acknowledged.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis as redis_lib
from PIL import Image
from sqlalchemy import Engine, text

from classpulse.harness.processes import stop
from shared.schemas import FRAME_QUEUE, LiveNotice, frame_key, live_channel
from tests.conftest import send_task
from tests.reliability.conftest import (
    Realm,
    bearer,
    frame_stats,
    jpeg,
    wait_for_queue_to_drain,
)
from tests.reliability.hostile import corpus
from tests.reliability.privacy_scan import (
    binary_columns,
    image_in,
    images_in_postgres,
    images_in_redis,
    images_on_disk,
)
from tests.reliability.processes import Scratch, ingest_process, scratch_worker

pytestmark = pytest.mark.slow


def noise_png() -> bytes:
    """About 1.4 MB: over Starlette's 1 MB in-memory limit for an uploaded file."""
    pixels = np.random.default_rng(7).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", compress_level=1)
    return out.getvalue()


class Client:
    """Frames of organisation A's lesson through the ingest API; remembers what was acknowledged."""

    def __init__(self, http: httpx.Client, realm: Realm) -> None:
        self.http, self.realm = http, realm
        self.accepted: list[str] = []
        self.seq = 0

    def send(
        self, student: str, data: bytes, content_type: str, *, multipart: bool = False
    ) -> httpx.Response:
        self.seq += 1
        url = f"/v1/lessons/{self.realm.a.lesson_id}/frames"
        captured = dt.datetime.now(dt.UTC).isoformat()
        auth = bearer(self.realm.token(student))
        if multipart:
            answer = self.http.post(
                url,
                headers=auth,
                files={"image": ("frame", data, content_type)},
                data={"seq": str(self.seq), "captured_at": captured},
            )
        else:
            answer = self.http.post(
                url,
                params={"seq": str(self.seq), "captured_at": captured},
                content=data,
                headers={**auth, "Content-Type": content_type},
            )
        if answer.status_code == 202:
            self.accepted.append(answer.json()["frame_id"])
        return answer

    def accept(self, student: str, data: bytes, content_type: str = "image/jpeg", **kw: Any) -> str:
        answer = self.send(student, data, content_type, **kw)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["frame_id"])


def drop_message(client: redis_lib.Redis, frame_id: str) -> None:
    """Remove the Celery message of ``frame_id`` from the queue (a lost message)."""
    for raw in client.lrange(FRAME_QUEUE, 0, -1):  # type: ignore[union-attr]
        if frame_id in base64.b64decode(json.loads(raw)["body"]).decode():
            assert client.lrem(FRAME_QUEUE, 1, raw) == 1
            return
    raise AssertionError(f"no queued message for frame {frame_id}")


def test_every_acknowledged_frame_is_accounted_for_and_no_pixel_remains(
    realm: Realm,
    analytics: httpx.Client,
    clean_db: Engine,
    redis_client: redis_lib.Redis,
    pg_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    scratch = Scratch(tmp_path / "scratch", tmp_path)
    env = scratch.env(pg_url, redis_url)
    hostile = corpus()
    with (
        ingest_process(scratch, env) as ingest_url,
        httpx.Client(base_url=ingest_url, timeout=30) as http,
    ):
        client = Client(http, realm)
        # Before any worker runs. s2's frames wait while s2 withdraws consent.
        for _ in range(2):
            client.accept("s2", jpeg("obama.jpg"))
        withdrawn = http.delete(
            f"/v1/lessons/{realm.a.lesson_id}/consents/s2", headers=bearer(realm.a.lms_key)
        )
        assert withdrawn.status_code == 200, withdrawn.text
        # s3's bytes expire (their TTL, made to pass) while the messages wait.
        for _ in range(2):
            redis_client.delete(frame_key(uuid.UUID(client.accept("s3", jpeg("obama.jpg")))))
        # One frame whose message is lost as well: only the expiry task can end it.
        lost = client.accept("s3", jpeg("obama.jpg"))
        drop_message(redis_client, lost)
        redis_client.delete(frame_key(uuid.UUID(lost)))
        with clean_db.begin() as conn:
            conn.execute(
                text("UPDATE frames SET received_at = now() - interval '1 hour' WHERE id = :id"),
                {"id": lost},
            )
        # Real photos, one large multipart upload, and the hostile corpus.
        for name in ("obama.jpg", "two_people.jpg", "obama.jpg"):
            client.accept("s1", jpeg(name))
        client.accept("s1", noise_png(), "image/png", multipart=True)
        hostile_ids: dict[str, str] = {}
        for name, case in hostile.items():
            answer = client.send("s1", case.data, case.content_type)
            if case.outcome[0] == "rejected":
                assert answer.status_code == case.outcome[1], (name, answer.text)
                assert answer.json()["error"]["code"] == case.outcome[2], name
            else:
                assert answer.status_code == 202, (name, answer.text)
                hostile_ids[name] = answer.json()["frame_id"]
        # The scan does see frame bytes while they wait (it is not blind).
        assert images_in_redis(redis_client)

        worker = scratch_worker(scratch, env, "accounting")
        try:
            send_task(redis_url, "classpulse.expire_frames")
            stats = wait_for_queue_to_drain(
                analytics, realm, worker, scratch.logs / "accounting.log"
            )
            assert worker.poll() is None  # no hostile image took the worker down
        finally:
            stop(worker)

        # No pixel anywhere once every frame has been dealt with.
        assert images_in_redis(redis_client) == []
        assert redis_client.keys("classpulse:frame:*") == []
        assert binary_columns(clean_db) == []
        assert images_in_postgres(clean_db) == []
        # The services' directories and their logs.
        assert images_on_disk(tmp_path) == []

        # Frames acknowledged while no worker runs stay queued, and are counted.
        for _ in range(2):
            client.accept("s1", jpeg("obama.jpg"))

    with clean_db.connect() as conn:
        outcomes = {
            str(fid): (status, reason)
            for fid, status, reason in conn.execute(
                text("SELECT id, status, failure_reason FROM frames")
            )
        }
    for name, frame_id in hostile_ids.items():
        expected = hostile[name].outcome
        assert outcomes[frame_id][0] == expected[0], name
        if expected[0] == "failed":
            assert outcomes[frame_id][1] == expected[1], name

    final = frame_stats(analytics, realm)
    assert final["accepted"] == len(client.accepted) == len(set(client.accepted)) == 16
    assert sum(final["by_status"].values()) == final["accepted"]
    assert final["by_status"] == {"done": 8, "failed": 3, "expired": 3, "queued": 2}
    assert final["failed_by_reason"] == {"consent_withdrawn": 2, "truncated": 1}
    assert stats["by_status"]["queued"] == 0
    assert Counter(s for s, _ in outcomes.values()) == Counter(
        {k: v for k, v in final["by_status"].items() if v}
    )
    assert outcomes[lost] == ("expired", "bytes_expired")


def test_the_scan_finds_images_however_they_are_stored() -> None:
    photo = jpeg("obama.jpg")
    assert image_in(b"prefix" + photo) == "jpeg"
    assert image_in(b'{"image": "' + base64.b64encode(photo) + b'"}') == "base64 image"
    nested = base64.b64encode(json.dumps({"b": base64.b64encode(photo).decode()}).encode())
    assert image_in(nested) == "base64 image"
    assert image_in(json.dumps({"frame_id": str(uuid.uuid4()), "seq": 3}).encode()) is None


def test_with_inference_switched_off_no_expression_is_stored_or_sent(
    realm: Realm,
    ingest: httpx.Client,
    analytics: httpx.Client,
    clean_db: Engine,
    redis_client: redis_lib.Redis,
    pg_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    scratch = Scratch(tmp_path / "scratch", tmp_path)
    env = scratch.env(pg_url, redis_url, CLASSPULSE_INFERENCE_ENABLED="false")
    client = Client(ingest, realm)
    for name in ("obama.jpg", "two_people.jpg"):
        client.accept("s1", jpeg(name))
    live = redis_client.pubsub()
    live.subscribe(live_channel(realm.a.lesson_id))
    worker = scratch_worker(scratch, env, "no-inference")
    try:
        stats = wait_for_queue_to_drain(analytics, realm, worker, scratch.logs / "no-inference.log")
    finally:
        stop(worker)
    assert stats["by_status"]["done"] == 2
    notices = []
    while (message := live.get_message(timeout=1)) is not None:
        if message["type"] == "message":
            notices.append(LiveNotice.model_validate_json(message["data"]))
    live.close()
    assert all(label is None for n in notices for label in n.labels)
    with clean_db.connect() as conn:
        faces = conn.execute(
            text(
                "SELECT count(*), count(label), count(probabilities), count(confidence), "
                "count(model_version) FROM face_events WHERE kind = 'face'"
            )
        ).one()
        labelled = conn.scalar(text("SELECT sum(labelled) FROM face_event_minutes"))
    # Presence is still stored and sent live; no label, probability or model is.
    assert faces[0] >= 2
    assert sum(n.faces for n in notices) == faces[0]
    assert tuple(faces[1:]) == (0, 0, 0, 0)
    assert labelled == 0
    # Class views show closed buckets only: ask at 10 s and wait for the frames' to close.
    deadline = time.monotonic() + 20
    while True:
        summary = analytics.get(
            f"/v1/lessons/{realm.a.lesson_id}/summary",
            params={"bucket": "10s"},
            headers=bearer(realm.a.lms_key),
        ).json()
        totals = summary["totals"]
        if totals["face_share"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert totals["face_share"] == 1.0
    assert totals["faces_labelled"] == 0
    assert totals["dominant"] is None
    assert not totals["expressions"]

"""Two organisations on the real PostgreSQL and Redis, and both APIs served by uvicorn.

Organisation A has a live lesson with enrolled, consenting students, an LMS
key, a teacher key, a revoked key and an LRS; organisation B has its own LMS key,
class, lesson and student. Both APIs verify student tokens with one secret.
"""

from __future__ import annotations

import datetime as dt
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_lib
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from classpulse.harness.factories import TOKEN_SECRET, SeededLesson, add_key, seed_lesson
from classpulse.harness.servers import serving
from services.analytics.app import create_app as create_analytics
from services.analytics.config import AnalyticsSettings
from services.inference.tasks import EXPIRE_FRAMES_TASK, REQUEUE_ORPHANS_TASK
from services.ingest.app import create_app as create_ingest
from services.ingest.config import IngestSettings
from services.xapi.lrs_config import set_lrs
from shared.db.models import KeyRole
from tests.conftest import MEDIA, send_task

STUDENTS = ("s1", "s2", "s3")
#: Encrypts the LRS passwords of these tests (``CLASSPULSE_SECRETS_KEY``).
SECRETS_KEY = SecretStr("reliability-secrets-key-0123456789")


@dataclass
class Realm:
    """Organisation A (``a``, its lesson live now) and organisation B (``b``)."""

    a: SeededLesson
    b: SeededLesson
    revoked_key: str

    def token(
        self, external_id: str = "s1", *, ttl: int = 3600, now: dt.datetime | None = None
    ) -> str:
        return self.a.student_token(external_id, ttl=ttl, now=now)

    def expired_token(self) -> str:
        return self.token(ttl=60, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each schemathesis operation test gets a node id of its own, as its name has.

    Under pytest 9 schemathesis's operation tests of one function share a node
    id (their parametrisation is not pytest's), and pytest-xdist's ``--dist
    loadfile`` keys its work by node id: it ran the first operation of each API
    and reported the rest passed. pytest 9 builds node ids from ``Node._id``;
    tests/conftest.py fails any run in which selected tests never ran.
    """
    for item in items:
        label = getattr(item, "operation_label", None)
        parent = item.parent
        if label and parent is not None and item.id.params is None:
            item._id = parent.id.child(item.originalname).with_params(label)


def seed_realm(engine: Engine) -> Realm:
    starts_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    a = seed_lesson(engine, students=STUDENTS, starts_at=starts_at, consenting=True, enrolled=True)
    b = seed_lesson(engine, students=("s1",), starts_at=starts_at, consenting=True, enrolled=True)
    with Session(engine) as session:
        revoked = add_key(session, a.organisation_id, KeyRole.LMS, revoked=True)
        set_lrs(
            session,
            a.organisation_id,
            endpoint="http://127.0.0.1:9/xAPI",
            username="lrs-user",
            password="lrs-password",
            lms_url="https://lms.example.org",
            secrets_key=SECRETS_KEY,
        )
        session.commit()
    return Realm(a, b, revoked)


@pytest.fixture
def realm(clean_db: Engine, redis_client: redis_lib.Redis) -> Realm:
    return seed_realm(clean_db)


@pytest.fixture
def ingest_config(pg_url: str, redis_url: str) -> IngestSettings:
    return IngestSettings(
        database_url=pg_url,
        redis_url=redis_url,
        token_secret=TOKEN_SECRET,
        student_rate_per_second=1000.0,
        secrets_key=SECRETS_KEY,
    )


@pytest.fixture
def ingest_url(ingest_config: IngestSettings) -> Iterator[str]:
    with serving(create_ingest(ingest_config)) as url:
        yield url


@pytest.fixture(scope="session")
def analytics_url(pg_url: str, redis_url: str) -> Iterator[str]:
    config = AnalyticsSettings(
        database_url=pg_url, redis_url=redis_url, token_secret=TOKEN_SECRET, min_group_size=1
    )
    with serving(create_analytics(config)) as url:
        yield url


@pytest.fixture
def ingest(ingest_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ingest_url, timeout=15) as client:
        yield client


@pytest.fixture
def analytics(analytics_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=analytics_url, timeout=15) as client:
        yield client


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def frame_params(seq: int) -> dict[str, str]:
    return {"seq": str(seq), "captured_at": dt.datetime.now(dt.UTC).isoformat()}


def jpeg(name: str) -> bytes:
    with Image.open(MEDIA / name) as image:
        out = io.BytesIO()
        image.convert("RGB").resize((640, 480)).save(out, "JPEG", quality=85)
        return out.getvalue()


def frame_stats(analytics: httpx.Client, realm: Realm) -> dict[str, Any]:
    answer = analytics.get(
        f"/v1/lessons/{realm.a.lesson_id}/frames/stats", headers=bearer(realm.a.lms_key)
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def wait_for_queue_to_drain(
    analytics: httpx.Client,
    realm: Realm,
    worker: Any,
    log: Path,
    timeout: float = 120,
    sweep_broker: str | None = None,
) -> dict[str, Any]:
    """Wait until no frame of lesson A is queued.

    With ``sweep_broker`` (a Redis URL) the periodic frame tasks are sent every
    few seconds, as beat sends them in production: the lost-message requeue (a
    message Redis handed out as it shut down is otherwise never delivered,
    ``services.inference.orphans``) and the expiry (frames whose bytes are gone,
    such as those a Redis restart lost: it keeps nothing on disk).
    """
    deadline = time.monotonic() + timeout
    next_sweep = time.monotonic()
    while time.monotonic() < deadline:
        stats = frame_stats(analytics, realm)
        if stats["by_status"]["queued"] == 0:
            return stats
        assert worker.poll() is None, f"worker died:\n{log.read_text()[-3000:]}"
        if sweep_broker is not None and time.monotonic() >= next_sweep:
            for task in (REQUEUE_ORPHANS_TASK, EXPIRE_FRAMES_TASK):
                send_task(sweep_broker, task)
            next_sweep = time.monotonic() + 3
        time.sleep(0.5)
    raise AssertionError(f"frames still queued: {stats}\n{log.read_text()[-3000:]}")

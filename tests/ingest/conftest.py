"""Ingest test fixtures: a real uvicorn server on a free port, seeded rows, real photos."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Callable, Iterator

import pytest
from PIL import Image
from sqlalchemy import Engine

from classpulse.harness.factories import TOKEN_SECRET, SeededLesson, seed_lesson
from classpulse.harness.servers import ThreadedServer
from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from tests.conftest import MEDIA


def jpeg_640x480(name: str = "obama.jpg", quality: int = 85) -> bytes:
    """A real photo from the shared media, as a classroom client would send it."""
    with Image.open(MEDIA / name) as image:
        frame = image.convert("RGB").resize((640, 480))
    out = io.BytesIO()
    frame.save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="session")
def photo() -> bytes:
    return jpeg_640x480()


@pytest.fixture
def config(pg_url: str, redis_url: str) -> IngestSettings:
    """Test settings; the rate is high so that only the rate-limit test meets it."""
    return IngestSettings(
        database_url=pg_url,
        redis_url=redis_url,
        token_secret=TOKEN_SECRET,
        student_rate_per_second=1000.0,
    )


class Servers:
    """Starts ingest apps on free ports and stops them all at the end of a test."""

    def __init__(self) -> None:
        self._running: list[ThreadedServer] = []

    def start(self, config: IngestSettings) -> str:
        server = ThreadedServer(create_app(config))
        url = server.start()
        self._running.append(server)
        return url

    def stop_all(self) -> None:
        for server in self._running:
            server.stop()


@pytest.fixture
def servers() -> Iterator[Servers]:
    running = Servers()
    yield running
    running.stop_all()


@pytest.fixture
def base_url(servers: Servers, config: IngestSettings, redis_client: object) -> str:
    """A running ingest on the test database and a flushed Redis database."""
    return servers.start(config)


class World(SeededLesson):
    """One organisation with an LMS key, a class, a live lesson and consenting students."""

    def token(
        self,
        student: str = "s1",
        lesson_id: uuid.UUID | None = None,
        ttl: int = 600,
        now: dt.datetime | None = None,
    ) -> str:
        return self.student_token(student, lesson_id, ttl=ttl, now=now)

    def lms_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.lms_key}"}


def seed_world(
    engine: Engine,
    students: tuple[str, ...] = ("s1", "s2", "nocon"),
    starts_at: dt.datetime | None = None,
    minutes: int = 60,
) -> World:
    """Rows for one live lesson (by default ten minutes in, an hour long) with every student
    enrolled; every student but ``nocon`` has class consent of both parties."""
    seeded = seed_lesson(
        engine,
        students=students,
        starts_at=starts_at or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10),
        minutes=minutes,
        enrolled=True,
        consenting=[s for s in students if s != "nocon"],
    )
    return World(**vars(seeded))


@pytest.fixture
def world(clean_db: Engine) -> World:
    return seed_world(clean_db)


FrameSender = Callable[..., object]


def frame_params(seq: int, captured_at: dt.datetime | None = None) -> dict[str, str]:
    return {"seq": str(seq), "captured_at": (captured_at or dt.datetime.now(dt.UTC)).isoformat()}


def replace(config: IngestSettings, **changes: object) -> IngestSettings:
    """``config`` with some fields changed (not validated: pass the fields' own types)."""
    return config.model_copy(update=changes)

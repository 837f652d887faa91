"""A seeded lesson on the real PostgreSQL and Redis, and worker resources on them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import redis as redis_lib
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from classpulse.harness.factories import seed_lesson, store_frame
from services.inference.config import WorkerProcessSettings
from services.inference.resources import WorkerResources
from shared.db.engine import make_sync_engine
from shared.db.models import Consent, ConsentParty, FaceEvent, Frame
from shared.labels import Expression
from shared.schemas import FrameRef
from shared.vision.pipeline import Pipeline
from tests.conftest import MEDIA

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


class FakeClassifier:
    """Every good face is "happy" with 0.9: the point here is the plumbing."""

    version = "fake-happy-1"

    def predict(self, faces: list[np.ndarray]) -> np.ndarray:
        probs = np.full((len(faces), 7), 0.1 / 6, dtype=np.float32)
        probs[:, Expression.HAPPY] = 0.9
        return probs


@dataclass
class World:
    engine: Engine
    redis: redis_lib.Redis
    class_id: uuid.UUID
    lesson_id: uuid.UUID
    student_id: uuid.UUID
    consent_id: uuid.UUID
    seq: int = 0

    def add_frame(self, data: bytes | None, *, received_at: dt.datetime | None = None) -> FrameRef:
        """A queued frame row and (unless None) its bytes in Redis; returns the queue message."""
        self.seq += 1
        return store_frame(
            self.engine,
            self.redis,
            self.lesson_id,
            self.student_id,
            data,
            seq=self.seq,
            captured_at=NOW,
            received_at=received_at or NOW,
        )

    def frame(self, frame_id: uuid.UUID) -> Frame:
        with Session(self.engine) as session:
            frame = session.get(Frame, frame_id)
            assert frame is not None
            return frame

    def events(self, frame_id: uuid.UUID) -> list[FaceEvent]:
        with Session(self.engine) as session:
            return list(
                session.scalars(
                    select(FaceEvent)
                    .where(FaceEvent.frame_id == frame_id)
                    .order_by(FaceEvent.face_index)
                )
            )


@pytest.fixture
def world(clean_db: Engine, redis_client: redis_lib.Redis) -> World:
    """Student s1 with both consents, in a lesson from an hour ago to an hour on."""
    seeded = seed_lesson(
        clean_db,
        students=["s1"],
        starts_at=NOW - dt.timedelta(hours=1),
        minutes=120,
        consenting=True,
    )
    student_id = seeded.students["s1"]
    with Session(clean_db) as session:
        school_consent = session.scalars(
            select(Consent.id).where(
                Consent.student_id == student_id, Consent.party == ConsentParty.SCHOOL
            )
        ).one()
    return World(
        clean_db, redis_client, seeded.class_id, seeded.lesson_id, student_id, school_consent
    )


def make_resources(
    database_url: str, redis_url: str, *, inference_enabled: bool = True
) -> WorkerResources:
    pipeline = (
        Pipeline(FakeClassifier()) if inference_enabled else Pipeline(None, inference_enabled=False)
    )
    return WorkerResources(
        settings=WorkerProcessSettings(database_url=database_url, redis_url=redis_url),
        engine=make_sync_engine(database_url),
        redis=redis_lib.Redis.from_url(redis_url),
        pipeline=pipeline,
    )


@pytest.fixture
def resources(world: World, pg_url: str, redis_url: str) -> Iterator[WorkerResources]:
    res = make_resources(pg_url, redis_url)
    yield res
    res.close()


@pytest.fixture(scope="session")
def two_faces() -> bytes:
    return (MEDIA / "two_people.jpg").read_bytes()


@pytest.fixture(scope="session")
def one_face() -> bytes:
    return (MEDIA / "obama.jpg").read_bytes()

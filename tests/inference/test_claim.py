"""The worker holds no lock while the pipeline runs, and what happens meanwhile wins."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from services.inference import process
from services.inference.resources import WorkerResources
from shared.db.models import Consent, FrameStatus
from shared.vision.pipeline import Pipeline
from tests.inference.conftest import NOW, FakeClassifier, World, make_resources


class ClassifierWithAHook(FakeClassifier):
    """The fake classifier, running ``during`` while it "thinks" (mid-pipeline)."""

    def __init__(self, during: Callable[[], None]) -> None:
        self.during = during

    def predict(self, faces: list[np.ndarray]) -> np.ndarray:
        self.during()
        return super().predict(faces)


def with_hook(resources: WorkerResources, during: Callable[[], None]) -> WorkerResources:
    resources.pipeline = Pipeline(ClassifierWithAHook(during))
    return resources


def test_the_frame_row_is_not_locked_while_the_pipeline_runs(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    ref = world.add_frame(one_face)
    seen: list[str] = []

    def lock_it_elsewhere() -> None:
        # NOWAIT fails at once if the worker still held the row.
        with world.engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '100ms'"))
            status = conn.scalar(
                text("SELECT status FROM frames WHERE id = :id FOR UPDATE NOWAIT"),
                {"id": ref.frame_id},
            )
        seen.append(str(status))

    outcome = process.process_frame(ref, with_hook(resources, lock_it_elsewhere))
    assert seen == ["queued"]
    assert outcome.status is FrameStatus.DONE
    assert len(world.events(ref.frame_id)) == 1


def test_a_delivery_that_finished_the_frame_meanwhile_wins(
    world: World, resources: WorkerResources, one_face: bytes, pg_url: str, redis_url: str
) -> None:
    ref = world.add_frame(one_face)
    other = make_resources(pg_url, redis_url)
    outcomes: list[process.Outcome] = []
    try:
        # A second delivery of the same message runs to the end while the first thinks.
        first = with_hook(resources, lambda: outcomes.append(process.process_frame(ref, other)))
        late = process.process_frame(ref, first)
    finally:
        other.close()
    assert [o.status for o in outcomes] == [FrameStatus.DONE]
    assert late.status is FrameStatus.DONE
    assert late.changed is False  # its result was dropped
    assert len(world.events(ref.frame_id)) == 1


def test_consent_withdrawn_while_the_pipeline_runs_stores_nothing(
    world: World, resources: WorkerResources, one_face: bytes
) -> None:
    ref = world.add_frame(one_face)

    def withdraw() -> None:
        with Session(world.engine) as session, session.begin():
            session.execute(
                update(Consent).where(Consent.id == world.consent_id).values(withdrawn_at=NOW)
            )

    outcome = process.process_frame(ref, with_hook(resources, withdraw))
    assert outcome.status is FrameStatus.FAILED
    assert world.frame(ref.frame_id).failure_reason == "consent_withdrawn"
    assert world.events(ref.frame_id) == []


def test_the_workers_log_line_carries_the_frame_id(
    world: World, resources: WorkerResources, one_face: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    ref = world.add_frame(one_face)
    with caplog.at_level(logging.DEBUG, logger="services.inference.process"):
        process.process_frame(ref, resources)
    (record,) = [r for r in caplog.records if getattr(r, "frame_id", None) == str(ref.frame_id)]
    assert record.status == "done"  # type: ignore[attr-defined]
    assert record.lesson_id == str(world.lesson_id)  # type: ignore[attr-defined]
    assert record.levelno == logging.DEBUG

"""Erasure of a student's data: rows, queued bytes, the audit entry, and who may ask."""

from __future__ import annotations

import uuid

import httpx
import redis as redis_lib
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from classpulse.harness.factories import SeedEvent, insert_events
from services.inference import process
from shared.db.models import (
    AuditEntry,
    Consent,
    Enrolment,
    FaceEvent,
    FaceEventMinute,
    Frame,
    Student,
)
from shared.schemas import FrameRef, frame_key
from tests.inference.conftest import make_resources
from tests.ingest.conftest import jpeg_640x480
from tests.reliability.conftest import Realm, bearer, frame_params

PHOTO = jpeg_640x480()


def _rows(engine: Engine, model: type, student_id: uuid.UUID) -> int:
    with Session(engine) as session:
        column = model.id if model is Student else model.student_id  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).where(column == student_id)) or 0)


def _send_frames(ingest: httpx.Client, realm: Realm, student: str, count: int) -> list[str]:
    ids = []
    for seq in range(count):
        answer = ingest.post(
            f"/v1/lessons/{realm.a.lesson_id}/frames",
            params=frame_params(seq),
            content=PHOTO,
            headers={**bearer(realm.token(student)), "Content-Type": "image/jpeg"},
        )
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["frame_id"])
    return ids


def test_erasure_removes_every_row_and_queued_byte_of_the_student_only(
    ingest: httpx.Client, realm: Realm, clean_db: Engine, redis_client: redis_lib.Redis
) -> None:
    s1, s2 = realm.a.students["s1"], realm.a.students["s2"]
    at = realm.a.starts_at
    insert_events(clean_db, realm.a.lesson_id, [SeedEvent(s1, at, label=3), SeedEvent(s2, at, 4)])
    queued_s1 = _send_frames(ingest, realm, "s1", 3)
    queued_s2 = _send_frames(ingest, realm, "s2", 2)
    assert _rows(clean_db, FaceEventMinute, s1) == 1

    answer = ingest.delete("/v1/students/s1", headers=bearer(realm.a.lms_key))

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["student_id"] == str(s1)
    assert body["external_id"] == "s1"
    assert (body["face_events"], body["frames"], body["frame_bytes"]) == (1, 4, 3)
    assert (body["consents"], body["enrolments"]) == (2, 1)  # the school's and its own
    for model in (FaceEvent, FaceEventMinute, Frame, Consent, Enrolment, Student):
        assert _rows(clean_db, model, s1) == 0, model.__name__
    assert not any(redis_client.exists(frame_key(uuid.UUID(f))) for f in queued_s1)
    # The other student keeps everything.
    assert _rows(clean_db, FaceEvent, s2) == 1
    assert _rows(clean_db, Frame, s2) == 3
    assert all(redis_client.exists(frame_key(uuid.UUID(f))) for f in queued_s2)

    with Session(clean_db) as session:
        (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.action == "student.erase"))
    assert entry.subject == f"student:{s1}"
    assert entry.actor.startswith("lms:")
    assert entry.details == {
        "face_events": 1, "frames": 4, "frame_bytes": 3, "consents": 2, "enrolments": 1,
    }  # fmt: skip
    # The pseudonymous UUID is the only trace of the student left anywhere.
    with clean_db.connect() as conn:
        dump = conn.scalar(text("SELECT string_agg(to_jsonb(a)::text, ' ') FROM audit_log a"))
    assert '"s1"' not in (dump or "")

    # The student can no longer be erased twice, nor send frames.
    assert ingest.delete("/v1/students/s1", headers=bearer(realm.a.lms_key)).status_code == 404
    again = ingest.post(
        f"/v1/lessons/{realm.a.lesson_id}/frames",
        params=frame_params(99),
        content=PHOTO,
        headers={**bearer(realm.token("s1")), "Content-Type": "image/jpeg"},
    )
    assert again.status_code == 451


def test_a_worker_drops_a_message_of_an_erased_frame(
    ingest: httpx.Client, realm: Realm, pg_url: str, redis_url: str, redis_client: redis_lib.Redis
) -> None:
    (frame_id,) = _send_frames(ingest, realm, "s1", 1)
    assert ingest.delete("/v1/students/s1", headers=bearer(realm.a.lms_key)).status_code == 200
    # Bytes put back by a late writer are dropped too when the message is taken.
    key = frame_key(uuid.UUID(frame_id))
    redis_client.set(key, PHOTO, ex=60)
    ref = FrameRef(
        frame_id=uuid.UUID(frame_id),
        lesson_id=realm.a.lesson_id,
        student_id=realm.a.students["s1"],
        captured_at=realm.a.starts_at,
        enqueued_at=realm.a.starts_at,
        redis_key=key,
    )
    resources = make_resources(pg_url, redis_url)
    try:
        outcome = process.process_frame(ref, resources)
    finally:
        resources.close()
    assert outcome.status is None
    assert outcome.reason == "frame_not_found"
    assert redis_client.exists(key) == 0


def test_erasure_by_uuid_and_who_may_ask(ingest: httpx.Client, realm: Realm) -> None:
    s1 = realm.a.students["s1"]
    teacher = ingest.delete("/v1/students/s1", headers=bearer(realm.a.teacher_key))
    assert teacher.status_code == 403
    assert ingest.delete("/v1/students/s1", headers=bearer(realm.token())).status_code == 403
    assert ingest.delete("/v1/students/s1").status_code == 401
    assert ingest.delete("/v1/students/s1", headers=bearer(realm.revoked_key)).status_code == 401
    # Another organisation: its own "s1" is a different student; A's UUID is refused.
    other = ingest.delete(f"/v1/students/{s1}", headers=bearer(realm.b.lms_key))
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "forbidden"
    unknown = ingest.delete("/v1/students/nobody", headers=bearer(realm.a.lms_key))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    by_uuid = ingest.delete(f"/v1/students/{s1}", headers=bearer(realm.a.lms_key))
    assert by_uuid.status_code == 200
    assert by_uuid.json()["external_id"] == "s1"

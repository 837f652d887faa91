"""LMS set-up endpoints end to end: class → lesson → students → consent → token → frame."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared.db.models import AuditEntry, Consent, ConsentParty
from tests.ingest.conftest import World
from tests.ingest.test_frames import frame_params

pytestmark = pytest.mark.asyncio


async def test_lms_sets_up_a_lesson_and_a_student_sends_a_frame(
    base_url: str, world: World, photo: bytes, clean_db: Engine
) -> None:
    lms = world.lms_headers()
    now = dt.datetime.now(dt.UTC)
    async with httpx.AsyncClient(base_url=base_url) as client:
        created = await client.post(
            "/v1/classes", json={"external_id": "bio-7", "title": "Biology"}, headers=lms
        )
        assert created.status_code == 201, created.text
        class_id = created.json()["id"]
        duplicate = await client.post(
            "/v1/classes", json={"external_id": "bio-7", "title": "x"}, headers=lms
        )
        assert duplicate.status_code == 409
        assert {
            c["external_id"] for c in (await client.get("/v1/classes", headers=lms)).json()
        } == {"c1", "bio-7"}

        lesson = await client.post(
            f"/v1/classes/{class_id}/lessons",
            json={
                "title": "Cells",
                "starts_at": (now - dt.timedelta(minutes=5)).isoformat(),
                "ends_at": (now + dt.timedelta(minutes=40)).isoformat(),
            },
            headers=lms,
        )
        assert lesson.status_code == 201, lesson.text
        lesson_id = lesson.json()["id"]
        assert lesson.json()["is_demo"] is False
        demo = await client.post(
            f"/v1/classes/{class_id}/lessons",
            json={
                "title": "Cells, a demonstration",
                "starts_at": now.isoformat(),
                "ends_at": (now + dt.timedelta(minutes=5)).isoformat(),
                "is_demo": True,
            },
            headers=lms,
        )
        assert demo.status_code == 201, demo.text
        listed = (await client.get(f"/v1/classes/{class_id}/lessons", headers=lms)).json()
        assert {row["title"]: row["is_demo"] for row in listed} == {
            "Cells": False,
            "Cells, a demonstration": True,
        }
        backwards = await client.post(
            f"/v1/classes/{class_id}/lessons",
            json={"title": "x", "starts_at": now.isoformat(), "ends_at": now.isoformat()},
            headers=lms,
        )
        assert backwards.status_code == 422
        assert backwards.json()["error"]["code"] == "validation_error"

        for _ in range(2):  # enrolling is idempotent
            enrolled = await client.post(
                f"/v1/classes/{class_id}/students",
                json={"external_ids": ["p-1", "p-2"]},
                headers=lms,
            )
            assert enrolled.status_code == 200
            assert sorted(s["external_id"] for s in enrolled.json()["students"]) == ["p-1", "p-2"]

        token = await client.post(f"/v1/lessons/{lesson_id}/students/p-1/token", headers=lms)
        assert token.status_code == 200, token.text
        body = token.json()
        assert body["classroom_url"] == f"/classroom/{lesson_id}#token={body['token']}"
        student = {"Authorization": f"Bearer {body['token']}"}

        async def send(seq: int) -> httpx.Response:
            return await client.post(
                f"/v1/lessons/{lesson_id}/frames",
                params=frame_params(seq),
                content=photo,
                headers={**student, "Content-Type": "image/jpeg"},
            )

        assert (await send(1)).status_code == 451
        granted = await client.put(f"/v1/lessons/{lesson_id}/consents/p-1", headers=lms)
        assert granted.json()["active"] is True
        assert granted.json()["processing"] is False  # the student has not agreed yet
        own = await client.put(f"/v1/lessons/{lesson_id}/consent", headers=student)
        assert own.json()["processing"] is True
        assert (await send(2)).status_code == 202
        me = (await client.get(f"/v1/lessons/{lesson_id}/me", headers=student)).json()
        assert me["student_external_id"] == "p-1"
        assert me["consent_active"] is True
        assert me["lesson_title"] == "Cells"
        assert (
            await client.delete(f"/v1/classes/{class_id}/consents/p-1", headers=lms)
        ).status_code == 200
        assert (await send(3)).status_code == 451

        marker = await client.post(
            f"/v1/lessons/{lesson_id}/markers",
            json={"at": now.isoformat(), "kind": "slide", "label": "Mitosis"},
            headers=lms,
        )
        assert marker.status_code == 201
        bad_marker = await client.post(
            f"/v1/lessons/{lesson_id}/markers",
            json={"at": now.isoformat(), "kind": "quiz", "label": "x"},
            headers=lms,
        )
        assert bad_marker.status_code == 422
        assert bad_marker.json()["error"]["field"] == "kind"
        markers = (await client.get(f"/v1/lessons/{lesson_id}/markers", headers=lms)).json()
        assert [m["label"] for m in markers] == ["Mitosis"]

        teacher = await client.post(f"/v1/classes/{class_id}/teacher-keys", headers=lms)
        assert teacher.status_code == 201
        teacher_headers = {"Authorization": f"Bearer {teacher.json()['key']}"}
        assert [
            c["id"] for c in (await client.get("/v1/classes", headers=teacher_headers)).json()
        ] == [class_id]
        # A teacher key reads its class but cannot set anything up.
        assert (
            await client.get(f"/v1/lessons/{lesson_id}/markers", headers=teacher_headers)
        ).status_code == 200
        assert (
            await client.post(
                f"/v1/classes/{class_id}/students",
                json={"external_ids": ["x"]},
                headers=teacher_headers,
            )
        ).status_code == 403
        unknown = await client.post(f"/v1/lessons/{lesson_id}/students/nobody/token", headers=lms)
        assert unknown.status_code == 404

    with Session(clean_db) as session:
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        assert actions.count("consent.grant") == 2  # the school's and the student's
        assert actions.count("consent.withdraw") == 1
        assert (
            session.scalar(
                select(Consent).where(
                    Consent.party == ConsentParty.SCHOOL,
                    Consent.withdrawn_at.is_(None),
                    Consent.lesson_id.isnot(None),
                )
            )
            is None
        )


async def test_credentials_are_checked(base_url: str, world: World) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        missing = await client.get("/v1/classes")
        bogus = await client.get("/v1/classes", headers={"Authorization": "Bearer cp_abc_def"})
        student_on_setup = await client.post(
            "/v1/classes",
            json={"external_id": "x", "title": "x"},
            headers={"Authorization": f"Bearer {world.token()}"},
        )
    assert missing.status_code == 401
    assert bogus.status_code == 401
    assert student_on_setup.status_code == 403
    assert missing.json()["error"]["code"] == "unauthorized"


async def test_openapi_documents_versioned_routes_and_error_shape(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        spec = (await client.get("/openapi.json")).json()
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
    paths = spec["paths"]
    assert all(p.startswith("/v1/") for p in paths if p not in ("/healthz", "/readyz"))
    frames = paths["/v1/lessons/{lesson_id}/frames"]["post"]
    for status in ("400", "401", "403", "404", "409", "413", "415", "422", "429", "451", "503"):
        assert frames["responses"][status]["content"]["application/json"]["schema"][
            "$ref"
        ].endswith("ErrorBody")
    assert "image/jpeg" in frames["requestBody"]["content"]


async def test_the_lms_decides_whether_a_teacher_key_reads_per_student_data(
    base_url: str, world: World, clean_db: Engine
) -> None:
    from services.ingest.keys import new_api_key
    from shared.auth import key_prefix
    from shared.db.models import ApiKey, KeyRole

    url = f"/v1/classes/{world.class_id}/teacher-keys"
    with Session(clean_db) as session:
        row, narrow_lms = new_api_key(world.organisation_id, KeyRole.LMS, "lms", per_student=False)
        session.add(row)
        session.commit()
    async with httpx.AsyncClient(base_url=base_url) as client:
        plain = await client.post(url, headers=world.lms_headers())
        trusted = await client.post(
            url, json={"name": "head of year", "per_student": True}, headers=world.lms_headers()
        )
        # A key cannot grant what it does not have.
        narrow = {"Authorization": f"Bearer {narrow_lms}"}
        refused = await client.post(url, json={"per_student": True}, headers=narrow)
        class_only = await client.post(url, headers=narrow)

    assert (plain.status_code, plain.json()["per_student"]) == (201, False)
    assert (trusted.status_code, trusted.json()["per_student"]) == (201, True)
    assert refused.status_code == 403
    assert "per-student permission" in refused.json()["error"]["message"]
    assert (class_only.status_code, class_only.json()["per_student"]) == (201, False)
    with Session(clean_db) as session:
        stored = dict(session.execute(select(ApiKey.prefix, ApiKey.per_student)).all())
    assert stored[key_prefix(plain.json()["key"])] is False
    assert stored[key_prefix(trusted.json()["key"])] is True

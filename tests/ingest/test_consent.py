"""Consent has two parts, the school's permission and the student's own consent.

Processing needs both; either party's withdrawal stops it, and neither party
can undo the other's: the last writer does not win.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared.db.models import AuditEntry
from tests.ingest.conftest import World
from tests.ingest.test_frames import post_jpeg

pytestmark = pytest.mark.asyncio


def _student(world: World, name: str = "s1") -> dict[str, str]:
    return {"Authorization": f"Bearer {world.token(name)}"}


async def test_students_consent_cannot_override_the_schools_withdrawal(
    base_url: str, world: World, photo: bytes
) -> None:
    lms, student = world.lms_headers(), _student(world)
    lesson = f"/v1/lessons/{world.lesson_id}"
    async with httpx.AsyncClient(base_url=base_url) as client:
        assert (await post_jpeg(client, world, photo, seq=1)).status_code == 202
        withdrawn = await client.delete(f"{lesson}/consents/s1", headers=lms)
        assert withdrawn.status_code == 200
        assert withdrawn.json() | {"party": "school", "active": False, "processing": False} == (
            withdrawn.json()
        )
        assert (await post_jpeg(client, world, photo, seq=2)).status_code == 451

        # The student agrees again on the classroom page: the school still says no.
        agreed = await client.put(f"{lesson}/consent", headers=student)
        assert agreed.status_code == 200
        assert agreed.json()["party"] == "student"
        assert agreed.json()["active"] is True
        assert agreed.json()["processing"] is False
        refused = await post_jpeg(client, world, photo, seq=3)
        assert refused.status_code == 451
        assert "missing the school's permission;" in refused.json()["error"]["message"]
        me = (await client.get(f"{lesson}/me", headers=student)).json()
        assert (me["consent_active"], me["own_consent"], me["school_permission"]) == (
            False,
            True,
            False,
        )

        # The school's permission comes back: the student's standing consent decides.
        assert (await client.put(f"{lesson}/consents/s1", headers=lms)).json()["processing"]
        assert (await post_jpeg(client, world, photo, seq=4)).status_code == 202


async def test_schools_permission_cannot_override_the_students_refusal(
    base_url: str, world: World, photo: bytes
) -> None:
    lms, student = world.lms_headers(), _student(world)
    lesson = f"/v1/lessons/{world.lesson_id}"
    async with httpx.AsyncClient(base_url=base_url) as client:
        assert (await client.delete(f"{lesson}/consent", headers=student)).status_code == 200
        assert (await post_jpeg(client, world, photo, seq=1)).status_code == 451
        # The LMS grants (again) for the lesson and for the class: still the student's no.
        assert (await client.put(f"{lesson}/consents/s1", headers=lms)).json()["active"] is True
        granted = await client.put(f"/v1/classes/{world.class_id}/consents/s1", headers=lms)
        assert granted.json()["processing"] is None  # a class has no single lesson to answer for
        refused = await post_jpeg(client, world, photo, seq=2)
        assert refused.status_code == 451
        assert "missing the student's own consent;" in refused.json()["error"]["message"]
        # Only the student can give it back.
        assert (await client.put(f"{lesson}/consent", headers=student)).json()["processing"]
        assert (await post_jpeg(client, world, photo, seq=3)).status_code == 202


async def test_schools_permission_alone_does_not_start_processing(
    base_url: str, world: World, photo: bytes, clean_db: Engine
) -> None:
    lms = world.lms_headers()
    nocon = world.token("nocon")
    async with httpx.AsyncClient(base_url=base_url) as client:
        granted = await client.put(f"/v1/classes/{world.class_id}/consents/nocon", headers=lms)
        assert granted.json()["active"] is True
        assert (await post_jpeg(client, world, photo, seq=1, token=nocon)).status_code == 451
        agreed = await client.put(
            f"/v1/lessons/{world.lesson_id}/consent", headers={"Authorization": f"Bearer {nocon}"}
        )
        assert agreed.json()["processing"] is True
        assert (await post_jpeg(client, world, photo, seq=2, token=nocon)).status_code == 202
    with Session(clean_db) as session:
        details = list(
            session.scalars(select(AuditEntry.details).where(AuditEntry.action == "consent.grant"))
        )
    assert sorted(d["party"] for d in details) == ["school", "student"]

"""Enrolling students in a class by their pseudonymous external ids.

One way for every caller: the set-up API (an LMS key names the ids) and the LTI
tool (a launch's or a roster's ``sub``). Students are created on first sight and
enrolments are idempotent. Never commits: the caller's request does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import Enrolment, Student


async def enrol(
    session: AsyncSession, org_id: uuid.UUID, class_id: uuid.UUID, external_ids: Iterable[str]
) -> dict[str, uuid.UUID]:
    """The organisation's students with these ids (created if new), enrolled in the class:
    ``external_id → student id``."""
    wanted = sorted(set(external_ids))
    if not wanted:
        return {}
    await session.execute(
        insert(Student)
        .values([{"id": uuid.uuid4(), "organisation_id": org_id, "external_id": e} for e in wanted])
        .on_conflict_do_nothing(index_elements=["organisation_id", "external_id"])
    )
    rows = list(
        await session.execute(
            select(Student.external_id, Student.id).where(
                Student.organisation_id == org_id, Student.external_id.in_(wanted)
            )
        )
    )
    await session.execute(
        insert(Enrolment)
        .values([{"class_id": class_id, "student_id": r.id} for r in rows])
        .on_conflict_do_nothing()
    )
    return {r.external_id: r.id for r in rows}

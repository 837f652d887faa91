"""Two first launches of one new placement, in two transactions at once: one lesson.

Two learners of a course often open a new placement in the same second. The
first launch's lesson and placement link are not committed yet when the second
looks for them; the second must wait for them rather than open a lesson of its
own (which would split the class in two and repoint the placement).
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.lti import provision
from shared.db.lti_models import LtiRegistration
from shared.db.models import Lesson, SchoolClass
from tests.lti.conftest import Tool

CLAIMS = {
    provision.CONTEXT: {"id": "course-race", "title": "Course"},
    provision.RESOURCE_LINK: {"id": "link-race", "title": "Week 1"},
}


async def _open(session: AsyncSession, tool: Tool, class_id: uuid.UUID) -> uuid.UUID:
    """The lesson a launch of the placement opens in ``session`` (not committed)."""
    registration = await session.get(LtiRegistration, uuid.UUID(tool.registration_id))
    school_class = await session.get(SchoolClass, class_id)
    assert registration is not None
    assert school_class is not None
    lesson = await provision.lesson_for_launch(session, registration, school_class, CLAIMS, 60)
    return lesson.id


async def test_two_first_launches_of_a_new_placement_open_one_lesson(
    tool: Tool, async_engine: AsyncEngine
) -> None:
    async with AsyncSession(async_engine) as setup:
        registration = await setup.get(LtiRegistration, uuid.UUID(tool.registration_id))
        assert registration is not None
        class_id = (await provision.class_for_context(setup, registration, CLAIMS)).id
        await setup.commit()

    async with AsyncSession(async_engine) as first, AsyncSession(async_engine) as second:
        first_lesson = await _open(first, tool, class_id)
        meanwhile = asyncio.create_task(_open(second, tool, class_id))
        await asyncio.sleep(0.5)
        assert not meanwhile.done()  # the second launch waits for the first to commit
        await first.commit()
        second_lesson = await asyncio.wait_for(meanwhile, 10)
        await second.commit()

    assert second_lesson == first_lesson
    async with AsyncSession(async_engine) as check:
        lessons = await check.scalar(
            select(func.count()).select_from(Lesson).where(Lesson.class_id == class_id)
        )
    assert lessons == 1

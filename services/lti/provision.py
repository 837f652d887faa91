"""What a valid launch creates on first sight: the course's class, the placement's lesson,
the launching student; and the roster a names-and-roles sync enrols.

Students are known by the LTI ``sub`` only (a pseudonymous, platform-issued
id): names, e-mail addresses and pictures in the launch or the roster are never
read into a row. These functions never commit: the route does.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest import consent
from shared import enrolment
from shared.db.lti_models import LtiContext, LtiRegistration, LtiResourceLink
from shared.db.models import Consent, ConsentParty, Lesson, SchoolClass
from shared.errors import InvalidValue

CONTEXT = "https://purl.imsglobal.org/spec/lti/claim/context"
RESOURCE_LINK = "https://purl.imsglobal.org/spec/lti/claim/resource_link"
CUSTOM = "https://purl.imsglobal.org/spec/lti/claim/custom"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
#: The custom parameter a deep-linked placement carries: the lesson it opens.
LESSON_PARAMETER = "classpulse_lesson"
#: The LIS role of a learner in a course (the names-and-roles roster's roles).
LEARNER_ROLES = (
    "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner",
    "Learner",
)
DEFAULT_LESSON_TITLE = "ClassPulse lesson"


class MissingClaim(InvalidValue):
    """A launch without a claim ClassPulse needs (the course, the placement): refused (422)."""

    def __init__(self, missing: str) -> None:
        super().__init__(f"LTI launch refused: {missing}")


def _text(value: Any, limit: int) -> str | None:
    """A claim's text as stored: no NUL bytes, no outer spaces, at most ``limit``
    characters; None when nothing is left. Cleaning twice changes nothing."""
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "").strip()[:limit].rstrip() or None


def learner_id(claims: Mapping[str, Any]) -> str | None:
    """The student's external id from a launch's ``sub``, as ``enrol`` stores it."""
    return _text(claims.get("sub"), 200)


async def class_for_context(
    session: AsyncSession, registration: LtiRegistration, claims: Mapping[str, Any]
) -> SchoolClass:
    """The class of the launch's course, created (with its mapping) on first launch.

    A class of the organisation whose ``external_id`` is the course id already (made
    through the REST API) is the course's class.
    """
    context = claims.get(CONTEXT) or {}
    context_id = _text(context.get("id"), 200)
    if context_id is None:
        raise MissingClaim("the launch names no course (its context claim has no id)")
    memberships_url = _text((claims.get(NRPS) or {}).get("context_memberships_url"), 1000)
    known = await session.get(LtiContext, (registration.id, context_id))
    if known is not None:
        if memberships_url and known.memberships_url != memberships_url:
            known.memberships_url = memberships_url
        school_class = await session.get(SchoolClass, known.class_id)
        assert school_class is not None  # the mapping goes with its class (cascade)
        return school_class
    title = _text(context.get("title"), 300) or _text(context.get("label"), 300) or context_id[:300]
    await session.execute(
        insert(SchoolClass)
        .values(
            id=uuid.uuid4(),
            organisation_id=registration.organisation_id,
            external_id=context_id,
            title=title,
        )
        .on_conflict_do_nothing(index_elements=["organisation_id", "external_id"])
    )
    school_class = await session.scalar(
        select(SchoolClass).where(
            SchoolClass.organisation_id == registration.organisation_id,
            SchoolClass.external_id == context_id,
        )
    )
    assert school_class is not None
    await session.execute(
        insert(LtiContext)
        .values(
            registration_id=registration.id,
            context_id=context_id,
            class_id=school_class.id,
            memberships_url=memberships_url,
        )
        .on_conflict_do_nothing()
    )
    return school_class


async def new_lesson(
    session: AsyncSession, school_class: SchoolClass, title: str, minutes: int
) -> Lesson:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    lesson = Lesson(
        id=uuid.uuid4(),
        class_id=school_class.id,
        title=title[:300],
        starts_at=now,
        ends_at=now + dt.timedelta(minutes=minutes),
    )
    session.add(lesson)
    await session.flush()
    return lesson


async def lesson_for_launch(
    session: AsyncSession,
    registration: LtiRegistration,
    school_class: SchoolClass,
    claims: Mapping[str, Any],
    minutes: int,
) -> Lesson:
    """The lesson this placement opens now.

    A deep-linked placement names its lesson (custom ``classpulse_lesson``). Otherwise
    the placement's current lesson, or, when it has none or it is over, a new one from
    now for ``minutes`` (the next session of the class).
    """
    custom = claims.get(CUSTOM) or {}
    named = _text(custom.get(LESSON_PARAMETER), 100)
    if named is not None:
        try:
            lesson_id = uuid.UUID(named)
        except ValueError:
            lesson_id = None
        lesson = await session.get(Lesson, lesson_id) if lesson_id else None
        if lesson is not None and lesson.class_id == school_class.id:
            return lesson
    link = claims.get(RESOURCE_LINK) or {}
    link_id = _text(link.get("id"), 200)
    if link_id is None:
        raise MissingClaim("the launch names no placement (its resource_link claim has no id)")
    title = _text(link.get("title"), 300) or DEFAULT_LESSON_TITLE
    # Launches of one placement take turns until they commit: a second launch (two
    # learners opening a new placement in the same second) then finds the first's
    # lesson instead of opening its own. A row lock cannot do it: the link row may
    # not exist yet.
    placement = f"{registration.id}/{link_id}"
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(placement, 0))))
    known = await session.get(LtiResourceLink, (registration.id, link_id))
    if known is not None:
        lesson = await session.get(Lesson, known.lesson_id)
        if lesson is not None and lesson.ends_at > dt.datetime.now(dt.UTC):
            return lesson
    lesson = await new_lesson(session, school_class, title, minutes)
    await session.execute(
        insert(LtiResourceLink)
        .values(registration_id=registration.id, resource_link_id=link_id, lesson_id=lesson.id)
        .on_conflict_do_update(
            index_elements=["registration_id", "resource_link_id"],
            set_={"lesson_id": lesson.id},
        )
    )
    return lesson


async def enrol(
    session: AsyncSession, school_class: SchoolClass, subs: Iterable[str]
) -> dict[str, uuid.UUID]:
    """Students by their LTI ``sub`` (created if new) enrolled in the class: ``sub → id``."""
    wanted = [s for s in (_text(sub, 200) for sub in subs) if s]
    return await enrolment.enrol(session, school_class.organisation_id, school_class.id, wanted)


async def school_consent(
    session: AsyncSession,
    registration: LtiRegistration,
    school_class: SchoolClass,
    student_id: uuid.UUID,
) -> None:
    """The school's class-wide permission, where the registration grants it, unless the
    school has ever decided for this student and class itself (a withdrawal stands)."""
    if not registration.school_consent:
        return
    decided = await session.scalar(
        select(func.count())
        .select_from(Consent)
        .where(
            Consent.student_id == student_id,
            Consent.class_id == school_class.id,
            Consent.party == ConsentParty.SCHOOL,
        )
    )
    if decided:
        return
    await consent.grant(
        session,
        student_id=student_id,
        class_id=school_class.id,
        lesson_id=None,
        party=ConsentParty.SCHOOL,
        actor=f"lti:{registration.id}",
    )


def learners(members: Iterable[tuple[str, list[str]]]) -> list[str]:
    """The roster's learners (instructors are not students)."""
    return [
        user_id
        for user_id, roles in members
        if any(role in LEARNER_ROLES or role.endswith("#Learner") for role in roles)
    ]

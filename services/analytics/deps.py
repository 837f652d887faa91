"""Typed dependencies: process-wide resources, the caller, and the lesson they may read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.analytics.config import AnalyticsSettings
from services.analytics.ticket_store import purpose_of, redeem
from services.api.credentials import AuthorizationHeader
from services.api.live_hub import LiveHub
from shared.access import authenticate, bearer_token, require_lesson_access
from shared.auth import Principal
from shared.db.models import Lesson, SchoolClass, Student
from shared.errors import AuthError, NotFound


@dataclass(frozen=True, slots=True)
class AnalyticsResources:
    """Created once in the lifespan, shared by every request."""

    settings: AnalyticsSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    #: Live notices for every open stream of this process, over one subscription.
    live_hub: LiveHub


def get_resources(request: Request) -> AnalyticsResources:
    resources: AnalyticsResources = request.app.state.resources
    return resources


ResourcesDep = Annotated[AnalyticsResources, Depends(get_resources)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """A read-only session for one request (analytics never writes)."""
    async with resources.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
TicketQuery = Annotated[
    str | None,
    Query(
        description="A single-use ticket from `POST /v1/tickets`, for EventSource and "
        "download links where a browser cannot set headers (never put a key in a URL)",
    ),
]
#: Refused: a key in a URL ends up in browser history and proxy logs.
AccessTokenQuery = Annotated[str | None, Query(include_in_schema=False)]


async def get_credential(
    request: Request,
    resources: ResourcesDep,
    authorization: AuthorizationHeader = None,
    ticket: TicketQuery = None,
    access_token: AccessTokenQuery = None,
) -> str:
    """The caller's credential: the ``Authorization`` header, or what a ``?ticket=`` made
    for this route and lesson stands for (the ticket is then used up)."""
    if access_token is not None:
        raise AuthError(
            "keys in URLs (?access_token=) are not accepted: send the key in the "
            "Authorization header, or get a single-use ticket (POST /v1/tickets) and pass "
            "?ticket="
        )
    if authorization or ticket is None:
        return bearer_token(authorization)
    purpose = purpose_of(request)
    if purpose is None:
        raise AuthError("tickets open only live streams and exports: use the Authorization header")
    return await redeem(resources.redis, ticket, purpose, request.path_params.get("lesson", ""))


CredentialDep = Annotated[str, Depends(get_credential)]


async def get_principal(
    session: SessionDep, resources: ResourcesDep, credential: CredentialDep
) -> Principal:
    """The caller that the credential names (401 when it is unknown, revoked or expired)."""
    return await authenticate(
        session, credential, resources.settings.token_secret.get_secret_value()
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]
LessonId = Annotated[uuid.UUID, Path(description="Lesson id")]
StudentRef = Annotated[
    str,
    Path(
        max_length=200,
        description="The student's LMS id (`external_id`, as everywhere else); the student's "
        "UUID (`student_id` of earlier answers) is accepted too",
    ),
]


@dataclass(frozen=True, slots=True)
class LessonAccess:
    lesson: Lesson
    school_class: SchoolClass
    principal: Principal


async def get_class_lesson(
    lesson: LessonId, session: SessionDep, principal: PrincipalDep
) -> LessonAccess:
    """A lesson the caller may read at class level (its LMS key or teacher key)."""
    row, school_class = await require_lesson_access(session, principal, lesson)
    return LessonAccess(row, school_class, principal)


ClassLessonDep = Annotated[LessonAccess, Depends(get_class_lesson)]


@dataclass(frozen=True, slots=True)
class StudentLessonAccess(LessonAccess):
    student_id: uuid.UUID


async def resolve_student(
    session: AsyncSession, lesson_id: uuid.UUID, ref: str
) -> uuid.UUID | None:
    """The student ``ref`` names in the lesson's organisation: by LMS id first, then by UUID.

    The LMS id wins: an LMS whose ids look like UUIDs still finds its own students.
    """
    organisation = (
        select(SchoolClass.organisation_id)
        .join(Lesson, Lesson.class_id == SchoolClass.id)
        .where(Lesson.id == lesson_id)
        .scalar_subquery()
    )
    in_organisation = select(Student.id).where(Student.organisation_id == organisation)
    found = await session.scalar(in_organisation.where(Student.external_id == ref))
    if found is not None:
        return found
    try:
        as_uuid = uuid.UUID(ref)
    except ValueError:
        return None
    return await session.scalar(in_organisation.where(Student.id == as_uuid))


async def get_student_lesson(
    lesson: LessonId, student: StudentRef, session: SessionDep, principal: PrincipalDep
) -> StudentLessonAccess:
    """A lesson where the caller may read ``student``'s data (a key with the per-student
    permission, or that student's own token)."""
    student_id = await resolve_student(session, lesson, student)
    # Unknown to a student token is "not yours" (403), as another student would be.
    row, school_class = await require_lesson_access(
        session, principal, lesson, student_id=student_id, per_student=True
    )
    if student_id is None:
        raise NotFound(f"student {student} not found", field="student")
    return StudentLessonAccess(row, school_class, principal, student_id)


StudentLessonDep = Annotated[StudentLessonAccess, Depends(get_student_lesson)]

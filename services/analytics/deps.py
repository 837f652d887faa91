"""Typed dependencies: process-wide resources, the caller, and the lesson they may read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.analytics.config import AnalyticsConfig
from services.api.credentials import AuthorizationHeader
from shared.access import authenticate, bearer_token, require_lesson_access
from shared.auth import Principal
from shared.db.models import Lesson, SchoolClass, Student
from shared.errors import NotFound


@dataclass(frozen=True, slots=True)
class Resources:
    """Created once in the lifespan, shared by every request."""

    config: AnalyticsConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """A read-only session for one request (analytics never writes)."""
    async with resources.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
AccessTokenQuery = Annotated[
    str | None,
    Query(
        description="The same credential as a query parameter, for EventSource and download "
        "links where a browser cannot set headers",
    ),
]


def get_credential(
    authorization: AuthorizationHeader = None, access_token: AccessTokenQuery = None
) -> str:
    """The caller's credential, from the ``Authorization`` header or else ``?access_token=``."""
    return bearer_token(authorization) if authorization or not access_token else access_token


CredentialDep = Annotated[str, Depends(get_credential)]


async def get_principal(
    session: SessionDep, resources: ResourcesDep, credential: CredentialDep
) -> Principal:
    """The caller that the credential names (401 when it is unknown, revoked or expired)."""
    return await authenticate(session, credential, resources.config.token_secret)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
LessonId = Annotated[uuid.UUID, Path(description="Lesson id")]
StudentId = Annotated[uuid.UUID, Path(description="Student id (the UUID, not the LMS id)")]


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


async def get_student_lesson(
    lesson: LessonId, student: StudentId, session: SessionDep, principal: PrincipalDep
) -> LessonAccess:
    """A lesson where the caller may read ``student``'s data (key holder or that student)."""
    row, school_class = await require_lesson_access(session, principal, lesson, student_id=student)
    known = await session.get(Student, student)
    if known is None or known.organisation_id != school_class.organisation_id:
        raise NotFound(f"student {student} not found", field="student")
    return LessonAccess(row, school_class, principal)


StudentLessonDep = Annotated[LessonAccess, Depends(get_student_lesson)]

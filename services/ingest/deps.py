"""Typed dependencies: the process-wide resources and the caller's identity."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.credentials import AuthorizationHeader
from services.ingest.config import IngestSettings
from services.ingest.queue import FrameQueue
from services.ingest.ratelimit import FrameAdmission
from services.ingest.tokens import StudentTokens
from shared.access import authenticate, bearer_token
from shared.auth import Principal, PrincipalKind
from shared.errors import Forbidden


@dataclass(frozen=True, slots=True)
class IngestResources:
    """Created once in the lifespan, shared by every request."""

    settings: IngestSettings
    engine: AsyncEngine
    #: The frame path's own pool: autocommit (a frame is one INSERT, one
    #: transaction) and asynchronous commit (see ``app.make_frames_engine``).
    frames_engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    admission: FrameAdmission
    queue: FrameQueue
    tokens: StudentTokens


# Dependencies are ``async def`` even when they do not await: FastAPI runs plain
# functions in a thread pool, a hand-off that costs more than the work here.
async def get_resources(request: Request) -> IngestResources:
    resources: IngestResources = request.app.state.resources
    return resources


ResourcesDep = Annotated[IngestResources, Depends(get_resources)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """A session for one request; the route commits (one commit point), else it rolls back."""
    async with resources.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_principal(
    session: SessionDep, resources: ResourcesDep, authorization: AuthorizationHeader = None
) -> Principal:
    secret = resources.settings.token_secret.get_secret_value()
    return await authenticate(session, bearer_token(authorization), secret)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_lms_principal(principal: PrincipalDep) -> Principal:
    """Set-up endpoints need an organisation's LMS key."""
    if principal.kind != PrincipalKind.LMS:
        raise Forbidden("this endpoint needs an LMS API key")
    return principal


LmsDep = Annotated[Principal, Depends(get_lms_principal)]


async def get_student_principal(
    resources: ResourcesDep, authorization: AuthorizationHeader = None
) -> Principal:
    """A student token from the header; no database round trip."""
    return resources.tokens.verify(bearer_token(authorization))


StudentDep = Annotated[Principal, Depends(get_student_principal)]

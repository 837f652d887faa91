"""The organisation's Learning Record Store, managed by its LMS key (``/v1/lrs``).

Statements carry per-student figures, so setting an LRS needs an LMS key with
the per-student permission; reading the settings or removing them (which only
stops statements leaving) needs any LMS key of the organisation. The
password is write-only: no answer ever contains it.
"""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field, SecretStr
from sqlalchemy.orm import Session

from services.ingest.deps import LmsDep, ResourcesDep, SessionDep
from services.ingest.errors import error_responses
from services.ingest.schemas import TEXT_PATTERN
from services.xapi.lrs_config import LrsStatus, lrs_status, remove_lrs, set_lrs
from shared.access import check_per_student_access
from shared.auth import Principal
from shared.db.models import AuditEntry
from shared.errors import Forbidden, NotFound

router = APIRouter(
    prefix="/v1/lrs", tags=["xAPI (LMS key)"], responses=error_responses(400, 401, 403, 422)
)


class LrsIn(BaseModel):
    endpoint: str = Field(
        max_length=500,
        pattern=TEXT_PATTERN,
        description="The LRS's xAPI base URL (statements go to …/statements)",
    )
    username: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00:]*$")
    password: SecretStr = Field(
        min_length=1, max_length=500, description="Stored encrypted; never returned"
    )
    lms_url: str = Field(
        max_length=500, pattern=TEXT_PATTERN, description="homePage of each student's account"
    )


class StatementCounts(BaseModel):
    waiting: int
    sent: int
    rejected: int


class LrsOut(BaseModel):
    endpoint: str
    username: str
    lms_url: str
    password_set: bool = Field(True, description="The password is never returned")
    updated_at: dt.datetime
    statements: StatementCounts
    last_error: str | None = Field(description="Why the last send failed, if one did")

    @classmethod
    def of(cls, s: LrsStatus) -> LrsOut:
        return cls(
            endpoint=s.endpoint,
            username=s.username,
            lms_url=s.lms_url,
            updated_at=s.updated_at,
            statements=StatementCounts(waiting=s.pending, sent=s.sent, rejected=s.rejected),
            last_error=s.last_error,
        )


def _actor(principal_key: uuid.UUID | None) -> str:
    return f"lms:{principal_key}"


def _organisation(principal: Principal) -> uuid.UUID:
    """The LMS key's organisation (every LMS key has one)."""
    if principal.organisation_id is None:
        raise Forbidden("this endpoint needs an organisation's LMS API key")
    return principal.organisation_id


async def _status(session: SessionDep, org: uuid.UUID) -> LrsStatus:
    found = await session.run_sync(lambda s: lrs_status(s, org))
    if found is None:
        raise NotFound("this organisation has no LRS", field="lrs")
    return found


@router.put("", summary="Send the organisation's xAPI statements to this LRS")
async def put_lrs(
    body: LrsIn, principal: LmsDep, session: SessionDep, resources: ResourcesDep
) -> LrsOut:
    """Set (or replace) the LRS. Needs the per-student permission: the statements are
    each student's own figures per lesson segment (see docs/integration.md)."""
    check_per_student_access(principal)
    org = _organisation(principal)

    def store(s: Session) -> None:
        set_lrs(
            s,
            org,
            endpoint=body.endpoint,
            username=body.username,
            password=body.password.get_secret_value(),
            lms_url=body.lms_url,
            secrets_key=resources.settings.secrets_key,
        )

    await session.run_sync(store)
    session.add(AuditEntry(actor=_actor(principal.key_id), action="lrs.set", subject=f"org:{org}"))
    answer = LrsOut.of(await _status(session, org))
    await session.commit()
    return answer


@router.get(
    "", summary="The organisation's LRS (without its password)", responses=error_responses(404)
)
async def get_lrs(principal: LmsDep, session: SessionDep) -> LrsOut:
    return LrsOut.of(await _status(session, _organisation(principal)))


@router.delete(
    "",
    summary="Stop sending statements: forget the LRS",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404),
)
async def delete_lrs(principal: LmsDep, session: SessionDep) -> Response:
    """Statements not yet sent stay waiting for the next LRS set."""
    org = _organisation(principal)
    if not await session.run_sync(lambda s: remove_lrs(s, org)):
        raise NotFound("this organisation has no LRS", field="lrs")
    session.add(
        AuditEntry(actor=_actor(principal.key_id), action="lrs.remove", subject=f"org:{org}")
    )
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)

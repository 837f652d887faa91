"""Erasure of a student's data by the LMS of its organisation."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path

from services.ingest.deps import LmsDep, ResourcesDep, SessionDep
from services.ingest.erasure import erase_student, find_student
from services.ingest.errors import error_responses
from services.ingest.schemas import TEXT_PATTERN, ErasureOut

router = APIRouter(prefix="/v1/students", tags=["set-up (LMS key)"])

StudentRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=TEXT_PATTERN,
        description="The student's LMS id in the key's organisation, or its ClassPulse UUID",
    ),
]


@router.delete(
    "/{external_id}",
    summary="Erase everything stored about a student",
    description=(
        "Deletes the student's face events, frames, consents, enrolments and the student "
        "itself, and the bytes of frames still queued. Frames of the student that a worker "
        "takes afterwards are dropped. The audit log records who erased which pseudonymous "
        "id, when, and how many rows. Needs the LMS key of the student's organisation."
    ),
    responses=error_responses(401, 403, 404, 422, 503),
)
async def erase(
    external_id: StudentRef, principal: LmsDep, session: SessionDep, resources: ResourcesDep
) -> ErasureOut:
    student = await find_student(session, principal, external_id)
    external, student_id = student.external_id, student.id
    actor = f"{principal.kind.value}:{principal.key_id}"
    counts = await erase_student(session, resources.redis, student, actor)
    await session.commit()
    return ErasureOut(
        student_id=student_id,
        external_id=external,
        face_events=counts.face_events,
        frames=counts.frames,
        frame_bytes=counts.frame_bytes,
        consents=counts.consents,
        enrolments=counts.enrolments,
        erased_at=dt.datetime.now(dt.UTC),
    )

"""Endpoints the classroom page calls with its student token: who am I, my consent."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest import consent
from services.ingest.config import IngestSettings
from services.ingest.deps import ResourcesDep, SessionDep, StudentDep
from services.ingest.errors import error_responses
from services.ingest.intake import crops_mode, require_own_lesson
from services.ingest.schemas import ClientDetectionOut, ConsentOut, MeOut
from shared import client_detection
from shared.access import lesson_is_live, lesson_with_class
from shared.auth import Principal
from shared.db.models import ConsentParty, Lesson, SchoolClass, Student
from shared.errors import NotFound

router = APIRouter(
    prefix="/v1/lessons/{lesson_id}",
    tags=["classroom (student token)"],
    responses=error_responses(401, 403, 404, 422),
)


async def _own(
    session: AsyncSession, principal: Principal, lesson_id: uuid.UUID
) -> tuple[Lesson, SchoolClass, Student]:
    student_id = require_own_lesson(principal, lesson_id)
    lesson, school_class = await lesson_with_class(session, lesson_id)
    student = await session.get(Student, student_id)
    if student is None:
        raise NotFound("this student no longer exists", field="token")
    return lesson, school_class, student


async def _set(
    session: AsyncSession, principal: Principal, lesson_id: uuid.UUID, *, granted: bool
) -> ConsentOut:
    _, school_class, student = await _own(session, principal, lesson_id)
    change = consent.grant if granted else consent.withdraw
    await change(
        session,
        student_id=student.id,
        class_id=school_class.id,
        lesson_id=lesson_id,
        party=ConsentParty.STUDENT,
        actor=f"student:{student.id}",
    )
    now = await consent.state(session, student.id, school_class.id, lesson_id)
    await session.commit()
    return ConsentOut(
        student_external_id=student.external_id,
        class_id=school_class.id,
        lesson_id=lesson_id,
        party=ConsentParty.STUDENT.value,
        active=granted,
        processing=now.active,
    )


@router.put(
    "/consent",
    summary="The student consents to this lesson",
    description=(
        "The student's own part of the consent. Frames are processed only while the school "
        "permits it too (`processing` in the answer); the student's consent cannot undo "
        "the school's withdrawal."
    ),
)
async def grant_own_consent(
    lesson_id: uuid.UUID, principal: StudentDep, session: SessionDep
) -> ConsentOut:
    return await _set(session, principal, lesson_id, granted=True)


@router.delete(
    "/consent",
    summary="The student withdraws consent for this lesson",
    description="Stops processing at once; the school's permission cannot undo it.",
)
async def withdraw_own_consent(
    lesson_id: uuid.UUID, principal: StudentDep, session: SessionDep
) -> ConsentOut:
    return await _set(session, principal, lesson_id, granted=False)


@router.get("/me", summary="The token's student, the lesson and the consent state")
async def me(
    lesson_id: uuid.UUID, principal: StudentDep, session: SessionDep, resources: ResourcesDep
) -> MeOut:
    lesson, school_class, student = await _own(session, principal, lesson_id)
    parts = await consent.state(session, student.id, school_class.id, lesson_id)
    return MeOut(
        student_external_id=student.external_id,
        lesson_id=lesson.id,
        lesson_title=lesson.title,
        consent_active=parts.active,
        own_consent=parts.student,
        school_permission=parts.school,
        lesson_live=lesson_is_live(lesson),
        starts_at=lesson.starts_at,
        ends_at=lesson.ends_at,
        frame_interval_seconds=resources.settings.suggested_interval_seconds,
        client_detection=_client_detection(resources.settings, school_class.client_detection),
    )


#: Where the page fetches the detector's weights (``create_app`` serves them).
MODEL_PATH = "/detector-models/"


def _client_detection(
    settings: IngestSettings, class_crops: bool | None
) -> ClientDetectionOut | None:
    if not crops_mode(settings, class_crops).on:
        return None
    spec = settings.page_detector
    return ClientDetectionOut(
        detector=spec.name,
        model_url=MODEL_PATH + spec.file,
        input_size=spec.input_size,
        strides=list(spec.strides),
        interpolated_anchor=spec.interpolated_anchor,
        min_score=spec.min_score,
        suppression_iou=client_detection.SUPPRESSION_IOU,
        raw_score_limit=client_detection.RAW_SCORE_LIMIT,
        min_face_fraction=settings.min_face_fraction,
        fer_keypoints=[list(p) for p in client_detection.FER_KEYPOINTS],
        model_input_side=client_detection.MODEL_INPUT_SIDE,
        crop_side=client_detection.CROP_SIDE,
        max_faces=client_detection.MAX_FACES,
    )

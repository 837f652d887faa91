"""Set-up endpoints for LMS platforms: classes, lessons, students, consents, markers, tokens."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest import consent
from services.ingest.deps import LmsDep, PrincipalDep, ResourcesDep, SessionDep
from services.ingest.errors import error_responses
from services.ingest.keys import key_created, new_api_key
from services.ingest.schemas import (
    TEXT_PATTERN,
    ClassIn,
    ClassOut,
    ClassPatch,
    ConsentOut,
    EnrolIn,
    EnrolOut,
    LessonIn,
    LessonOut,
    MarkerIn,
    MarkerOut,
    StudentOut,
    StudentTokenOut,
    TeacherKeyIn,
    TeacherKeyOut,
)
from shared.access import check_class_access, check_per_student_access, lesson_with_class
from shared.auth import Principal, PrincipalKind, issue_student_token
from shared.db.models import (
    ConsentParty,
    Enrolment,
    KeyRole,
    Lesson,
    LessonMarker,
    SchoolClass,
    Student,
)
from shared.enrolment import enrol
from shared.errors import Conflict, NotFound

#: A student's LMS id in a path: looked up, never stored from here.
StudentExternalId = Annotated[
    str, Path(min_length=1, max_length=200, pattern=TEXT_PATTERN, description="LMS student id")
]

router = APIRouter(
    prefix="/v1",
    tags=["set-up (LMS key)"],
    responses=error_responses(400, 401, 403, 404, 422),
)


def _actor(principal: Principal) -> str:
    return f"{principal.kind.value}:{principal.key_id}"


async def _class(session: AsyncSession, principal: Principal, class_id: uuid.UUID) -> SchoolClass:
    school_class = await session.get(SchoolClass, class_id)
    if school_class is None:
        raise NotFound(f"class {class_id} not found", field="class")
    check_class_access(principal, school_class)
    return school_class


async def _lesson(
    session: AsyncSession, principal: Principal, lesson_id: uuid.UUID
) -> tuple[Lesson, SchoolClass]:
    lesson, school_class = await lesson_with_class(session, lesson_id)
    check_class_access(principal, school_class)
    return lesson, school_class


async def _enrolled_student(
    session: AsyncSession, school_class: SchoolClass, external_id: str
) -> Student:
    student = await session.scalar(
        select(Student)
        .join(Enrolment, Enrolment.student_id == Student.id)
        .where(
            Enrolment.class_id == school_class.id,
            Student.organisation_id == school_class.organisation_id,
            Student.external_id == external_id,
        )
    )
    if student is None:
        raise NotFound(f"student {external_id!r} is not enrolled in this class", field="student")
    return student


@router.post(
    "/classes",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409),
    summary="Create a class",
)
async def create_class(body: ClassIn, principal: LmsDep, session: SessionDep) -> ClassOut:
    row = SchoolClass(
        organisation_id=principal.organisation_id,
        external_id=body.external_id,
        title=body.title,
        client_detection=body.client_detection,
    )
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        raise Conflict(
            f"a class with external_id {body.external_id!r} exists", field="external_id"
        ) from None
    return ClassOut.model_validate(row)


@router.get("/classes", summary="List the classes these credentials can see")
async def list_classes(principal: PrincipalDep, session: SessionDep) -> list[ClassOut]:
    query = select(SchoolClass).order_by(SchoolClass.created_at)
    if principal.kind == PrincipalKind.LMS:
        query = query.where(SchoolClass.organisation_id == principal.organisation_id)
    elif principal.kind == PrincipalKind.TEACHER:
        query = query.where(SchoolClass.id == principal.class_id)
    else:
        return []
    return [ClassOut.model_validate(c) for c in await session.scalars(query)]


@router.patch("/classes/{class_id}", summary="Change a class's title or face-crops mode")
async def update_class(
    class_id: uuid.UUID, body: ClassPatch, principal: LmsDep, session: SessionDep
) -> ClassOut:
    school_class = await _class(session, principal, class_id)
    for field in body.model_fields_set:
        setattr(school_class, field, getattr(body, field))
    await session.commit()
    return ClassOut.model_validate(school_class)


@router.post(
    "/classes/{class_id}/lessons", status_code=status.HTTP_201_CREATED, summary="Create a lesson"
)
async def create_lesson(
    class_id: uuid.UUID, body: LessonIn, principal: LmsDep, session: SessionDep
) -> LessonOut:
    await _class(session, principal, class_id)
    row = Lesson(
        class_id=class_id,
        title=body.title,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        is_demo=body.is_demo,
    )
    session.add(row)
    await session.commit()
    return LessonOut.model_validate(row)


@router.get("/classes/{class_id}/lessons", summary="List a class's lessons")
async def list_lessons(
    class_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> list[LessonOut]:
    await _class(session, principal, class_id)
    rows = await session.scalars(
        select(Lesson).where(Lesson.class_id == class_id).order_by(Lesson.starts_at)
    )
    return [LessonOut.model_validate(r) for r in rows]


@router.post("/classes/{class_id}/students", summary="Enrol students (idempotent)")
async def enrol_students(
    class_id: uuid.UUID, body: EnrolIn, principal: LmsDep, session: SessionDep
) -> EnrolOut:
    school_class = await _class(session, principal, class_id)
    students = await enrol(session, school_class.organisation_id, class_id, body.external_ids)
    await session.commit()
    return EnrolOut(
        class_id=class_id,
        students=[StudentOut(id=i, external_id=e) for e, i in students.items()],
    )


@router.post(
    "/classes/{class_id}/teacher-keys",
    status_code=status.HTTP_201_CREATED,
    summary="Create a teacher key for one class (plaintext shown once)",
)
async def create_teacher_key(
    class_id: uuid.UUID, principal: LmsDep, session: SessionDep, body: TeacherKeyIn | None = None
) -> TeacherKeyOut:
    """``per_student`` decides whether the key may read per-student data (off by default:
    the key then reads class aggregates only). An LMS key grants only what it has."""
    school_class = await _class(session, principal, class_id)
    wanted = body or TeacherKeyIn()
    if wanted.per_student:
        check_per_student_access(principal)
    row, plaintext = new_api_key(
        school_class.organisation_id,
        KeyRole.TEACHER,
        wanted.name,
        class_id,
        per_student=wanted.per_student,
    )
    session.add(row)
    session.add(key_created(row, _actor(principal)))
    await session.commit()
    return TeacherKeyOut(
        key=plaintext,
        prefix=row.prefix,
        class_id=class_id,
        name=wanted.name,
        per_student=wanted.per_student,
    )


_PERMISSION = (
    "The school's part of a student's consent. Frames are processed only while both the "
    "school permits it and the student has agreed on the classroom page "
    "(`PUT /v1/lessons/{lesson_id}/consent` with the student's token); either withdrawal "
    "stops processing at once, and neither party's grant undoes the other's withdrawal. "
    "A lesson-level record decides over the class-level one of the same party."
)


async def _set_consent(
    session: AsyncSession,
    principal: Principal,
    school_class: SchoolClass,
    lesson_id: uuid.UUID | None,
    external_id: str,
    *,
    granted: bool,
) -> ConsentOut:
    student = await _enrolled_student(session, school_class, external_id)
    change = consent.grant if granted else consent.withdraw
    await change(
        session,
        student_id=student.id,
        class_id=school_class.id,
        lesson_id=lesson_id,
        party=ConsentParty.SCHOOL,
        actor=_actor(principal),
    )
    processing = None
    if lesson_id is not None:
        processing = (await consent.state(session, student.id, school_class.id, lesson_id)).active
    await session.commit()
    return ConsentOut(
        student_external_id=external_id,
        class_id=school_class.id,
        lesson_id=lesson_id,
        party=ConsentParty.SCHOOL.value,
        active=granted,
        processing=processing,
    )


@router.put(
    "/lessons/{lesson_id}/consents/{external_student_id}",
    summary="Record the school's permission for a lesson",
    description=_PERMISSION,
)
async def grant_lesson_consent(
    lesson_id: uuid.UUID,
    external_student_id: StudentExternalId,
    principal: LmsDep,
    session: SessionDep,
) -> ConsentOut:
    _, school_class = await _lesson(session, principal, lesson_id)
    return await _set_consent(
        session, principal, school_class, lesson_id, external_student_id, granted=True
    )


@router.delete(
    "/lessons/{lesson_id}/consents/{external_student_id}",
    summary="Withdraw the school's permission for a lesson",
    description=_PERMISSION,
)
async def withdraw_lesson_consent(
    lesson_id: uuid.UUID,
    external_student_id: StudentExternalId,
    principal: LmsDep,
    session: SessionDep,
) -> ConsentOut:
    _, school_class = await _lesson(session, principal, lesson_id)
    return await _set_consent(
        session, principal, school_class, lesson_id, external_student_id, granted=False
    )


@router.put(
    "/classes/{class_id}/consents/{external_student_id}",
    summary="Record the school's permission for every lesson of a class",
    description=_PERMISSION,
)
async def grant_class_consent(
    class_id: uuid.UUID,
    external_student_id: StudentExternalId,
    principal: LmsDep,
    session: SessionDep,
) -> ConsentOut:
    school_class = await _class(session, principal, class_id)
    return await _set_consent(
        session, principal, school_class, None, external_student_id, granted=True
    )


@router.delete(
    "/classes/{class_id}/consents/{external_student_id}",
    summary="Withdraw the school's permission for a class and its lessons",
    description=_PERMISSION,
)
async def withdraw_class_consent(
    class_id: uuid.UUID,
    external_student_id: StudentExternalId,
    principal: LmsDep,
    session: SessionDep,
) -> ConsentOut:
    school_class = await _class(session, principal, class_id)
    return await _set_consent(
        session, principal, school_class, None, external_student_id, granted=False
    )


@router.post(
    "/lessons/{lesson_id}/markers",
    status_code=status.HTTP_201_CREATED,
    summary="Mark a slide or topic change",
)
async def add_marker(
    lesson_id: uuid.UUID, body: MarkerIn, principal: LmsDep, session: SessionDep
) -> MarkerOut:
    await _lesson(session, principal, lesson_id)
    row = LessonMarker(lesson_id=lesson_id, at=body.at, kind=body.kind, label=body.label)
    session.add(row)
    await session.commit()
    return MarkerOut.model_validate(row)


@router.get("/lessons/{lesson_id}/markers", summary="List a lesson's markers")
async def list_markers(
    lesson_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> list[MarkerOut]:
    await _lesson(session, principal, lesson_id)
    rows = await session.scalars(
        select(LessonMarker).where(LessonMarker.lesson_id == lesson_id).order_by(LessonMarker.at)
    )
    return [MarkerOut.model_validate(r) for r in rows]


@router.post(
    "/lessons/{lesson_id}/students/{external_student_id}/token",
    summary="Issue a short-lived student token and the classroom page URL",
)
async def issue_token(
    lesson_id: uuid.UUID,
    external_student_id: StudentExternalId,
    principal: LmsDep,
    session: SessionDep,
    resources: ResourcesDep,
) -> StudentTokenOut:
    _, school_class = await _lesson(session, principal, lesson_id)
    student = await _enrolled_student(session, school_class, external_student_id)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ttl = resources.settings.token_ttl_seconds
    token = issue_student_token(
        resources.settings.token_secret.get_secret_value(),
        student_id=student.id,
        lesson_id=lesson_id,
        ttl_seconds=ttl,
        now=now,
    )
    return StudentTokenOut(
        token=token,
        expires_at=now + dt.timedelta(seconds=ttl),
        classroom_url=f"/classroom/{lesson_id}#token={token}",
    )

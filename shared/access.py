"""Who may see and do what: credentials to a Principal, then per-resource checks.

Both APIs use these. Class-level data is for the class's LMS key or teacher
key. Per-student data (one student's timeline, per-student summary rows, event
exports) needs a key with the per-student permission, or that student's own
token (for the lesson it was issued for); anything else is 403. Unknown ids
are 404.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import (
    KEY_SCHEME,
    Principal,
    PrincipalKind,
    is_teacher_session,
    key_matches,
    key_prefix,
    verify_student_token,
    verify_teacher_session,
)
from shared.db.models import ApiKey, KeyRole, Lesson, SchoolClass
from shared.errors import AuthError, Forbidden, NotFound


def bearer_token(authorization: str | None) -> str:
    """The credential of an ``Authorization: Bearer …`` header; ``AuthError`` if absent."""
    if not authorization:
        raise AuthError(
            "missing credentials: send Authorization: Bearer <API key or student token>"
        )
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError("Authorization header must be 'Bearer <credential>'")
    return value.strip()


async def principal_for_api_key(session: AsyncSession, plaintext: str) -> Principal:
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == key_prefix(plaintext)))
    if row is None or not key_matches(plaintext, row.key_hash):
        raise AuthError("unknown API key")
    if row.revoked_at is not None:
        raise AuthError("API key revoked")
    kind = PrincipalKind.LMS if row.role == KeyRole.LMS else PrincipalKind.TEACHER
    return Principal(
        kind,
        organisation_id=row.organisation_id,
        class_id=row.class_id,
        key_id=row.id,
        per_student=row.per_student,
    )


async def authenticate(session: AsyncSession, credential: str, token_secret: str) -> Principal:
    """An API key (``cp_…``), a student token or a teacher session to the caller's Principal."""
    if credential.startswith(f"{KEY_SCHEME}_"):
        return await principal_for_api_key(session, credential)
    if is_teacher_session(credential):
        return verify_teacher_session(token_secret, credential)
    return verify_student_token(token_secret, credential)


async def lesson_with_class(
    session: AsyncSession, lesson_id: uuid.UUID
) -> tuple[Lesson, SchoolClass]:
    row = (
        await session.execute(
            select(Lesson, SchoolClass)
            .join(SchoolClass, SchoolClass.id == Lesson.class_id)
            .where(Lesson.id == lesson_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"lesson {lesson_id} not found", field="lesson")
    return row[0], row[1]


#: Why a key without the per-student permission is refused per-student data.
PER_STUDENT_REFUSAL = (
    "this key may read class-level data only: per-student data needs a key with the "
    "per-student permission (granted by the LMS), or the student's own token"
)


def may_read_students(principal: Principal) -> bool:
    """Whether an API key may read every student's data in the classes it covers."""
    return principal.kind != PrincipalKind.STUDENT and principal.per_student


def check_per_student_access(principal: Principal) -> None:
    """403 unless the caller is an API key with the per-student permission."""
    if not may_read_students(principal):
        raise Forbidden(PER_STUDENT_REFUSAL)


def check_class_access(principal: Principal, school_class: SchoolClass) -> None:
    """LMS key of the class's organisation, or a teacher key of this class."""
    if (
        principal.kind == PrincipalKind.LMS
        and principal.organisation_id == school_class.organisation_id
    ):
        return
    if principal.kind == PrincipalKind.TEACHER and principal.class_id == school_class.id:
        return
    raise Forbidden("these credentials do not give access to this class")


async def require_lesson_access(
    session: AsyncSession,
    principal: Principal,
    lesson_id: uuid.UUID,
    *,
    student_id: uuid.UUID | None = None,
    per_student: bool = False,
) -> tuple[Lesson, SchoolClass]:
    """The lesson if ``principal`` may read it (or one student's data in it).

    Class-level reads (``student_id`` None) need the class's LMS or teacher key;
    a student token may read only its own student in its own lesson. With
    ``per_student``, a key needs the per-student permission as well.
    """
    lesson, school_class = await lesson_with_class(session, lesson_id)
    if principal.kind == PrincipalKind.STUDENT:
        if (
            student_id is not None
            and principal.student_id == student_id
            and principal.lesson_id == lesson_id
        ):
            return lesson, school_class
        raise Forbidden("a student token gives access to its own data in its own lesson only")
    check_class_access(principal, school_class)
    if per_student:
        check_per_student_access(principal)
    return lesson, school_class


def lesson_is_live(lesson: Lesson, now: dt.datetime | None = None) -> bool:
    """Frames are accepted from the lesson's start to its end."""
    now = now or dt.datetime.now(dt.UTC)
    return lesson.starts_at <= now <= lesson.ends_at

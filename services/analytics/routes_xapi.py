"""The xAPI statements of a lesson: what left, or will leave, for the organisation's LRS."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from services.analytics.deps import ClassLessonDep, SessionDep
from services.analytics.errors import READ_ERRORS
from shared.access import check_per_student_access
from shared.db.models import XapiLesson, XapiStatement

router = APIRouter(prefix="/v1/lessons", tags=["xAPI"])


class Delivery(StrEnum):
    WAITING = "waiting"
    SENT = "sent"
    REJECTED = "rejected"


class StatementDelivery(BaseModel):
    id: uuid.UUID
    status: Delivery
    attempts: int
    sent_at: dt.datetime | None
    last_error: str | None


class LessonStatements(BaseModel):
    lesson_id: uuid.UUID
    built_at: dt.datetime | None = Field(
        description="When the statements were built (once the lesson ended, for an "
        "organisation with an LRS); null: not built yet"
    )
    statements: list[dict[str, Any]] = Field(description="xAPI 1.0.3 statements, as sent")
    delivery: list[StatementDelivery] = Field(description="Each statement's delivery, same order")


def _status(row: XapiStatement) -> Delivery:
    if row.sent_at is not None:
        return Delivery.SENT
    return Delivery.REJECTED if row.rejected_at is not None else Delivery.WAITING


@router.get(
    "/{lesson}/xapi/statements",
    summary="The lesson's xAPI statements and their delivery to the LRS",
    responses=READ_ERRORS,
)
async def lesson_statements(access: ClassLessonDep, session: SessionDep) -> LessonStatements:
    """One statement per student per lesson segment (docs/integration.md, *xAPI*), built
    once the lesson is over for an organisation with an LRS. Each student's own figures:
    per-student data, for keys with the per-student permission only (403 otherwise)."""
    check_per_student_access(access.principal)
    lesson_id = access.lesson.id
    built = await session.get(XapiLesson, lesson_id)
    rows = list(
        await session.scalars(
            select(XapiStatement)
            .where(XapiStatement.lesson_id == lesson_id)
            .order_by(XapiStatement.created_at, XapiStatement.id)
        )
    )
    return LessonStatements(
        lesson_id=lesson_id,
        built_at=built.built_at if built else None,
        statements=[row.body for row in rows],
        delivery=[
            StatementDelivery(
                id=row.id,
                status=_status(row),
                attempts=row.attempts,
                sent_at=row.sent_at,
                last_error=row.last_error,
            )
            for row in rows
        ],
    )

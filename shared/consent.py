"""The consent rule, in one place for ingest (admission) and the worker (processing).

For a student in a lesson, the latest lesson-level record decides; when there
is none, the latest class-level record does. Active means not withdrawn. A
lesson-level refusal therefore overrides a class-level consent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, or_, select

from shared.db.models import Consent


def consent_active(student_id: Any, class_id: Any, lesson_id: Any) -> ColumnElement[bool]:
    """SQL boolean: the deciding consent record of the student for the lesson is active."""
    deciding = (
        select(Consent.withdrawn_at.is_(None))
        .where(
            Consent.student_id == student_id,
            Consent.class_id == class_id,
            or_(Consent.lesson_id == lesson_id, Consent.lesson_id.is_(None)),
        )
        .order_by(Consent.lesson_id.is_(None), Consent.granted_at.desc(), Consent.id)
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(deciding, False)

"""The consent rule, in one place for ingest (admission) and the worker (processing).

Processing a student's frames in a lesson needs two things at once: the
school's permission (recorded by its LMS key) and the student's own consent
(recorded with the student's token). Each party's records are read apart:
for a party, the latest lesson-level record decides, and when there is none,
the latest class-level one does; active means not withdrawn. Either party's
withdrawal therefore stops processing, and neither party can undo the
other's: the last writer does not win.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select

from shared.db.models import Consent, ConsentParty


def party_consents(
    party: ConsentParty, student_id: Any, class_id: Any, lesson_id: Any
) -> ColumnElement[bool]:
    """SQL boolean: ``party``'s deciding record for the student in the lesson is active."""
    deciding = (
        select(Consent.withdrawn_at.is_(None))
        .where(
            Consent.student_id == student_id,
            Consent.class_id == class_id,
            Consent.party == party,
            or_(Consent.lesson_id == lesson_id, Consent.lesson_id.is_(None)),
        )
        .order_by(Consent.lesson_id.is_(None), Consent.granted_at.desc(), Consent.id)
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(deciding, False)


def consent_active(student_id: Any, class_id: Any, lesson_id: Any) -> ColumnElement[bool]:
    """SQL boolean: both the school and the student consent to processing in the lesson."""
    return and_(
        party_consents(ConsentParty.SCHOOL, student_id, class_id, lesson_id),
        party_consents(ConsentParty.STUDENT, student_id, class_id, lesson_id),
    )

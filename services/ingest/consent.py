"""Consent records of one party (school or student): granting, withdrawing, state.

The rule itself is ``shared.consent``: processing needs both parties. A party
only ever writes and reads its own records, so neither can grant over the
other's withdrawal. Withdrawing for a lesson that only has class-level consent
writes a lesson-level refusal, so the class consent cannot override it;
withdrawing for a class withdraws every active record of that party for the
class. Every change is audited. These functions never commit: the request does.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.consent import party_consents
from shared.db.models import AuditEntry, Consent, ConsentParty


@dataclass(frozen=True, slots=True)
class ConsentState:
    """Both parts of a student's consent for one lesson."""

    school: bool
    student: bool

    @property
    def active(self) -> bool:
        """Whether frames are processed: both parties consent."""
        return self.school and self.student


async def state(
    session: AsyncSession, student_id: uuid.UUID, class_id: uuid.UUID, lesson_id: uuid.UUID
) -> ConsentState:
    school, student = (
        await session.execute(
            select(
                party_consents(ConsentParty.SCHOOL, student_id, class_id, lesson_id),
                party_consents(ConsentParty.STUDENT, student_id, class_id, lesson_id),
            )
        )
    ).one()
    return ConsentState(school=bool(school), student=bool(student))


async def _latest(
    session: AsyncSession,
    party: ConsentParty,
    student_id: uuid.UUID,
    class_id: uuid.UUID,
    lesson_id: uuid.UUID | None,
) -> Consent | None:
    scope = Consent.lesson_id.is_(None) if lesson_id is None else Consent.lesson_id == lesson_id
    return await session.scalar(
        select(Consent)
        .where(
            Consent.student_id == student_id,
            Consent.class_id == class_id,
            Consent.party == party,
            scope,
        )
        .order_by(Consent.granted_at.desc(), Consent.id)
        .limit(1)
    )


def _audit(
    session: AsyncSession, actor: str, action: str, student_id: uuid.UUID, **details: Any
) -> None:
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            subject=f"student:{student_id}",
            details={k: str(v) if v is not None else None for k, v in details.items()},
        )
    )


async def grant(
    session: AsyncSession,
    *,
    student_id: uuid.UUID,
    class_id: uuid.UUID,
    lesson_id: uuid.UUID | None,
    party: ConsentParty,
    actor: str,
) -> Consent:
    """Record ``party``'s consent for a lesson (or the whole class when ``lesson_id`` is None)."""
    latest = await _latest(session, party, student_id, class_id, lesson_id)
    if latest is not None and latest.withdrawn_at is None:
        return latest  # already consented: granting again changes nothing
    # Explicit time: several rows in one transaction must still order by time.
    row = Consent(
        student_id=student_id,
        class_id=class_id,
        lesson_id=lesson_id,
        party=party,
        granted_at=dt.datetime.now(dt.UTC),
    )
    session.add(row)
    _audit(
        session,
        actor,
        "consent.grant",
        student_id,
        class_id=class_id,
        lesson_id=lesson_id,
        party=party.value,
    )
    await session.flush()
    return row


async def withdraw(
    session: AsyncSession,
    *,
    student_id: uuid.UUID,
    class_id: uuid.UUID,
    lesson_id: uuid.UUID | None,
    party: ConsentParty,
    actor: str,
) -> None:
    """Withdraw ``party``'s consent for a lesson, or for the class and all its lessons."""
    now = dt.datetime.now(dt.UTC)
    if lesson_id is None:
        await session.execute(
            update(Consent)
            .where(
                Consent.student_id == student_id,
                Consent.class_id == class_id,
                Consent.party == party,
                Consent.withdrawn_at.is_(None),
            )
            .values(withdrawn_at=now)
        )
    else:
        latest = await _latest(session, party, student_id, class_id, lesson_id)
        if latest is not None and latest.withdrawn_at is None:
            latest.withdrawn_at = now
        elif latest is None:
            # A lesson-level refusal, so that a class-level consent cannot decide.
            session.add(
                Consent(
                    student_id=student_id,
                    class_id=class_id,
                    lesson_id=lesson_id,
                    party=party,
                    granted_at=now,
                    withdrawn_at=now,
                )
            )
    _audit(
        session,
        actor,
        "consent.withdraw",
        student_id,
        class_id=class_id,
        lesson_id=lesson_id,
        party=party.value,
    )
    await session.flush()

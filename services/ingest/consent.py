"""Consent records: which one decides, granting and withdrawing.

The rule itself is ``shared.consent.consent_active``. Withdrawing for a
lesson that only has class-level consent writes a lesson-level refusal, so
the class consent cannot override it; withdrawing for a class
withdraws every active record of that class. Every change is audited. These
functions never commit: the request does.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.consent import consent_active
from shared.db.models import AuditEntry, Consent


async def is_active(
    session: AsyncSession, student_id: uuid.UUID, class_id: uuid.UUID, lesson_id: uuid.UUID
) -> bool:
    return bool(await session.scalar(select(consent_active(student_id, class_id, lesson_id))))


async def _latest(
    session: AsyncSession, student_id: uuid.UUID, class_id: uuid.UUID, lesson_id: uuid.UUID | None
) -> Consent | None:
    scope = Consent.lesson_id.is_(None) if lesson_id is None else Consent.lesson_id == lesson_id
    return await session.scalar(
        select(Consent)
        .where(Consent.student_id == student_id, Consent.class_id == class_id, scope)
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
    source: str,
    actor: str,
) -> Consent:
    """Record consent for a lesson (or the whole class when ``lesson_id`` is None)."""
    latest = await _latest(session, student_id, class_id, lesson_id)
    if latest is not None and latest.withdrawn_at is None:
        return latest  # already consented: granting again changes nothing
    # Explicit time: several rows in one transaction must still order by time.
    row = Consent(
        student_id=student_id,
        class_id=class_id,
        lesson_id=lesson_id,
        source=source,
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
        source=source,
    )
    await session.flush()
    return row


async def withdraw(
    session: AsyncSession,
    *,
    student_id: uuid.UUID,
    class_id: uuid.UUID,
    lesson_id: uuid.UUID | None,
    source: str,
    actor: str,
) -> None:
    """Withdraw consent for a lesson, or for the class and all its lessons."""
    now = dt.datetime.now(dt.UTC)
    if lesson_id is None:
        await session.execute(
            update(Consent)
            .where(
                Consent.student_id == student_id,
                Consent.class_id == class_id,
                Consent.withdrawn_at.is_(None),
            )
            .values(withdrawn_at=now)
        )
    else:
        latest = await _latest(session, student_id, class_id, lesson_id)
        if latest is not None and latest.withdrawn_at is None:
            latest.withdrawn_at = now
        elif latest is None:
            # A lesson-level refusal, so that a class-level consent cannot decide.
            session.add(
                Consent(
                    student_id=student_id,
                    class_id=class_id,
                    lesson_id=lesson_id,
                    source=source,
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
        source=source,
    )
    await session.flush()

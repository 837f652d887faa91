"""Consent in two parts: the school's permission and the student's own consent.

``consents.source`` (free text, "lms" or "student") becomes ``party``, an enum
of ``school`` and ``student``, and the rule counts the two parties apart, so
processing needs both and either withdrawal stops it. Existing rows keep the
party that wrote them: a student who had only the school's record must agree
on the classroom page before frames are processed again (no consent is
inferred for anyone).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTY = postgresql.ENUM("school", "student", name="consent_party", create_type=False)


def upgrade() -> None:
    PARTY.create(op.get_bind(), checkfirst=False)
    op.add_column("consents", sa.Column("party", PARTY, nullable=True))
    op.execute(
        "UPDATE consents SET party = "
        "(CASE WHEN source = 'student' THEN 'student' ELSE 'school' END)::consent_party"
    )
    op.alter_column("consents", "party", nullable=False)
    op.drop_column("consents", "source")


def downgrade() -> None:
    op.add_column("consents", sa.Column("source", sa.String(length=20), nullable=True))
    op.execute(
        "UPDATE consents SET source = CASE WHEN party = 'student' THEN 'student' ELSE 'lms' END"
    )
    op.alter_column("consents", "source", nullable=False)
    op.drop_column("consents", "party")
    PARTY.drop(op.get_bind(), checkfirst=False)

"""xAPI statements to an organisation's Learning Record Store (issue 24, point 2).

``lrs_configs``: one LRS per organisation (endpoint, basic-auth user, the
password encrypted, the LMS URL that is every actor's ``homePage``).
``xapi_statements``: the outbox, one row per statement, keyed by the
statement's own deterministic id; sent or refused rows carry when.
``xapi_lessons``: the lessons whose statements were built, so each is built once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 08:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "lrs_configs",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint", sa.String(500), nullable=False),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("password_encrypted", sa.String(1000), nullable=False),
        sa.Column("lms_url", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_lrs_configs_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_lrs_configs")),
    )
    op.create_table(
        "xapi_statements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("lesson_id", sa.Uuid(), nullable=False),
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_xapi_statements_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["lessons.id"],
            name=op.f("fk_xapi_statements_lesson_id_lessons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.id"],
            name=op.f("fk_xapi_statements_student_id_students"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xapi_statements")),
    )
    op.create_index(
        "ix_xapi_statements_pending",
        "xapi_statements",
        ["organisation_id", "next_attempt_at"],
        postgresql_where=sa.text("sent_at IS NULL AND rejected_at IS NULL"),
    )
    op.create_index("ix_xapi_statements_lesson", "xapi_statements", ["lesson_id"])
    op.create_index("ix_xapi_statements_student", "xapi_statements", ["student_id"])
    op.create_table(
        "xapi_lessons",
        sa.Column("lesson_id", sa.Uuid(), nullable=False),
        sa.Column("statements", sa.Integer(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["lessons.id"],
            name=op.f("fk_xapi_lessons_lesson_id_lessons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("lesson_id", name=op.f("pk_xapi_lessons")),
    )


def downgrade() -> None:
    op.drop_table("xapi_lessons")
    op.drop_index("ix_xapi_statements_student", table_name="xapi_statements")
    op.drop_index("ix_xapi_statements_lesson", table_name="xapi_statements")
    op.drop_index("ix_xapi_statements_pending", table_name="xapi_statements")
    op.drop_table("xapi_statements")
    op.drop_table("lrs_configs")

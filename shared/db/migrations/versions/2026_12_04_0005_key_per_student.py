"""API keys carry a per-student permission (issue 19, point 5).

``api_keys.per_student`` says whether a key may read per-student data: student
timelines, the summary's per-student rows and event exports. Teacher keys start
without it (the LMS grants it when it creates one); the organisation's own LMS
keys keep the access they had.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("per_student", sa.Boolean(), server_default="false", nullable=False),
    )
    op.execute("UPDATE api_keys SET per_student = true WHERE role = 'lms'")


def downgrade() -> None:
    op.drop_column("api_keys", "per_student")

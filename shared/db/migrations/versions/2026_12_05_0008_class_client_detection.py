"""Per-class face-crops mode (issue 22, point 4).

``classes.client_detection``: whether the classroom page of this class's lessons
finds and crops faces itself; NULL follows the deployment's
``CLASSPULSE_CLIENT_DETECTION``. An LMS sets it per class.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 11:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("classes", sa.Column("client_detection", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("classes", "client_detection")

"""Two more face quality flags from the CNN detectors' keypoints: turned away, cut off.

``face_quality`` gains ``turned_away`` (head turned so far that one side of
the face is hidden) and ``cut_off`` (a large part of the face outside the
frame); see ``shared.vision.quality``. Downgrading clears those two flags
(NULL, as for a face whose quality was never assessed) and rebuilds the type.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = ("turned_away", "cut_off")
OLD = ("ok", "too_small", "too_dark", "too_blurred")


def upgrade() -> None:
    # PostgreSQL >= 12 adds enum values inside a transaction (they are not used in it).
    for value in NEW:
        op.execute(f"ALTER TYPE face_quality ADD VALUE IF NOT EXISTS '{value}'")


def downgrade() -> None:
    listed = ", ".join(f"'{v}'" for v in NEW)
    op.execute(f"UPDATE face_events SET quality = NULL WHERE quality IN ({listed})")
    op.execute("ALTER TYPE face_quality RENAME TO face_quality_old")
    op.execute(f"CREATE TYPE face_quality AS ENUM ({', '.join(repr(v) for v in OLD)})")
    op.execute(
        "ALTER TABLE face_events ALTER COLUMN quality TYPE face_quality "
        "USING quality::text::face_quality"
    )
    op.execute("DROP TYPE face_quality_old")

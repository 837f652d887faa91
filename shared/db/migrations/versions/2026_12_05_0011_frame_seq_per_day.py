"""One frame per (lesson, student, seq) again, checked in each day partition (issue 23).

0009 made ``frames`` unique on ``(lesson_id, student_id, seq, captured_at)``, as
a unique key of a partitioned table must hold the partition key; but two
concurrent requests of one seq carry different capture times (each client
stamps its own), so both were stored. A partitioned table's *partitions* may
have unique indexes of their own: each day partition (and the default one) gets
``UNIQUE (lesson_id, student_id, seq)``, which ingest's ``ON CONFLICT DO
NOTHING`` uses, and the key with ``captured_at`` goes. Two requests of one seq
race to one frame unless their capture times lie on either side of midnight
UTC. ``shared.db.partitions`` gives each new day the same index.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = "uq_frames_lesson_id_student_id_seq_captured_at"
#: As ``shared.db.partitions.SEQ_INDEX_SUFFIX``.
SUFFIX = "_seq"


def _frame_partitions() -> list[str]:
    rows = op.get_bind().execute(
        text(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'frames'::regclass ORDER BY 1"""
        )
    )
    return list(rows.scalars())


def upgrade() -> None:
    for name in _frame_partitions():
        op.execute(
            f'CREATE UNIQUE INDEX IF NOT EXISTS "{name}{SUFFIX}" '
            f'ON "{name}" (lesson_id, student_id, seq)'
        )
    op.execute(f"ALTER TABLE frames DROP CONSTRAINT {OLD_KEY}")


def downgrade() -> None:
    op.execute(
        f"ALTER TABLE frames ADD CONSTRAINT {OLD_KEY} "
        "UNIQUE (lesson_id, student_id, seq, captured_at)"
    )
    for name in _frame_partitions():
        op.execute(f'DROP INDEX IF EXISTS "{name}{SUFFIX}"')

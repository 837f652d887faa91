"""One frame per seq in a lesson over midnight UTC.

0011 keeps one frame per ``(lesson_id, student_id, seq)`` with a unique index on
each day partition, which two requests of one seq captured on either side of
midnight UTC both pass: each meets only its own day's index. A morning lesson
in East Asia crosses UTC midnight, so this is not rare.

``frame_seq_is_new`` is the check ingest puts in the ``WHERE`` of its INSERT for
such a lesson's frames: it takes a lock on the seq, held until the INSERT
commits, then looks for the seq in the lesson's capture times. A VOLATILE
function's queries each take a fresh snapshot, so a request that waited on the
lock sees the frame its holder committed (under READ COMMITTED, ingest's
isolation; a REPEATABLE READ caller would keep its first snapshot and miss it).
One statement, one round trip.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 20:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION frame_seq_is_new(
            p_lesson uuid, p_student uuid, p_seq bigint,
            p_earliest timestamptz, p_latest timestamptz
        ) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(
                hashtextextended('frame-seq:' || p_lesson || ':' || p_student || ':' || p_seq, 0)
            );
            RETURN NOT EXISTS (
                SELECT 1 FROM frames
                WHERE lesson_id = p_lesson AND student_id = p_student AND seq = p_seq
                  AND captured_at BETWEEN p_earliest AND p_latest
            );
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION frame_seq_is_new(uuid, uuid, bigint, timestamptz, timestamptz)")

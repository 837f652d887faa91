"""Per-minute rollup of face events, kept by triggers, for fast class timelines.

Statement-level triggers with transition tables fold each INSERT (and DELETE,
for erasure and retention) on ``face_events`` into ``face_event_minutes`` with
one grouped upsert per statement, so bulk writes stay cheap.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 06:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NUM_LABELS = 7
#: Minutes are whole UTC minutes whatever the session time zone.
MINUTE = "date_bin('1 minute', {t}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"


def _fold_function(name: str, table: str, sign: str) -> str:
    """A trigger function adding (sign '+') or removing (sign '-') a statement's rows."""
    counts = ", ".join(f"count(*) FILTER (WHERE t.label = {i})::int" for i in range(NUM_LABELS))
    merged = ", ".join(
        f"m.label_counts[{i + 1}] {sign} excluded.label_counts[{i + 1}]" for i in range(NUM_LABELS)
    )
    cleanup, alive = "", ""
    if sign == "-":
        # Rows deleted by a cascade from their lesson or student: the rollup rows
        # cascade too, and re-inserting them would violate the foreign keys.
        alive = """
  WHERE EXISTS (SELECT 1 FROM lessons l WHERE l.id = t.lesson_id)
    AND EXISTS (SELECT 1 FROM students s WHERE s.id = t.student_id)"""
        cleanup = f"""
  DELETE FROM face_event_minutes m
  USING (SELECT DISTINCT t.lesson_id, {MINUTE.format(t="t.captured_at")} AS minute, t.student_id
         FROM {table} t) d
  WHERE m.lesson_id = d.lesson_id AND m.minute = d.minute AND m.student_id = d.student_id
    AND m.frames <= 0 AND m.labelled <= 0;"""
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO face_event_minutes AS m
    (lesson_id, minute, student_id, frames, face_frames, labelled, label_counts, confidence_sum)
  SELECT t.lesson_id, {MINUTE.format(t="t.captured_at")}, t.student_id,
         {sign}count(*) FILTER (WHERE t.face_index = 0)::int,
         {sign}count(*) FILTER (WHERE t.face_index = 0 AND t.kind = 'face')::int,
         {sign}count(t.label)::int,
         ARRAY[{counts}],
         {sign}coalesce(sum(t.confidence) FILTER (WHERE t.label IS NOT NULL), 0)
  FROM {table} t{alive}
  GROUP BY 1, 2, 3
  ORDER BY 1, 2, 3
  ON CONFLICT (lesson_id, minute, student_id) DO UPDATE SET
    frames = m.frames {sign} abs(excluded.frames),
    face_frames = m.face_frames {sign} abs(excluded.face_frames),
    labelled = m.labelled {sign} abs(excluded.labelled),
    label_counts = ARRAY[{merged}],
    confidence_sum = m.confidence_sum {sign} abs(excluded.confidence_sum);{cleanup}
  RETURN NULL;
END $$"""


def upgrade() -> None:
    op.create_table(
        "face_event_minutes",
        sa.Column("lesson_id", sa.Uuid(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("face_frames", sa.Integer(), nullable=False),
        sa.Column("labelled", sa.Integer(), nullable=False),
        sa.Column("label_counts", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("confidence_sum", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["lessons.id"],
            name=op.f("fk_face_event_minutes_lesson_id_lessons"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.id"],
            name=op.f("fk_face_event_minutes_student_id_students"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "lesson_id", "minute", "student_id", name=op.f("pk_face_event_minutes")
        ),
    )
    # Events written before this migration are folded in once.
    op.execute(_fold_function("face_event_minutes_add", "new_events", "+"))
    op.execute(_fold_function("face_event_minutes_remove", "old_events", "-"))
    op.execute(
        """INSERT INTO face_event_minutes
             (lesson_id, minute, student_id, frames, face_frames, labelled, label_counts,
              confidence_sum)
           SELECT t.lesson_id, """
        + MINUTE.format(t="t.captured_at")
        + """, t.student_id,
                  count(*) FILTER (WHERE t.face_index = 0),
                  count(*) FILTER (WHERE t.face_index = 0 AND t.kind = 'face'),
                  count(t.label), ARRAY["""
        + ", ".join(f"count(*) FILTER (WHERE t.label = {i})::int" for i in range(NUM_LABELS))
        + """],
                  coalesce(sum(t.confidence) FILTER (WHERE t.label IS NOT NULL), 0)
           FROM face_events t GROUP BY 1, 2, 3"""
    )
    op.execute(
        """CREATE TRIGGER face_events_fold_insert AFTER INSERT ON face_events
           REFERENCING NEW TABLE AS new_events
           FOR EACH STATEMENT EXECUTE FUNCTION face_event_minutes_add()"""
    )
    op.execute(
        """CREATE TRIGGER face_events_fold_delete AFTER DELETE ON face_events
           REFERENCING OLD TABLE AS old_events
           FOR EACH STATEMENT EXECUTE FUNCTION face_event_minutes_remove()"""
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS face_events_fold_delete ON face_events")
    op.execute("DROP TRIGGER IF EXISTS face_events_fold_insert ON face_events")
    op.execute("DROP FUNCTION IF EXISTS face_event_minutes_remove()")
    op.execute("DROP FUNCTION IF EXISTS face_event_minutes_add()")
    op.drop_table("face_event_minutes")

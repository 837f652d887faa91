"""Head pose with each face event, and facing counts in the per-minute rollup (issue 26).

``face_events`` gains ``yaw`` and ``pitch`` (degrees, from the detector's
keypoints: see ``shared.vision.pose``) and ``facing`` (the "facing the screen"
call); all three are NULL for a ``no_face`` row, for a face of a detector
without keypoints (Haar), and for events stored before this migration.
``face_event_minutes`` gains ``posed_frames`` (frames whose face has a pose)
and ``facing_frames`` (frames whose face was facing the screen), counted like
``face_frames`` on each frame's first face; the rollup's trigger functions are
replaced to keep them. Existing rows start at 0, which is what their events
(without a pose) give.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 07:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NUM_LABELS = 7
MINUTE = "date_bin('1 minute', {t}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
POSE_COUNTS = (
    ("posed_frames", "t.face_index = 0 AND t.facing IS NOT NULL"),
    ("facing_frames", "t.face_index = 0 AND t.facing"),
)


def fold_function(
    name: str,
    table: str,
    sign: str,
    *,
    with_pose: bool,
    extra: tuple[tuple[str, str], ...] = (),
) -> str:
    """The rollup's trigger function (migration 0002's, plus the pose counts ``with_pose``
    and later migrations' ``extra`` counts: column and the event rows it counts)."""
    counts = ", ".join(f"count(*) FILTER (WHERE t.label = {i})::int" for i in range(NUM_LABELS))
    merged = ", ".join(
        f"m.label_counts[{i + 1}] {sign} excluded.label_counts[{i + 1}]" for i in range(NUM_LABELS)
    )
    pose = (POSE_COUNTS if with_pose else ()) + extra
    columns = "".join(f", {c}" for c, _ in pose)
    values = "".join(f",\n         {sign}count(*) FILTER (WHERE {w})::int" for _, w in pose)
    updates = "".join(f",\n    {c} = m.{c} {sign} abs(excluded.{c})" for c, _ in pose)
    cleanup, alive = "", ""
    if sign == "-":
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
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO face_event_minutes AS m
    (lesson_id, minute, student_id, frames, face_frames, labelled, label_counts,
     confidence_sum{columns})
  SELECT t.lesson_id, {MINUTE.format(t="t.captured_at")}, t.student_id,
         {sign}count(*) FILTER (WHERE t.face_index = 0)::int,
         {sign}count(*) FILTER (WHERE t.face_index = 0 AND t.kind = 'face')::int,
         {sign}count(t.label)::int,
         ARRAY[{counts}],
         {sign}coalesce(sum(t.confidence) FILTER (WHERE t.label IS NOT NULL), 0){values}
  FROM {table} t{alive}
  GROUP BY 1, 2, 3
  ORDER BY 1, 2, 3
  ON CONFLICT (lesson_id, minute, student_id) DO UPDATE SET
    frames = m.frames {sign} abs(excluded.frames),
    face_frames = m.face_frames {sign} abs(excluded.face_frames),
    labelled = m.labelled {sign} abs(excluded.labelled),
    label_counts = ARRAY[{merged}],
    confidence_sum = m.confidence_sum {sign} abs(excluded.confidence_sum){updates};{cleanup}
  RETURN NULL;
END $$"""


def _replace_functions(*, with_pose: bool) -> None:
    op.execute(fold_function("face_event_minutes_add", "new_events", "+", with_pose=with_pose))
    op.execute(fold_function("face_event_minutes_remove", "old_events", "-", with_pose=with_pose))


def upgrade() -> None:
    op.add_column("face_events", sa.Column("yaw", sa.REAL(), nullable=True))
    op.add_column("face_events", sa.Column("pitch", sa.REAL(), nullable=True))
    op.add_column("face_events", sa.Column("facing", sa.Boolean(), nullable=True))
    op.create_check_constraint(
        op.f("ck_face_events_pose_complete"),
        "face_events",
        "(yaw IS NULL) = (pitch IS NULL) AND (yaw IS NULL) = (facing IS NULL)",
    )
    for column, _ in POSE_COUNTS:
        op.add_column(
            "face_event_minutes",
            sa.Column(column, sa.Integer(), server_default="0", nullable=False),
        )
    _replace_functions(with_pose=True)


def downgrade() -> None:
    _replace_functions(with_pose=False)
    for column, _ in POSE_COUNTS:
        op.drop_column("face_event_minutes", column)
    op.drop_constraint(op.f("ck_face_events_pose_complete"), "face_events", type_="check")
    op.drop_column("face_events", "facing")
    op.drop_column("face_events", "pitch")
    op.drop_column("face_events", "yaw")

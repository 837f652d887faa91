"""Uncertain faces in the per-minute rollup (issue 21).

A face the classifier was too unsure of (top probability under the model's
``uncertain_below``) is stored with its confidence and probabilities but no
label. Class views showed only labelled faces, so a teacher could not tell a
bucket whose faces were mostly uncertain from one with few faces.
``face_event_minutes`` gains ``uncertain`` (such faces, counted like
``labelled``: every face, not only a frame's first), the rollup's trigger
functions are replaced to keep it, and existing rows are filled from their
events.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NUM_LABELS = 7
MINUTE = "date_bin('1 minute', {t}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
#: The extra counts of the rollup, each with the event rows it counts.
COUNTS = (
    ("posed_frames", "t.face_index = 0 AND t.facing IS NOT NULL"),
    ("facing_frames", "t.face_index = 0 AND t.facing"),
    ("uncertain", "t.label IS NULL AND t.confidence IS NOT NULL"),
)


def fold_function(name: str, table: str, sign: str) -> str:
    """The rollup's trigger function: migration 0006's with the ``uncertain`` count."""
    counts = ", ".join(f"count(*) FILTER (WHERE t.label = {i})::int" for i in range(NUM_LABELS))
    merged = ", ".join(
        f"m.label_counts[{i + 1}] {sign} excluded.label_counts[{i + 1}]" for i in range(NUM_LABELS)
    )
    columns = "".join(f", {c}" for c, _ in COUNTS)
    values = "".join(f",\n         {sign}count(*) FILTER (WHERE {w})::int" for _, w in COUNTS)
    updates = "".join(f",\n    {c} = m.{c} {sign} abs(excluded.{c})" for c, _ in COUNTS)
    cleanup, alive = "", ""
    if sign == "-":
        alive = """
  WHERE EXISTS (SELECT 1 FROM lessons l WHERE l.id = t.lesson_id)
    AND EXISTS (SELECT 1 FROM students s WHERE s.id = t.student_id)"""
        # A minute left with only uncertain faces still has frames, so this test holds.
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


def upgrade() -> None:
    op.add_column(
        "face_event_minutes",
        sa.Column("uncertain", sa.Integer(), server_default="0", nullable=False),
    )
    op.execute(fold_function("face_event_minutes_add", "new_events", "+"))
    op.execute(fold_function("face_event_minutes_remove", "old_events", "-"))
    op.execute(
        f"""
UPDATE face_event_minutes m SET uncertain = u.faces
FROM (SELECT e.lesson_id, {MINUTE.format(t="e.captured_at")} AS minute, e.student_id,
             count(*)::int AS faces
      FROM face_events e WHERE e.label IS NULL AND e.confidence IS NOT NULL
      GROUP BY 1, 2, 3) u
WHERE m.lesson_id = u.lesson_id AND m.minute = u.minute AND m.student_id = u.student_id"""
    )


def _migration_0006() -> Any:
    """Migration 0006's module, whose trigger functions 0007-0011 left as they were."""
    path = Path(__file__).with_name("2026_12_05_0006_face_pose.py")
    spec = importlib.util.spec_from_file_location("classpulse_migration_0006", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    pose = _migration_0006()
    op.execute(pose.fold_function("face_event_minutes_add", "new_events", "+", with_pose=True))
    op.execute(pose.fold_function("face_event_minutes_remove", "old_events", "-", with_pose=True))
    op.drop_column("face_event_minutes", "uncertain")
